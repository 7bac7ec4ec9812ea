"""Bad input raises DatasetError naming the file (and line)."""
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from ferlab.data import DatasetError, build_dataset
from ferlab.data.base import FERDataset
from ferlab.data.folder import image_folder
from ferlab.data.io import read_image
from ferlab.data.landmarks import attach_landmarks, load_landmarks
from ferlab.data.neighbors import load_neighbors


def _rafdb(tmp_path, lines, n_images=3):
    (tmp_path / "EmoLabel").mkdir()
    (tmp_path / "Image" / "aligned").mkdir(parents=True)
    (tmp_path / "EmoLabel" / "list_patition_label.txt").write_text("".join(line + "\n" for line in lines))
    for i in range(1, n_images + 1):
        image = Image.fromarray(np.full((100, 100, 3), 40 * i, np.uint8))
        image.save(tmp_path / "Image" / "aligned" / f"train_{i:05d}_aligned.jpg")
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


# -- the Python API: each malformed input raises DatasetError naming the file (and line) ------------


def _write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return path


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _bomb(path):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
    b = bytearray(path.read_bytes())
    b[16:24] = struct.pack(">II", 50000, 50000)
    b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(b))
    return path


def _ferplus(t, csv_text):
    _write(t / "FER2013Train" / "label.csv", csv_text)
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(t / "FER2013Train" / "a.png")
    return t


def _affectnet(t, row):
    _write(t / "training.csv", f"subDirectory_filePath,expression,valence,arousal\n{row}\n")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(_write(t / "Manually_Annotated_Images" / "1" / "a.jpg", b""))
    return t


META = json.dumps({"image_size": 32})
TIE = '"(0,0,48,48)",2,2,2,2,2,0,0,0,0,0'     # five classes with 2 votes each: no majority
KNN = (np.arange(6)[:, None] + np.arange(1, 3)[None]) % 6
NAMES6 = np.array([f"{i}.png" for i in range(6)])

# (id, call(tmp_path), strings the message must contain ({t} = tmp_path))
def _lm(t, **arrays):
    """load_landmarks of a landmark file holding the defaults overridden by ``arrays`` (None: left out)."""
    full = {"points": np.zeros((2, 5, 2)), "names": NAMES6[:2], "detected": np.ones(2, bool), "meta": META, **arrays}
    return load_landmarks(_npz(t / "l.npz", **{k: v for k, v in full.items() if v is not None}))


def _nb(t, n=None, k=None, **arrays):
    """load_neighbors of a neighbour file holding the defaults overridden by ``arrays`` (None: left out)."""
    full = {"knn": KNN, "similarity": np.ones((6, 2)), "space": "va", **arrays}
    return load_neighbors(_npz(t / "nb.npz", **{k: v for k, v in full.items() if v is not None}), n=n, k=k)


def _images(n):
    return np.zeros((n, 8, 8), np.uint8)


