"""`ferlab crop`: a class-folder tree of real photographs -> a folder dataset that `ferlab train --dataset folder`
trains on as it is; the report names the photos without a face; a second run resumes."""
import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from ferlab.cli import main
from ferlab.data.faces import CROP_FRAMING, box_iou, detect_faces
from ferlab.data.photos import read_photo, shipped_photos

pytest.importorskip("dlib")
TINY = ["--backbone", "resnet10", "--input-size", "32", "--image-size", "32", "--epochs", "1", "--batch-size", "4",
        "--no-progress"]


def portrait(size=(340, 400)) -> Image.Image:
    return Image.open(shipped_photos()["grace_hopper"]).convert("RGB").resize(size)


@pytest.fixture
def tree(tmp_path):
    """photos/{train,test}/{happy,sad}/: the portrait, mirrored, turned, greyscale, and a photo without a face."""
    src = tmp_path / "photos"
    im = portrait()
    files = {"train/happy/hopper.jpg": im, "train/happy/mirrored.png": im.transpose(Image.FLIP_LEFT_RIGHT),
             "train/sad/turned.jpg": im.rotate(10, resample=Image.BILINEAR), "train/sad/landscape.jpg":
             Image.open(shipped_photos()["china"]).convert("RGB").resize((300, 200)),
             "test/happy/hopper.png": im, "test/sad/grey.png": im.convert("L")}
    for rel, image in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        image.save(src / rel)
    return src


@pytest.mark.slow
def test_crop_a_class_folder_tree_then_train_and_predict_on_it(tree, tmp_path, capsys, monkeypatch):
    dst = tmp_path / "faces"
    assert main(["crop", str(tree), "--out", str(dst), "--jobs", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "6 photos ->" in out and "5 cropped now (5 crops in all)" in out and "1 without a face" in out
    assert "no face found in 1: train/sad/landscape.jpg" in out
    # the sub-folders mirrored, one 112 px PNG per photo with a face
    crops = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*.png"))
    assert crops == ["test/happy/hopper.png", "test/sad/grey.png", "train/happy/hopper.png",
                     "train/happy/mirrored.png", "train/sad/turned.png"]
    assert all(Image.open(dst / c).size == (112, 112) for c in crops)
    with open(dst / "crop-report.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["file", "faces", "face", "x0", "y0", "x1", "y1", "score", "output", "note"]
    by_file = {r["file"]: r for r in rows}
    assert len(rows) == 6 and by_file["train/sad/landscape.jpg"]["faces"] == "0"
    assert by_file["train/sad/landscape.jpg"]["note"] == "no face" and not by_file["train/sad/landscape.jpg"]["output"]
    r = by_file["train/happy/hopper.jpg"]
    assert (r["faces"], r["face"], r["output"]) == ("1", "0", "train/happy/hopper.png")
    reference = detect_faces(read_photo(tree / "train/happy/hopper.jpg"))[0]
    assert box_iou([float(r[k]) for k in ("x0", "y0", "x1", "y1")], reference.box) >= 0.5
    # the mirrored photo's crop is the mirrored crop, up to landmark noise
    a = np.asarray(Image.open(dst / "train/happy/hopper.png"), dtype=float)
    b = np.asarray(Image.open(dst / "train/happy/mirrored.png"), dtype=float)[:, ::-1]
    assert np.abs(a - b).mean() < 0.6 * np.abs(a - b[:, ::-1]).mean()      # measured 16.8 vs 36.2
    assert json.loads((dst / "ferlab-crop.json").read_text())["framing"] == CROP_FRAMING.to_dict()

    # a folder dataset as it is: trained on, and the run records the crops' framing
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--dataset", "folder", "--data-root", str(dst), "--method", "baseline", "--name", "crops",
                 *TINY]) == 0
    capsys.readouterr()
    state = torch.load(tmp_path / "runs" / "crops" / "checkpoints" / "last.pt", weights_only=True)
    assert state["classes"] == ["happy", "sad"] and state["framing"] == CROP_FRAMING.to_dict()
    # predicting photos with that run cuts faces the same way, without a note
    assert main(["predict", "runs/crops", str(tree / "train/happy/hopper.jpg"), "--detect", "--no-progress"]) == 0
    out = capsys.readouterr()
    assert "note:" not in out.err and "crop framing: padding 0.24, shift 0.09, 112 px, colour" in out.err
    assert out.out.splitlines()[1].split(",")[:2] == [str(tree / "train/happy/hopper.jpg"), "0"]

    # resumed: nothing detected again, the crops untouched, the report complete
    stamps = {c: (dst / c).stat().st_mtime_ns for c in crops}
    assert main(["crop", str(tree), "--out", str(dst), "--jobs", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "0 cropped now (5 crops in all), 6 done earlier, 1 without a face" in out
    assert stamps == {c: (dst / c).stat().st_mtime_ns for c in crops}
    with open(dst / "crop-report.csv") as f:
        assert list(csv.DictReader(f)) == rows
    # other options on the same output are refused
    assert main(["crop", str(tree), "--out", str(dst), "--padding", "0.4", "--no-progress"]) == 2
    assert "holds crops made with other options (framing" in capsys.readouterr().err


def test_all_faces_unreadable_files_and_greyscale_crops(tmp_path, capsys):
    src = tmp_path / "photos"
    src.mkdir()
    im = portrait((256, 300))
    canvas = Image.new("RGB", (256 + 205 + 10, 300), "white")      # the portrait beside a 0.8 copy of itself
    canvas.paste(im.resize((205, 240)), (0, 30))
    canvas.paste(im, (215, 0))
    canvas.save(src / "two.png")
    (src / "broken.jpg").write_bytes(b"nothing")
    dst = tmp_path / "faces"
    code = main(["crop", str(src), "--out", str(dst), "--all-faces", "--jobs", "1", "--no-progress",
                 "--framing", "fer2013"])
    captured = capsys.readouterr()
    assert code == 2
    assert [line for line in captured.err.splitlines() if "broken.jpg" in line][0].startswith("ferlab crop: skipped")
    assert captured.err.strip().splitlines()[-1] == ("ferlab crop: error: 1 of 2 files could not be read (named "
                                                     "above and in crop-report.csv)")
    assert sorted(p.name for p in dst.glob("*.png")) == ["two_face0.png", "two_face1.png"]
    first, second = (Image.open(dst / f"two_face{k}.png") for k in (0, 1))
    assert first.mode == second.mode == "L" and first.size == (48, 48)          # the fer2013 framing
    with open(dst / "crop-report.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["file"], r["faces"], r["face"]) for r in rows] == [("broken.jpg", "", ""), ("two.png", "2", "0"),
                                                                   ("two.png", "2", "1")]
    assert rows[0]["note"].startswith("unreadable: ") and "broken.jpg" in rows[0]["note"]
    assert float(rows[1]["x0"]) > 215 > float(rows[2]["x1"])      # the larger face (on the right) first
