"""Facial landmarks: layouts, detection (optional extra), files, and attaching them to a dataset.

Layouts (``K`` points, (x, y) pixel coordinates of the image, pixel edges at integers):

- 68 points, iBUG / dlib order (the synthetic dataset, :func:`detect_landmarks`).
- 19 points, AFLW order as in LA-Net's shipped RAF-DB ``.tensor`` files: 0-5 eyebrows (image-left
  outer -> image-right outer), 6-11 eye corners and centres, 12-14 nostril / nose tip / nostril,
  15-17 mouth left / centre / right, 18 chin.

A horizontal flip maps x -> W - x and, to keep every index on the same facial part, swaps the
left/right indices (:func:`flip_permutation`).

Files written by :func:`save_landmarks` (``ferlab landmarks``) are ``.npz`` with ``points``
(N, K, 2) float32 in the frame of the ``image_size`` images they were detected on, ``detected``
(N,) bool (True: the face detector found the face; False: the fallback box was used), ``names``
(N,) the images' :meth:`~ferlab.data.FERDataset.sample_names` (unique also where two class folders
hold the same file name; files that name images by their file name alone are matched too), checked
against the dataset on load, and ``meta`` (JSON: detector, its version, image size, detection size,
fallback box, counts).
"""
from __future__ import annotations

import json
import os
import time
import zipfile
from pathlib import Path

import numpy as np

from ..atomic import write_atomic
from .errors import DatasetError


def _mirror_pairs(pairs, k: int) -> np.ndarray:
    perm = np.arange(k)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


_PAIRS_68 = ([(i, 16 - i) for i in range(8)] + [(17 + i, 26 - i) for i in range(5)] + [(31, 35), (32, 34)]
             + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
             + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)])
_PAIRS_19 = [(0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9), (12, 14), (15, 17)]
FLIP_PERMUTATIONS = {68: _mirror_pairs(_PAIRS_68, 68), 19: _mirror_pairs(_PAIRS_19, 19)}


def flip_permutation(k: int) -> np.ndarray:
    """(K,) index map of a horizontal flip: flipped[:, i] = mirror(points[:, perm[i]])."""
    if k not in FLIP_PERMUTATIONS:
        raise ValueError(f"no left/right layout known for {k} landmarks (known: {sorted(FLIP_PERMUTATIONS)}); "
                         f"use swap=False to flip coordinates only")
    return FLIP_PERMUTATIONS[k]


def flip_landmarks(points, width: float, swap: bool = True):
    """Mirror (..., K, 2) points of an image ``width`` wide: x -> width - x, indices swapped
    left/right when ``swap`` (LA-Net's official flip keeps the indices: ``swap=False``).
    Works on numpy arrays and torch tensors."""
    out = points.clone() if hasattr(points, "clone") else np.array(points, copy=True)
    out[..., 0] = width - out[..., 0]
    if swap:
        out = out[..., flip_permutation(points.shape[-2]), :]
    return out