# (id, call(tmp_path), strings the message must contain ({t} = tmp_path))
API_CASES = [
    ("image-directory", lambda t: read_image(t), ["{t}: a directory"]),
    ("image-bomb", lambda t: read_image(_bomb(t / "b.png")), ["b.png", "more pixels than Pillow decodes safely"]),
    ("image-float", lambda t: read_image(_float_tiff(t / "f.tif")), ["f.tif", "floating-point"]),
    ("image-empty-file", lambda t: read_image(_write(t / "e.png", b"")), ["e.png", "not a readable image"]),
    ("dataset-va-nan", lambda t: FERDataset(classes="ab", labels=[0, 1], images=_images(2), va=[[0, 0], [np.nan, 0]],
                                            name="d"), ["d: va[1] holds NaN/inf"]),
    ("dataset-landmarks-inf", lambda t: FERDataset(classes="ab", labels=[0, 1], images=_images(2),
                                                   landmarks=np.full((2, 5, 2), np.inf), name="d"), ["landmarks[0]"]),
    ("dataset-soft-rows", lambda t: FERDataset(classes="ab", labels=[0, 1], images=_images(2),
                                               soft_labels=np.ones((3, 2)), name="d"), ["soft_labels has 3 rows"]),
    ("unknown-dataset", lambda t: build_dataset("imagenet", t), ["'imagenet'", "ferplus"]),
    ("unknown-option", lambda t: build_dataset("synthetic", split="train", n=8, lable_mode="x"),
     ["lable_mode", "image_size, landmarks, n, seed"]),
    ("unknown-split", lambda t: build_dataset("ferplus", t, "dev"), ["'dev'", "train, val, test"]),
    ("ferplus-label-mode", lambda t: build_dataset("ferplus", t, "train", label_mode="soft"), ["label_mode", "'soft'"]),
    ("ferplus-num-classes", lambda t: build_dataset("ferplus", t, "train", num_classes=9), ["num_classes", "9"]),
    ("ferplus-majority-rule", lambda t: build_dataset("ferplus", t, "train", majority_rule="mean"), ["'mean'"]),
    ("ferplus-empty", lambda t: build_dataset("ferplus", _ferplus(t, ""), "train"), ["label.csv: no rows"]),
    ("ferplus-no-majority", lambda t: build_dataset("ferplus", _ferplus(t, f"a.png,{TIE}\n")),
     ["split 'train' of dataset 'ferplus' has no images"]),
    ("rafdb-duplicate-same-label", lambda t: build_dataset("rafdb", _rafdb(t, ["train_00001.jpg 1"] * 2)),
     ["list_patition_label.txt:2: train_00001.jpg is listed again (first on line 1)"]),
    ("rafdb-neither-split", lambda t: build_dataset("rafdb", _rafdb(t, ["train_00001.jpg 1", "val_00001.jpg 1"])),
     ["list_patition_label.txt:2", "'val_00001.jpg'"]),
    ("rafdb-noise-file-missing", lambda t: build_dataset("rafdb", _rafdb(t, ["train_00001.jpg 1", "train_00002.jpg 2"]),
                                                         noise_file=_write(t / "n.txt", "train_00001.jpg 3\n")),
     ["n.txt: no label for 1 training images", "train_00002.jpg"]),
    ("affectnet-valence-nan", lambda t: build_dataset("affectnet", _affectnet(t, "1/a.jpg,2,nan,0")),
     ["training.csv:2: valence nan"]),
    ("affectnet-arousal-low", lambda t: build_dataset("affectnet", _affectnet(t, "1/a.jpg,2,0,-1.5")),
     ["training.csv:2: arousal -1.5 outside [-1, 1]"]),
    ("fer2013-no-split-rows", lambda t: build_dataset("fer2013", _write(t / "f.csv", "emotion,pixels,Usage\n"), "test"),
     ["f.csv: no rows with Usage 'PrivateTest'"]),
    ("landmarks-no-names", lambda t: _lm(t, names=None), ["l.npz", "no names"]),
    ("landmarks-nan", lambda t: _lm(t, points=np.full((2, 5, 2), np.nan)), ["l.npz", "'0.png'"]),
    ("landmarks-names-count", lambda t: _lm(t, names=NAMES6), ["2 point rows, 6 names"]),
    ("landmarks-duplicate-name", lambda t: _lm(t, names=np.array(["a", "a"])), ["l.npz", "'a' is listed twice"]),
    ("landmarks-meta-not-json", lambda t: _lm(t, meta="{"), ["l.npz", "JSON"]),
    ("landmarks-shape", lambda t: _lm(t, points=np.zeros((2, 5, 3))), ["l.npz", "(N, K, 2)"]),
    ("landmarks-object-array", lambda t: _lm(t, points=np.array([None, 1], dtype=object)),
     ["l.npz", "pickled Python objects"]),
    ("landmarks-truncated", lambda t: load_landmarks(_write(t / "l.npz", _npz(t / "x.npz", a=KNN).read_bytes()[:80])),
     ["l.npz", "not a readable .npz"]),
    ("landmarks-names-not-matching", lambda t: attach_landmarks(
        image_folder(_folder3(t), classes=("neutral", "happiness", "sadness"), image_size=16),
        _npz(t / "l.npz", points=np.zeros((2, 5, 2)), names=np.array(["x.png", "y.png"]), detected=np.ones(2, bool),
             meta=META)), ["l.npz: no landmarks for 3 of the 3 images", "'0.png'"]),
    ("neighbors-missing", lambda t: load_neighbors(t / "nb.npz"), ["nb.npz: no neighbour file"]),
    ("neighbors-object", lambda t: _nb(t, knn=np.array([[1], [0]], dtype=object), similarity=np.ones((2, 1))),
     ["pickled Python objects"]),
    ("neighbors-text", lambda t: load_neighbors(_write(t / "nb.npz", "knn\n1;2\n")), ["nb.npz", "not a readable .npz"]),
    ("neighbors-float-knn", lambda t: _nb(t, knn=KNN.astype(float)), ["nb.npz", "integer array"]),
    ("neighbors-string-similarity", lambda t: _nb(t, similarity=np.full((6, 2), "x")), ["nb.npz", "number array"]),
    ("neighbors-nan-similarity", lambda t: _nb(t, similarity=np.where(KNN == 4, np.nan, 1.0)),
     ["nb.npz: similarities must be finite and >= 0; row 2"]),
    ("neighbors-negative-similarity", lambda t: _nb(t, similarity=-np.ones((6, 2))), ["nb.npz", ">= 0"]),
    ("neighbors-no-similarity", lambda t: _nb(t, similarity=None),
     ["nb.npz: not a ferlab neighbour file (missing similarity"]),
    ("neighbors-rows", lambda t: _nb(t, n=9), ["nb.npz: 6 rows but the training set has 9 samples"]),
    ("neighbors-k", lambda t: _nb(t, k=5), ["nb.npz: 2 neighbours per sample, 5 requested"]),
    ("neighbors-index-range", lambda t: _nb(t, knn=KNN + 10), ["nb.npz: neighbour indices"]),
    ("neighbors-csv-header-only", lambda t: load_neighbors(_write(t / "nb.csv", "knn\n")), ["nb.csv: no rows"]),
    ("neighbors-csv-no-column", lambda t: load_neighbors(_write(t / "nb.csv", "a,b\n1,2\n")),
     ["nb.csv", "no 'knn' column"]),
    ("neighbors-csv-text", lambda t: load_neighbors(_write(t / "nb.csv", "knn\n1;2\nx;y\n")), ["nb.csv:3"]),
]


