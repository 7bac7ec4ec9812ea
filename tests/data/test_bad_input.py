"""Bad input raises DatasetError naming the file (and line)."""
import numpy as np
import pytest
from PIL import Image

from ferlab.data import DatasetError, build_dataset
from ferlab.data.base import FERDataset
from ferlab.data.folder import image_folder
from ferlab.data.io import read_image


def _rafdb(tmp_path, lines, n_images=3):
    (tmp_path / "EmoLabel").mkdir()
    (tmp_path / "Image" / "aligned").mkdir(parents=True)
    (tmp_path / "EmoLabel" / "list_patition_label.txt").write_text("".join(line + "\n" for line in lines))
    for i in range(1, n_images + 1):
        Image.fromarray(np.full((100, 100, 3), 40 * i, np.uint8)).save(tmp_path / "Image" / "aligned" / f"train_{i:05d}_aligned.jpg")
    return tmp_path


def test_missing_label_file(tmp_path):
    with pytest.raises(DatasetError, match="list_patition_label.txt"):
        build_dataset("rafdb", tmp_path, "train")


def test_wrong_column_count_names_file_and_line(tmp_path):
    root = _rafdb(tmp_path, ["train_00001.jpg 1", "train_00002.jpg 2 extra"])
    with pytest.raises(DatasetError, match=r"list_patition_label.txt:2: expected"):
        build_dataset("rafdb", root, "train")


def test_label_out_of_range_names_line(tmp_path):
    root = _rafdb(tmp_path, ["train_00001.jpg 1", "train_00002.jpg 2", "train_00003.jpg 9"])
    with pytest.raises(DatasetError, match=r"list_patition_label.txt:3: label 9 outside 1..7"):
        build_dataset("rafdb", root, "train")


def test_missing_image_is_named(tmp_path):
    root = _rafdb(tmp_path, ["train_00001.jpg 1", "train_00004.jpg 2"])
    with pytest.raises(DatasetError, match="train_00004_aligned.jpg"):
        build_dataset("rafdb", root, "train")


def test_ferplus_wrong_column_count(tmp_path):
    (tmp_path / "FER2013Train").mkdir()
    (tmp_path / "FER2013Train" / "label.csv").write_text('a.png,"(0, 0, 48, 48)",1,2,3\n')
    with pytest.raises(DatasetError, match=r"label.csv:1: expected 12 columns"):
        build_dataset("ferplus", tmp_path, "train")


def test_non_image_file_and_truncated_jpeg(tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("this is not an image")
    with pytest.raises(DatasetError, match="notes.jpg: not a readable image"):
        read_image(bad)
    good = tmp_path / "face.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(good, quality=95)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:600])
    with pytest.raises(DatasetError, match="cut.jpg: corrupt or truncated"):
        read_image(cut)


def test_bad_image_in_a_dataset_errors_by_default_and_skip_counts(tmp_path):
    for cls in ("happy", "sad"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(np.full((32, 32, 3), 50 * i, np.uint8)).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "sad" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    ds = image_folder(tmp_path, classes=("neutral", "happiness", "sadness"), image_size=32)
    with pytest.raises(DatasetError, match="broken.png"):
        ds.preload(progress=False)
    ds = image_folder(tmp_path, classes=("neutral", "happiness", "sadness"), image_size=32, on_bad_image="skip")
    assert len(ds) == 6 and len(ds.skipped) == 1 and ds.skipped[0].endswith("broken.png")
    assert sorted(ds.labels.tolist()) == [1, 1, 1, 2, 2, 2]


def test_labels_outside_class_range():
    with pytest.raises(DatasetError, match=r"labels\[1\] = 7"):
        FERDataset(classes=("a", "b", "c", "d", "e", "f", "g"), labels=[0, 7], images=np.zeros((2, 8, 8), np.uint8))
