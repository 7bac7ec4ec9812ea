"""Faces in photos: detection, 5-point landmarks and aligned face chips (dlib, offline).

Needs the ``landmarks`` extra (``pip install 'ferlab[landmarks]'``: dlib-bin wheels and
face-recognition-models, which ships the model files; nothing is downloaded).

- :func:`detect_faces`: dlib's CNN face detector (``mmod_human_face_detector.dat``, the default:
  it does not fire on round badges or patterns the way the HOG detector does) or its HOG detector,
  run on the photo shrunk to ``detect_size`` px on its long side (speed; the CNN finds faces down to
  ~40 px there), then dlib's 5-point shape predictor on the full-resolution photo. Faces come
  largest first, boxes and points in the photo's pixels (pixel edges at integers).
- :func:`align_face`: dlib's face-chip rule -- the similarity transform (rotation, scale,
  translation) that maps the 5 points onto dlib's reference face, so the eyes are level and the face
  has the same size and place in every chip -- cut with ``dlib.extract_image_chip`` (bilinear,
  image pyramid when shrinking). :class:`Framing` says how much margin (``padding``) and where
  (``shift``); with ``shift=0`` the chip is exactly ``dlib.get_face_chip``'s.

Framing of the training data (:data:`FRAMINGS`, :func:`dataset_framing`): FERPlus / FER2013 images
are 48 x 48 greyscale faces placed by FER2013's own registration, not by dlib. Measured on 3,000
FERPlus training images (``benchmarks/face_framing.py``, ``benchmarks/results/face-framing-ferplus.json``)
their faces are as large as a dlib chip with padding 0.24 makes them, but sit 0.09 of the side lower
(more forehead, less chin), so FER2013 framing is padding 0.24, shift 0.09, 48 px, greyscale: a
photo's face cut that way looks to a FERPlus-trained network the way its training images did.
``ferlab crop`` cuts its crops with the same placement at 112 px in colour, so crops and FERPlus
images hold faces alike; its ``ferlab-crop.json`` records the framing for the runs trained on them.
"""
from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .errors import DatasetError

INSTALL = "pip install 'ferlab[landmarks]'"
DETECTORS = ("cnn", "hog")
COLOURS = ("rgb", "grayscale")
#: dlib's 5-point face-chip reference (get_face_chip_details): the outer and inner corner of the
#: image-right eye, the outer and inner corner of the image-left eye, the base of the nose, as fractions
#: of a chip without padding
CHIP_TEMPLATE = np.array([[0.8595674595992, 0.2134981538014], [0.6460604764104, 0.2289674387677],
                          [0.1205750620789, 0.2137274526848], [0.3340850613712, 0.2290642403242],
                          [0.4901123135679, 0.6277975316475]])
#: the file ``ferlab crop`` writes at the top of its output: the framing of the crops
CROP_MANIFEST = "ferlab-crop.json"


@dataclass(frozen=True)
class Framing:
    """How face images are cut and coloured.

    Args:
        padding: margin around dlib's reference face, as a fraction of its size on each side (dlib's
            ``padding``; 0.25 is ``dlib.get_face_chip``'s default).
        shift: the face moved down by this fraction of the chip side (0: dlib's placement).
        size: side of the chip in pixels (the training images' own resolution).
        colour: ``rgb`` or ``grayscale`` (ITU-R 601 luma, as Pillow's ``L``, in all three channels).
        name: what the framing is called (``fer2013``, ``dlib``, ``crop``, ``custom``).
    """
    padding: float = 0.25
    shift: float = 0.0
    size: int = 112
    colour: str = "rgb"
    name: str = "custom"

    def __post_init__(self):
        if self.colour not in COLOURS:
            raise ValueError(f"colour must be one of {COLOURS}, got {self.colour!r}")
        if not (self.padding > -0.5 and self.size >= 8):
            raise ValueError(f"padding must be > -0.5 and size >= 8 px, got {self.padding}, {self.size}")

    def to_dict(self) -> dict:
        """The fields as a plain dict (what a checkpoint stores)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Framing:
        """A Framing from a :meth:`to_dict` dict (unknown keys ignored, missing ones at their defaults)."""
        return cls(**{k: d[k] for k in ("padding", "shift", "size", "colour", "name") if k in d})

    def with_(self, **changes) -> Framing:
        """A copy with the given fields changed (``None`` values ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **changes) if changes else self

    def describe(self) -> str:
        """One line, e.g. ``fer2013 framing: padding 0.24, shift 0.09, 48 px, greyscale``."""
        return (f"{self.name} framing: padding {self.padding:g}, shift {self.shift:g}, {self.size} px, "
                f"{'greyscale' if self.colour == 'grayscale' else 'colour'}")


