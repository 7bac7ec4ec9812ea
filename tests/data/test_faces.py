"""Face detection and alignment on real photographs that ship with installed packages (dlib, offline)."""
import json

import numpy as np
import pytest
from PIL import Image

from ferlab.data.faces import (
    CHIP_TEMPLATE,
    CROP_FRAMING,
    FRAMINGS,
    Framing,
    align_face,
    box_iou,
    chip_points,
    dataset_framing,
    detect_faces,
    face_models,
    run_framing,
    training_framing,
)
from ferlab.data.photos import shipped_photos

dlib = pytest.importorskip("dlib")


def small(name: str, side: int = 300) -> np.ndarray:
    """A shipped photo with its long side at ``side`` px (the CNN detector takes ~1 s per 300 px photo on one core)."""
    im = Image.open(shipped_photos()[name]).convert("RGB")
    s = side / max(im.size)
    return np.asarray(im.resize((round(im.width * s), round(im.height * s)), Image.BILINEAR))


@pytest.fixture(scope="module")
def hopper():
    return small("grace_hopper")


def reference_box(rgb: np.ndarray) -> tuple:
    """dlib's CNN detector called directly on the photo (no shrinking): the one face's box."""
    found = face_models("cnn")(rgb, 0)
    assert len(found) == 1
    r = found[0].rect
    return (r.left(), r.top(), r.right() + 1, r.bottom() + 1)


@pytest.mark.slow
def test_the_face_of_a_portrait_is_found(hopper):
    faces = detect_faces(hopper)
    assert len(faces) == 1
    f = faces[0]
    assert box_iou(f.box, reference_box(hopper)) >= 0.5 and f.score > 0
    x0, y0, x1, y1 = f.box
    assert ((f.landmarks[:, 0] > x0) & (f.landmarks[:, 0] < x1) & (f.landmarks[:, 1] > y0)
            & (f.landmarks[:, 1] < y1)).all()
    # the image-right eye's corners (0, 1) lie right of the image-left eye's (2, 3), the nose (4) below both
    assert f.landmarks[[0, 1], 0].min() > f.landmarks[[2, 3], 0].max()
    assert f.landmarks[4, 1] > f.landmarks[:4, 1].max()
    hog = detect_faces(hopper, "hog")
    assert len(hog) == 1 and box_iou(hog[0].box, f.box) >= 0.5


@pytest.mark.slow
def test_a_shrunk_detection_maps_back_to_the_photos_pixels():
    """detect_size halves a 400 px photo: the boxes are those found on the 200 px photo, doubled, and
    overlap what the detector finds on the full photo."""
    big = np.asarray(Image.open(shipped_photos()["grace_hopper"]).convert("RGB").resize((340, 400)))
    half = np.asarray(Image.fromarray(big).resize((170, 200), Image.BILINEAR))
    faces, on_half = detect_faces(big, detect_size=200), detect_faces(half, detect_size=None)
    assert len(faces) == len(on_half) == 1
    assert faces[0].box == pytest.approx(tuple(2 * v for v in on_half[0].box))
    assert box_iou(faces[0].box, reference_box(big)) >= 0.5


@pytest.mark.parametrize("name", ["china", "flower"])
def test_no_face_in_photos_without_one(name):
    assert detect_faces(small(name)) == []


