"""``--noise from_file`` assigns labels by image name: row order does not matter, every image gets
the label its own row gives it, and a file that does not name every training image is refused."""
import random

import numpy as np
import pytest
from PIL import Image

from ferlab.cli import main
from ferlab.data import DatasetError
from ferlab.data.folder import image_folder
from ferlab.data.noise import apply_noise
from ferlab.data.rafdb import write_label_list
from ferlab.engine.config import TrainConfig
from ferlab.engine.trainer import build_train_set

CLASSES = ("happy", "sad", "surprise")


@pytest.fixture
def faces(tmp_path):
    """ROOT/train/<class>/<class>NN.png: 4 images per class, real PNGs."""
    for c, cls in enumerate(CLASSES):
        for i in range(4):
            p = tmp_path / "faces" / "train" / cls / f"{cls}{i:02d}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((24, 24, 3), 20 * (4 * c + i), np.uint8)).save(p)
    return tmp_path / "faces"


def _wanted(names):
    """A label per image that differs from its folder's class for every other image (0-based)."""
    return {n: (CLASSES.index(n.split("/")[0]) + (1 if k % 2 else 0)) % 3 for k, n in enumerate(names)}


def test_reordered_rows_give_every_image_its_own_label(faces, tmp_path):
    ds = image_folder(faces / "train", image_size=24)
    names = ds.sample_names()
    assert names[0] == "happy/happy00.png" and len(set(names)) == 12
    wanted = _wanted(names)
    rows = list(wanted.items())
    random.Random(0).shuffle(rows)
    assert [n for n, _ in rows] != names                       # really reordered
    write_label_list(tmp_path / "noise.txt", rows + [("other/unused.png", 2)])   # rows of other images are ignored
    clean = ds.labels.copy()
    man = apply_noise(ds, "from_file", noise_file=tmp_path / "noise.txt")
    assert [int(lab) for lab in ds.labels] == [wanted[n] for n in names]
    assert np.array_equal(ds.clean_labels, clean)
    assert man["num_flipped"] == sum(wanted[n] != c for n, c in zip(names, clean)) == 6
    assert man["noise_file"] == str(tmp_path / "noise.txt")


def test_training_set_reads_the_file_by_name_after_limit_train(faces, tmp_path):
    """What a run trains on: limit_train keeps 5 images, the file (for all 12, reversed) labels them."""
    names = image_folder(faces / "train", image_size=24).sample_names()
    wanted = _wanted(names)
    write_label_list(tmp_path / "noise.txt", list(reversed(list(wanted.items()))))
    cfg = TrainConfig(dataset="folder", data_root=str(faces), noise="from_file", noise_file=str(tmp_path / "noise.txt"),
                      limit_train=5, dataset_args={"image_size": 24})
    ds, man = build_train_set(cfg)
    assert ds.sample_names() == names[:5]
    assert ds.labels.tolist() == [wanted[n] for n in names[:5]]
    assert man["kind"] == "from_file" and man["num_samples"] == 5


def test_ferlab_noise_output_shuffled_reads_back_to_the_same_labels(faces, tmp_path):
    out = tmp_path / "sym.txt"
    assert main(["noise", "--dataset", "folder", "--data-root", str(faces), "--kind", "symmetric", "--rate", "0.5",
                 "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    random.Random(1).shuffle(lines)
    (tmp_path / "shuffled.txt").write_text("\n".join(lines) + "\n")
    a = image_folder(faces / "train", image_size=24)
    apply_noise(a, "symmetric", 0.5, seed=0)
    b = image_folder(faces / "train", image_size=24)
    apply_noise(b, "from_file", noise_file=tmp_path / "shuffled.txt")
    assert np.array_equal(a.labels, b.labels) and (a.labels != a.clean_labels).any()


def test_a_missing_name_is_an_error_naming_it(faces, tmp_path):
    ds = image_folder(faces / "train", image_size=24)
    rows = [(n, 1) for n in ds.sample_names() if n != "sad/sad02.png"]
    write_label_list(tmp_path / "noise.txt", rows)
    with pytest.raises(DatasetError, match=r"noise.txt: no label for 1 of the 12 images .* 'sad/sad02.png'"):
        apply_noise(ds, "from_file", noise_file=tmp_path / "noise.txt")
    assert ds.clean_labels is None                              # the refused file changed nothing
    (tmp_path / "dup.txt").write_text("happy/happy00.png 1\nsad/sad00.png 2\nhappy/happy00.png 2\n")
    with pytest.raises(DatasetError, match=r"dup.txt:3: happy/happy00.png is listed again \(first on line 1"):
        apply_noise(image_folder(faces / "train", image_size=24), "from_file", noise_file=tmp_path / "dup.txt")