FRAMINGS = {
    "fer2013": Framing(padding=0.24, shift=0.09, size=48, colour="grayscale", name="fer2013"),
    "dlib": Framing(padding=0.25, shift=0.0, size=150, colour="rgb", name="dlib"),
}
#: ``ferlab crop``'s default: FER2013's face placement at 112 px, colour kept
CROP_FRAMING = replace(FRAMINGS["fer2013"], size=112, colour="rgb", name="crop")
#: datasets whose images have a known framing
DATASET_FRAMINGS = {"ferplus": "fer2013", "fer2013": "fer2013"}


def crop_manifest(root: str | Path) -> dict | None:
    """The ``ferlab-crop.json`` of a ``ferlab crop`` output at ``root`` or the folder above it (a
    folder dataset's split folder), or None."""
    for folder in (Path(root), Path(root).parent):
        f = folder / CROP_MANIFEST
        if f.is_file():
            try:
                return json.loads(f.read_text())
            except (OSError, ValueError) as e:
                raise DatasetError(f"{f}: not a readable crop manifest ({e})") from e
    return None


def dataset_framing(name: str, dataset=None) -> Framing | None:
    """The framing of dataset ``name``'s images where it is known: FERPlus / FER2013, or a folder
    dataset made by ``ferlab crop`` (its manifest); else None."""
    if name in DATASET_FRAMINGS:
        return FRAMINGS[DATASET_FRAMINGS[name]]
    root = (getattr(dataset, "meta", None) or {}).get("root")
    if root:
        manifest = crop_manifest(root)
        if manifest and isinstance(manifest.get("framing"), dict):
            return Framing.from_dict(manifest["framing"])
    return None


def training_framing(name: str, dataset) -> dict:
    """What a run records about its training images (``framing`` in its checkpoints): the known
    framing of :func:`dataset_framing` as a dict, else ``{"colour": ..., "name": "unknown"}`` with the
    colour read from the decoded images (``grayscale`` when every image has three equal channels)."""
    known = dataset_framing(name, dataset)
    if known is not None:
        return known.to_dict()
    images = dataset.cache.images
    grey = all(bool((x[:, 0] == x[:, 1]).all() and (x[:, 1] == x[:, 2]).all())
               for x in images.split(1024)) if len(images) else False
    return {"colour": "grayscale" if grey else "rgb", "name": "unknown"}


# -- models --------------------------------------------------------------------------------------
@functools.cache
def face_models(kind: str):
    """dlib's ``cnn`` or ``hog`` face detector or its 5-point ``shape`` predictor, loaded once per process."""
    try:
        import dlib
    except ImportError as e:
        raise ImportError(f"face detection needs dlib: {INSTALL} (dlib-bin wheels, no compiler needed)") from e
    from .landmarks import packaged_model_file
    if kind == "hog":
        return dlib.get_frontal_face_detector()
    files = {"cnn": "mmod_human_face_detector.dat", "shape": "shape_predictor_5_face_landmarks.dat"}
    if kind not in files:
        raise ValueError(f"no face model {kind!r} (cnn, hog, shape)")
    path = packaged_model_file("face_recognition_models", f"models/{files[kind]}", INSTALL)
    return dlib.cnn_face_detection_model_v1(path) if kind == "cnn" else dlib.shape_predictor(path)


def check_face_models(detector: str = "cnn") -> None:
    """Raise :class:`ImportError` naming the install command when dlib or a model file ``detector``
    needs is missing (before any photo is read); loads nothing."""
    try:
        import dlib  # noqa: F401
    except ImportError as e:
        raise ImportError(f"face detection needs dlib: {INSTALL} (dlib-bin wheels, no compiler needed)") from e
    from .landmarks import packaged_model_file
    for name in (["mmod_human_face_detector.dat"] if detector == "cnn" else []) \
            + ["shape_predictor_5_face_landmarks.dat"]:
        packaged_model_file("face_recognition_models", f"models/{name}", INSTALL)


# -- detection -----------------------------------------------------------------------------------
@dataclass
class Face:
    """One detected face. ``box`` (x0, y0, x1, y1) and ``landmarks`` (5, 2) (x, y) are in pixels of
    the photo as shown (pixel edges at integers); ``score`` is the detector's (CNN: its confidence,
    HOG: the SVM margin)."""
    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray

    @property
    def area(self) -> float:
        """Area of ``box`` in square pixels."""
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])


def _shrink(rgb: np.ndarray, detect_size: int | None) -> tuple[np.ndarray, float, float]:
    """The photo with its long side at most ``detect_size`` (Pillow's antialiased bilinear), and the
    factors from its pixels back to the photo's."""
    h, w = rgb.shape[:2]
    if not detect_size or max(h, w) <= detect_size:
        return rgb, 1.0, 1.0
    from PIL import Image
    s = detect_size / max(h, w)
    small = np.asarray(Image.fromarray(rgb).resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR))
    return small, w / small.shape[1], h / small.shape[0]