@pytest.mark.slow
def test_largest_face_first(hopper):
    """The photo beside a copy of itself at 0.8 of its size: two faces, the full-size one first."""
    h, w = hopper.shape[:2]
    sw, sh = round(w * 0.8), round(h * 0.8)
    canvas = np.full((h, w + sw + 10, 3), 255, dtype=np.uint8)
    canvas[:, sw + 10:] = hopper
    canvas[(h - sh) // 2:(h - sh) // 2 + sh, :sw] = np.asarray(Image.fromarray(hopper).resize((sw, sh)))
    faces = detect_faces(canvas, detect_size=None)
    assert len(faces) == 2 and faces[0].area > faces[1].area
    alone = detect_faces(hopper)[0].box
    assert box_iou(faces[0].box, (alone[0] + sw + 10, alone[1], alone[2] + sw + 10, alone[3])) >= 0.5
    assert faces[1].box[2] < sw < faces[0].box[0]


def test_align_face_is_dlibs_face_chip(hopper):
    """With shift 0 the chip is dlib.get_face_chip's, pixel for pixel."""
    face = detect_faces(hopper)[0]
    box = [round(v) for v in face.box]
    shape = face_models("shape")(hopper, dlib.rectangle(box[0], box[1], box[2] - 1, box[3] - 1))
    for padding, size in ((0.25, 150), (0.4, 64)):
        ours = align_face(hopper, face, Framing(padding=padding, shift=0.0, size=size))
        assert np.array_equal(ours, dlib.get_face_chip(hopper, shape, size, padding))


def eye_centres(points: np.ndarray) -> np.ndarray:
    return np.stack([points[[0, 1]].mean(0), points[[2, 3]].mean(0)])


def test_aligned_chips_have_level_eyes_at_the_framings_place(hopper):
    """A photo turned by 20 degrees: in the chip the eyes are level again, and the landmarks found on the
    chip lie where the framing puts them (padding and shift as defined)."""
    turned = np.asarray(Image.fromarray(hopper).rotate(20, resample=Image.BILINEAR, fillcolor=(128, 128, 128)))
    face = detect_faces(turned)[0]
    before = eye_centres(face.landmarks)
    assert abs(np.degrees(np.arctan2(*(before[0] - before[1])[::-1]))) > 12
    framing = Framing(padding=0.3, shift=0.1, size=150)
    chip = align_face(turned, face, framing)
    h = chip.shape[0]
    found = face_models("shape")(chip, dlib.rectangle(0, 0, h - 1, h - 1))
    pts = np.array([(p.x, p.y) for p in found.parts()], dtype=float)
    eyes = eye_centres(pts)
    assert abs(np.degrees(np.arctan2(*(eyes[0] - eyes[1])[::-1]))) < 4
    want = eye_centres(chip_points(framing))
    assert np.abs(eyes - want).max() < 0.05 * h
    # the template, by hand: eye centres of dlib's reference at padding p, shift s, side 150
    p, s = 0.3, 0.1
    left_eye = ((CHIP_TEMPLATE[2] + CHIP_TEMPLATE[3]) / 2 + p) / (1 + 2 * p) + [0, s]
    assert np.allclose(want[1], left_eye * 150)


def test_shift_moves_the_face_down_by_its_fraction(hopper):
    face = detect_faces(hopper)[0]
    base = align_face(hopper, face, Framing(padding=0.25, shift=0.0, size=100)).astype(int)
    down = align_face(hopper, face, Framing(padding=0.25, shift=0.1, size=100)).astype(int)
    assert np.abs(down[20:90, 10:90] - base[10:80, 10:90]).mean() < 2      # 0.1 x 100 px = 10 rows lower


def test_grayscale_framing_gives_equal_channels(hopper):
    face = detect_faces(hopper)[0]
    chip = align_face(hopper, face, FRAMINGS["fer2013"])
    assert chip.shape == (48, 48, 3) and (chip[..., 0] == chip[..., 1]).all() and (chip[..., 1] == chip[..., 2]).all()
    colour = align_face(hopper, face, FRAMINGS["fer2013"].with_(colour="rgb"))
    grey = np.asarray(Image.fromarray(colour).convert("L"))
    assert np.array_equal(chip[..., 0], grey)


def test_the_fer2013_framing_is_the_one_measured():
    """FRAMINGS['fer2013'] rounds the medians benchmarks/face_framing.py measured on FERPlus."""
    from pathlib import Path
    measured = json.loads((Path(__file__).resolve().parents[2] / "benchmarks" / "results"
                           / "face-framing-ferplus.json").read_text())
    fer = FRAMINGS["fer2013"]
    assert fer.padding == pytest.approx(measured["padding"], abs=0.005)
    assert fer.shift == pytest.approx(measured["shift"], abs=0.005)
    assert (fer.size, fer.colour) == (48, "grayscale")


def test_what_a_run_records_and_what_the_predictor_uses(tmp_path):
    from ferlab.data.base import FERDataset
    assert dataset_framing("ferplus") == FRAMINGS["fer2013"] and dataset_framing("rafdb") is None
    grey = np.repeat(np.random.default_rng(0).integers(0, 256, (6, 8, 8, 1), dtype=np.uint8), 3, axis=-1)
    ds = FERDataset(classes=("a", "b"), labels=[0, 1] * 3, images=grey, image_size=8).preload(progress=False)
    assert training_framing("synthetic", ds) == {"colour": "grayscale", "name": "unknown"}
    grey[0, 0, 0, 1] += 1
    ds = FERDataset(classes=("a", "b"), labels=[0, 1] * 3, images=grey, image_size=8).preload(progress=False)
    assert training_framing("synthetic", ds)["colour"] == "rgb"
    # a folder made by `ferlab crop`: its manifest, found from the split folder
    (tmp_path / "train").mkdir()
    (tmp_path / "ferlab-crop.json").write_text(json.dumps({"framing": CROP_FRAMING.to_dict()}))
    ds.meta["root"] = str(tmp_path / "train")
    assert training_framing("folder", ds) == CROP_FRAMING.to_dict()
    # the predictor: recorded -> as recorded; unknown placement -> default placement, recorded colour, a note
    assert run_framing(CROP_FRAMING.to_dict(), "folder", 112) == (CROP_FRAMING, None)
    f, note = run_framing({"colour": "grayscale", "name": "unknown"}, "rafdb", 100)
    assert (f.padding, f.shift, f.size, f.colour) == (CROP_FRAMING.padding, CROP_FRAMING.shift, 100, "grayscale")
    assert "no known framing" in note
    # runs from before the framing was recorded: their dataset's where known, else the default, with a note
    f, note = run_framing(None, "ferplus", 48)
    assert f == FRAMINGS["fer2013"] and "does not record" in note and "ferplus" in note
    f, note = run_framing(None, "folder", 64)
    assert (f.size, f.colour) == (64, "rgb") and "does not record" in note