def _float_tiff(path):
    Image.fromarray(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8), mode="F").save(path)
    return path


def _folder3(t):
    for i, cls in enumerate(("happy", "sad", "sad")):
        p = t / "faces" / cls / f"{i}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(p)
    return t / "faces"


@pytest.mark.parametrize("name,call,needles", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_malformed_input_raises_dataset_error_naming_it(tmp_path, name, call, needles):
    with pytest.raises(DatasetError) as info:
        call(tmp_path)
    for needle in needles:
        assert needle.format(t=tmp_path) in str(info.value), (needle, str(info.value))
    assert "allow_pickle=" not in str(info.value) and "weights_only=False" not in str(info.value)


def test_16_bit_png_keeps_its_grey_levels(tmp_path):
    """Each 16-bit value v becomes round(v * 255 / 65535); Pillow's own conversion clips to 255."""
    values = np.array([[0, 257, 32768, 65535], [1000, 20000, 40000, 60000]], np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode.startswith("I;16")
    out = read_image(tmp_path / "g16.png")
    assert out.dtype == np.uint8 and out.shape == (2, 4, 3) and (out[..., 0] == out[..., 2]).all()
    assert out[..., 0].tolist() == [[0, 1, 128, 255], [4, 78, 156, 233]]
    ramp = (np.arange(256 * 4, dtype=np.uint32) * 64).astype(np.uint16).reshape(32, 32)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    assert len(np.unique(read_image(tmp_path / "ramp.png"))) == 256