# -- files ---------------------------------------------------------------------------------------
def save_landmarks(path: str | Path, points: np.ndarray, detected: np.ndarray, names, meta: dict) -> Path:
    """Write a landmark file atomically (``.npz``)."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(".npz")
    arrays = {"points": np.asarray(points, dtype=np.float32), "detected": np.asarray(detected, dtype=bool),
              "names": np.asarray(list(names), dtype=str), "meta": json.dumps(meta)}
    write_atomic(path, lambda f: np.savez_compressed(f, **arrays))
    return path


def read_lanet_tensor(path: str | Path) -> np.ndarray:
    """LA-Net's shipped ``raf_{train,test}_19_landmarks.tensor``: (N, 19, 2) float32, (x, y) in the
    224x224 resized frame, rows in label-file order."""
    from ..errors import safe_torch_load
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: landmark file not found")
    t = safe_torch_load(path, DatasetError, "tensor file")
    if not hasattr(t, "shape") or t.ndim != 3 or t.shape[-1] != 2:
        raise DatasetError(f"{path}: expected a (N, K, 2) landmark tensor, got {getattr(t, 'shape', type(t))}")
    return t.float().numpy()


def load_landmarks(path: str | Path) -> dict:
    """Read a landmark file: ``points`` (N, K, 2), ``detected`` (N,) bool or None, ``names`` or None,
    ``image_size`` (the frame of ``points``), ``meta``. ``.tensor`` files are LA-Net's (224 frame)."""
    path = Path(path)
    if path.suffix == ".tensor":
        pts = read_lanet_tensor(path)
        return {"points": pts, "detected": None, "names": None, "image_size": 224.0,
                "meta": {"source": "LA-Net shipped tensor (HRNet, AFLW 19 points)", "image_size": 224}}
    if not path.is_file():
        raise DatasetError(f"{path}: landmark file not found (make one with `ferlab landmarks`)")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("points", "detected", "names", "meta") if k not in z.files]
            if missing:
                raise DatasetError(f"{path}: not a ferlab landmark file: no {', '.join(missing)} "
                                   f"(it has {', '.join(z.files) or 'nothing'}; make one with `ferlab landmarks`)")
            pts, det, names, raw = z["points"], z["detected"], z["names"], str(z["meta"])
    except DatasetError:
        raise
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as e:   # not npz, object arrays, truncated
        from ..errors import numpy_load_problem
        raise DatasetError(f"{path}: not a readable .npz landmark file (points, detected, names, meta): "
                           f"{numpy_load_problem(e)}") from e
    try:
        meta = json.loads(raw)
        size = float(meta["image_size"])
    except (ValueError, TypeError, KeyError):
        raise DatasetError(f"{path}: its meta must be JSON with the image_size the points refer to, "
                           f"got {raw[:60]!r}") from None
    if not size > 0:
        raise DatasetError(f"{path}: meta image_size must be > 0, got {size}")
    if pts.ndim != 3 or pts.shape[-1] != 2 or not np.issubdtype(pts.dtype, np.number):
        raise DatasetError(f"{path}: points must be a numeric (N, K, 2) array, got {pts.dtype} {pts.shape}")
    if len(names) != len(pts) or len(det) != len(pts):
        raise DatasetError(f"{path}: {len(pts)} point rows, {len(names)} names and {len(det)} detected flags "
                           f"(one each per image)")
    names = [str(n) for n in names]
    bad = ~np.isfinite(pts.reshape(len(pts), -1)).all(1)
    if bad.any():
        first = names[int(np.flatnonzero(bad)[0])]
        raise DatasetError(f"{path}: landmarks of {int(bad.sum())} images hold NaN/inf, e.g. {first!r}")
    if len(set(names)) != len(names):
        dup = next(n for i, n in enumerate(names) if n in names[:i])
        raise DatasetError(f"{path}: image {dup!r} is listed twice")
    return {"points": pts, "detected": det, "names": names, "image_size": size, "meta": meta}


def attach_landmarks(dataset, path: str | Path):
    """Give ``dataset`` the landmarks of file ``path``, rescaled to its image size. Files that
    name their images are matched by :meth:`~ferlab.data.FERDataset.sample_names` (``ferlab
    landmarks``), or by file name for files that name images that way (one file for a whole split
    serves every label mode and subset); files without names (LA-Net's ``.tensor``) must have one
    row per image."""
    lm = load_landmarks(path)
    pts, n = lm["points"], len(dataset)
    if lm["names"] is not None and dataset.paths is not None:
        row = {name: i for i, name in enumerate(lm["names"])}
        names = dataset.sample_names()
        if not all(m in row for m in names):       # a file naming images by file name alone
            names = [os.path.basename(p) for p in dataset.paths]
        missing = [m for m in names if m not in row]
        if missing:
            raise DatasetError(f"{path}: no landmarks for {len(missing)} of the {n} images of {dataset.name}, "
                               f"e.g. {missing[0]!r} (landmarks of another split?)")
        pts = pts[[row[m] for m in names]]
    elif len(pts) != n:
        raise DatasetError(f"{path}: {len(pts)} landmark rows for the {n} images of {dataset.name}")
    if not np.isfinite(pts).all():
        raise DatasetError(f"{path}: landmarks hold NaN/inf")
    dataset.landmarks = pts.astype(np.float32) * (dataset.image_size / lm["image_size"])
    dataset.meta["landmarks"] = {"file": str(path), **lm["meta"]}
    return dataset


