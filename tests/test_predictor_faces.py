"""Predictions on photos: `Predictor.predict_faces` and `ferlab predict --detect` on a real photograph and its
EXIF-rotated, greyscale, RGBA and CMYK versions, a photo without a face and an unreadable file."""
import csv
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from ferlab.cli import main
from ferlab.data.faces import FRAMINGS, align_face, box_iou, face_models
from ferlab.data.photos import read_photo, shipped_photos
from ferlab.engine.config import TrainConfig
from ferlab.engine.trainer import fit
from ferlab.predictor import Predictor, to_uint8_image

pytest.importorskip("dlib")
CLASSES = ("a-class", "b-class", "c-class")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A one-epoch baseline on a 3-class folder of 40 px synthetic faces, cached at 32 px, input 24 px."""
    from ferlab.data.synthetic import render_faces
    root = tmp_path_factory.mktemp("faces-run")
    d = render_faces(60, 3, 40)
    for i in range(60):
        folder = root / "faces" / "train" / CLASSES[int(d["labels"][i]) % 3]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(d["images"][i]).save(folder / f"{i:03d}.png")
    fit(TrainConfig(name="r", out_dir=str(root / "runs"), method="baseline", dataset="folder",
                    data_root=str(root / "faces"), dataset_args={"image_size": 32}, backbone="resnet10",
                    input_size=24, epochs=1, batch_size=16, progress=False, test_split=None))
    yield root / "runs" / "r"
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """The portrait (340 x 400, lossless) and its variants, a photo without a face and a broken file. (dlib's
    CNN boxes come in steps of its image pyramid: at this size every variant's face falls on the same step.)"""
    d = tmp_path_factory.mktemp("photos")
    im = Image.open(shipped_photos()["grace_hopper"]).convert("RGB").resize((340, 400))
    arr = np.asarray(im)
    im.save(d / "a_original.png")
    exif = Image.Exif()
    exif[0x0112] = 6                                    # "rotate 90 clockwise to view": stored turned the other way
    Image.fromarray(np.ascontiguousarray(np.rot90(arr, 1))).save(d / "b_exif6.png", exif=exif)
    exif[0x0112] = 8
    Image.fromarray(np.ascontiguousarray(np.rot90(arr, -1))).save(d / "c_exif8.jpg", exif=exif, quality=95)
    im.convert("L").save(d / "d_grey.png")
    rgba = np.dstack([arr, np.full(arr.shape[:2], 255, np.uint8)])
    rgba[:12, :, 3] = rgba[-12:, :, 3] = 0             # transparent bands at the top and bottom
    Image.fromarray(rgba, "RGBA").save(d / "e_rgba.png")
    im.convert("CMYK").save(d / "f_cmyk.jpg", quality=95)
    Image.open(shipped_photos()["china"]).convert("RGB").resize((300, 200)).save(d / "g_noface.jpg")
    (d / "h_broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return d


def reference_box(path) -> tuple:
    """dlib's CNN detector called directly on the photo's pixels as a viewer shows them."""
    found = face_models("cnn")(read_photo(path), 0)
    assert len(found) == 1
    r = found[0].rect
    return (r.left(), r.top(), r.right() + 1, r.bottom() + 1)


@pytest.mark.slow
def test_predict_faces_cuts_classifies_and_notes_the_unknown_framing(run, photos):
    p = Predictor.load(run, amp="off")
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["framing"] == {"colour": "rgb", "name": "unknown"}         # synthetic faces are in colour
    assert (p.framing.size, p.framing.colour) == (32, "rgb") and "no known framing" in p.framing_note
    with pytest.warns(UserWarning, match="no known framing"):
        out = p.predict_faces([photos / "a_original.png", photos / "g_noface.jpg"])
    assert len(out) == 2 and out[1] == []
    (face,) = out[0]
    assert box_iou(face.box, reference_box(photos / "a_original.png")) >= 0.5
    assert face.image == 0 and face.face == 0 and face.probs.sum() == pytest.approx(1, abs=1e-5)
    # by hand: the aligned chip, resized to the cache side, classified
    rgb = read_photo(photos / "a_original.png")
    chip = to_uint8_image(align_face(rgb, face.landmarks, p.framing), p.image_size)
    assert np.allclose(face.probs, p.predict([chip]).probs[0], atol=1e-6)
    assert face.label == CLASSES[int(face.probs.argmax())]
    # the same photo as a PIL image and as an array
    for x in (Image.open(photos / "a_original.png"), rgb):
        again = p.predict_faces(x)[0][0]
        assert again.box == face.box and np.allclose(again.probs, face.probs, atol=1e-6)


def test_an_older_run_without_a_recorded_framing_predicts_with_a_note(run, photos, tmp_path):
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    del state["framing"]
    state["config"]["dataset"] = "ferplus"          # its dataset's framing is known
    torch.save(state, tmp_path / "old.pt")
    p = Predictor.load(tmp_path / "old.pt", amp="off")
    assert p.framing == FRAMINGS["fer2013"] and "does not record" in p.framing_note
    with pytest.warns(UserWarning, match="using its dataset ferplus's fer2013 framing"):
        (face,) = p.predict_faces(photos / "a_original.png")[0]
    chip = align_face(read_photo(photos / "a_original.png"), face.landmarks, FRAMINGS["fer2013"])
    assert chip.shape == (48, 48, 3) and (chip[..., 0] == chip[..., 2]).all()       # greyscale, 48 px
    assert np.allclose(face.probs, p.predict([to_uint8_image(chip, 32)]).probs[0], atol=1e-6)
    # an export carries the framing; one from before it did falls back the same way
    assert main(["export", str(run), "--out", str(tmp_path / "m.pt")]) == 0
    assert Predictor.load(tmp_path / "m.pt").framing == Predictor.load(run).framing


@pytest.mark.slow
def test_predict_detect_cli_on_every_version_of_a_photo(run, photos, tmp_path, capsys):
    inputs = sorted(photos.iterdir())
    out, ann = tmp_path / "faces.csv", tmp_path / "annotated"
    code = main(["predict", str(run), *map(str, inputs), "--detect", "--out", str(out), "--annotate", str(ann),
                 "--no-progress", "--amp", "off"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    skipped = [line for line in err if line.startswith("ferlab predict: skipped")]
    assert len(skipped) == 1 and "h_broken.jpg" in skipped[0]
    assert err[-1] == "ferlab predict: error: 1 of 8 files could not be read (named above); the CSV holds the other 7"
    assert any(line.startswith("note: the training images") for line in err)
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["file", "face", "x0", "y0", "x1", "y1", "score", "predicted",
                             *(f"prob_{c}" for c in CLASSES)]
    by_file = {r["file"]: r for r in rows}
    assert len(rows) == len(by_file) == 7 and str(photos / "h_broken.jpg") not in by_file
    empty = by_file[str(photos / "g_noface.jpg")]
    assert all(empty[k] == "" for k in empty if k != "file")
    box = lambda r: tuple(float(r[k]) for k in ("x0", "y0", "x1", "y1"))      # noqa: E731
    original = box(by_file[str(photos / "a_original.png")])
    assert box_iou(original, reference_box(photos / "a_original.png")) >= 0.5
    assert box(by_file[str(photos / "b_exif6.png")]) == original                 # lossless: the same pixels
    for name in ("c_exif8.jpg", "d_grey.png", "e_rgba.png", "f_cmyk.jpg"):
        r = by_file[str(photos / name)]
        assert r["face"] == "0" and box_iou(box(r), original) >= 0.9, name
        assert sum(float(r[f"prob_{c}"]) for c in CLASSES) == pytest.approx(1, abs=1e-4)
        assert r["predicted"] == max(CLASSES, key=lambda c: float(r[f"prob_{c}"]))
    # the CSV's probabilities are predict_faces' own
    p = Predictor.load(run, amp="off")
    with pytest.warns(UserWarning):
        face = p.predict_faces(photos / "b_exif6.png")[0][0]
    assert np.allclose([float(by_file[str(photos / "b_exif6.png")][f"prob_{c}"]) for c in CLASSES], face.probs,
                       atol=1e-5)
    # one annotated picture per readable input, in the viewer's frame, also for the photo without a face
    drawn = sorted(ann.iterdir())
    assert [f.name for f in drawn] == [f"{p.stem}.jpg" for p in inputs if p.name != "h_broken.jpg"]
    assert all(Image.open(f).size == (300, 200) if "noface" in f.name else Image.open(f).size == (340, 400)
               for f in drawn)


def test_detect_options_need_detect(run, photos, capsys):
    assert main(["predict", str(run), str(photos / "a_original.png"), "--annotate", "x"]) == 2
    assert main(["predict", str(run), str(photos / "a_original.png"), "--detector", "hog"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("need --detect" in line for line in err)