def detect_faces(image, detector: str = "cnn", detect_size: int | None = 800, upsample: int = 0,
                 background: str = "white") -> list[Face]:
    """Every face in ``image`` (a path, PIL image or uint8 array: :func:`ferlab.data.photos.photo_array`),
    largest first (module docstring). ``detect_size``: long side the detector sees (None / 0: the full
    photo); ``upsample``: dlib's upsampling steps (each doubles the side: smaller faces, 4x the time)."""
    import dlib

    from .photos import photo_array
    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
    rgb = photo_array(image, background)
    small, fx, fy = _shrink(rgb, detect_size)
    if detector == "cnn":
        found = [(d.rect, float(d.confidence)) for d in face_models("cnn")(small, upsample)]
    else:
        rects, scores, _ = face_models("hog").run(small, upsample, 0.0)
        found = list(zip(rects, map(float, scores)))
    shapes, faces = face_models("shape"), []
    h, w = rgb.shape[:2]
    for r, score in found:       # dlib rectangles hold inclusive pixel indices
        box = (r.left() * fx, r.top() * fy, (r.right() + 1) * fx, (r.bottom() + 1) * fy)
        full = dlib.rectangle(round(box[0]), round(box[1]), round(box[2]) - 1, round(box[3]) - 1)
        parts = shapes(rgb, full).parts()
        points = np.array([(p.x + 0.5, p.y + 0.5) for p in parts], dtype=np.float32)
        box = (max(0.0, box[0]), max(0.0, box[1]), min(float(w), box[2]), min(float(h), box[3]))
        faces.append(Face(tuple(float(v) for v in box), score, points))
    return sorted(faces, key=lambda f: -f.area)


def largest_face(faces: list[Face]) -> Face | None:
    """The face of ``faces`` with the largest box area, or ``None`` for no faces."""
    return max(faces, key=lambda f: f.area) if faces else None


# -- alignment -----------------------------------------------------------------------------------
def chip_points(framing: Framing) -> np.ndarray:
    """(5, 2) where :func:`align_face` puts the 5 landmarks, in chip pixels (dlib's convention:
    pixel centres at integers)."""
    p = framing.padding
    return ((CHIP_TEMPLATE + p) / (1 + 2 * p) + np.array([0.0, framing.shift])) * framing.size


def align_face(image, face: Face | np.ndarray, framing: Framing = CROP_FRAMING,
               background: str = "white") -> np.ndarray:
    """The aligned chip of ``face`` (a :class:`Face` or its (5, 2) landmarks in the photo's pixels):
    (size, size, 3) uint8, eyes level, cut and coloured as ``framing`` says (module docstring)."""
    import dlib

    from .photos import photo_array
    rgb = photo_array(image, background)
    points = face.landmarks if isinstance(face, Face) else np.asarray(face, dtype=np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"align_face needs dlib's 5 landmarks, (5, 2), got {points.shape}")
    def to_dlib(pts):
        return dlib.dpoints([dlib.dpoint(float(x), float(y)) for x, y in pts])
    details = dlib.chip_details(to_dlib(chip_points(framing)), to_dlib(points - 0.5),       # dlib: centres at integers
                                dlib.chip_dims(framing.size, framing.size))
    chip = dlib.extract_image_chip(np.ascontiguousarray(rgb), details)
    if framing.colour == "grayscale":
        from PIL import Image
        chip = np.asarray(Image.fromarray(chip).convert("L").convert("RGB"))
    return np.ascontiguousarray(chip, dtype=np.uint8)


def box_iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def run_framing(recorded: dict | None, dataset: str | None, image_size: int) -> tuple[Framing, str | None]:
    """The framing to cut faces with for a model, and a note when it is not the one its run recorded.

    ``recorded``: the run's ``framing`` (:func:`training_framing`; None for runs and exports written
    before it was recorded), ``dataset``: the run's dataset name, ``image_size``: the side of its
    training images. A run without a known framing gets :data:`CROP_FRAMING`'s placement at
    ``image_size`` in its recorded colour; an older run gets its dataset's framing where it is known."""
    default = replace(CROP_FRAMING, size=int(image_size), name="default")
    if recorded and recorded.get("name") != "unknown" and "padding" in recorded:
        return Framing.from_dict(recorded), None
    if recorded:
        colour = recorded.get("colour", "rgb")
        return replace(default, colour=colour), (
            f"the training images ({dataset or 'dataset unknown'}) have no known framing: faces are cut with the "
            f"default placement (padding {default.padding:g}, shift {default.shift:g}) at {default.size} px, "
            f"{'greyscale' if colour == 'grayscale' else 'colour'} as recorded")
    known = dataset_framing(dataset) if dataset else None
    if known is not None:
        return known, (f"the model does not record how its training images were framed (written before ferlab "
                       f"recorded it); using its dataset {dataset}'s {known.describe()}")
    return default, (f"the model does not record how its training images were framed or coloured (written before "
                     f"ferlab recorded it; dataset {dataset or 'unknown'}); using the {default.describe()}")