# -- detection -----------------------------------------------------------------------------------
def packaged_model_file(package: str, relpath: str, install: str) -> str:
    """A model file shipped inside an installed package (``face_recognition_models``: dlib's 68-point
    shape predictor, its face-recognition ResNet), found without importing the package (its
    ``__init__`` needs the removed ``pkg_resources``); ``install`` is the command named when missing."""
    import importlib.util
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{Path(relpath).name} comes from the package {package}, which is not installed: {install}")
    f = Path(list(spec.submodule_search_locations)[0]) / relpath
    if not f.is_file():
        raise ImportError(f"{f} is missing; reinstall {package} ({install})")
    return str(f)


def _predictor_file() -> str:
    """dlib's 68-point shape predictor (iBUG 300-W licence: not for commercial use)."""
    return packaged_model_file("face_recognition_models", "models/shape_predictor_68_face_landmarks.dat",
                               "pip install 'ferlab[landmarks]'")


def detect_landmarks(dataset, detect_size: int = 144, fallback_box=None, progress: bool = True) -> dict:
    """68 dlib landmarks for every image of ``dataset`` (offline: dlib-bin + face-recognition-models,
    ``pip install 'ferlab[landmarks]'``).

    Each image (the dataset's cached uint8 image, side S) is upscaled to ``detect_size`` (tiny
    aligned crops such as FER2013's 48 px are below the HOG detector's 80 px minimum), the largest
    detected face is kept, and where the detector finds none the ``fallback_box`` is used: (x0, y0,
    x1, y1) as fractions of the image, default the median box the detector found on this dataset
    (aligned crops put every face in about the same place). Returns ``points`` (N, 68, 2) in the
    S x S frame, ``detected`` (N,) bool and ``meta``.
    """
    try:
        import dlib
    except ImportError as e:
        raise ImportError("landmark detection needs dlib: pip install 'ferlab[landmarks]' "
                          "(dlib-bin wheels, no compiler needed)") from e
    from ..progress import progress_bar
    detector, predictor = dlib.get_frontal_face_detector(), dlib.shape_predictor(_predictor_file())
    n, size = len(dataset), dataset.image_size
    scale = detect_size / size
    t0 = time.time()
    boxes = np.full((n, 4), np.nan, dtype=np.float32)
    grays = []
    for lo in progress_bar(range(0, n, 256), desc=f"detecting faces in {dataset.name}", disable=not progress,
                           unit_scale=256):
        imgs = dataset.cache.get(np.arange(lo, min(lo + 256, n))).float()          # (b, 3, S, S)
        gray = (0.299 * imgs[:, 0] + 0.587 * imgs[:, 1] + 0.114 * imgs[:, 2])[:, None]
        if detect_size != size:
            import torch.nn.functional as F
            gray = F.interpolate(gray, size=(detect_size, detect_size), mode="bilinear", align_corners=False)
        gray = gray[:, 0].round().clamp(0, 255).byte().numpy()
        for j, g in enumerate(gray):
            faces = detector(g, 0)
            if len(faces):
                f = max(faces, key=lambda r: r.width() * r.height())
                boxes[lo + j] = [f.left(), f.top(), f.right(), f.bottom()]
        grays.append(gray)
    detected = ~np.isnan(boxes[:, 0])
    if fallback_box is None:
        fallback_box = (np.median(boxes[detected], 0) / detect_size).tolist() if detected.any() \
            else [0.05, 0.1, 0.95, 1.0]
    fb = np.asarray(fallback_box, dtype=np.float32) * detect_size
    boxes[~detected] = fb
    points = np.zeros((n, 68, 2), dtype=np.float32)
    grays = np.concatenate(grays)
    for i in progress_bar(range(n), desc="68-point shapes", disable=not progress, mininterval=2):
        b = boxes[i].round().astype(int)
        shape = predictor(grays[i], dlib.rectangle(int(b[0]), int(b[1]), int(b[2]), int(b[3])))
        points[i] = [(p.x + 0.5, p.y + 0.5) for p in shape.parts()]   # pixel centre -> continuous coordinates
    points /= scale
    meta = {"detector": "dlib HOG frontal face + 68-point shape predictor (face-recognition-models)",
            "dlib_version": dlib.__version__, "image_size": size, "detect_size": detect_size,
            "fallback_box": [round(float(v), 4) for v in fallback_box], "num_points": 68,
            "detected": int(detected.sum()), "fallback": int((~detected).sum()), "seconds": round(time.time() - t0, 1),
            "dataset": dataset.name}
    return {"points": points, "detected": detected, "meta": meta}
