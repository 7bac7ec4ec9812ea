import json

import numpy as np
import pytest

from ferlab.data import build_dataset
from ferlab.data.noise import apply_noise, make_noisy_labels, save_manifest
from ferlab.data.rafdb import read_label_list, write_label_list


def test_symmetric_never_same_class_and_uniform_over_others():
    clean = np.repeat(np.arange(7), 3000)
    noisy, man = make_noisy_labels(clean, 7, "symmetric", 0.3, seed=1)
    flipped = noisy != clean
    assert abs(flipped.mean() - 0.3) < 0.01
    assert man["realised_rate"] == pytest.approx(flipped.mean())
    conf = np.array(man["confusion"])
    assert conf.sum() == len(clean)
    off = conf[~np.eye(7, dtype=bool)].reshape(7, 6)
    # each row: ~3000*0.3/6 = 150 per other class
    assert off.min() > 100 and off.max() < 200


def test_same_seed_same_labels_different_seed_different():
    clean = np.random.default_rng(0).integers(0, 7, 5000)
    a, _ = make_noisy_labels(clean, 7, "symmetric", 0.3, seed=5)
    b, _ = make_noisy_labels(clean, 7, "symmetric", 0.3, seed=5)
    c, _ = make_noisy_labels(clean, 7, "symmetric", 0.3, seed=6)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_known_seed_is_stable_across_machines():
    # PCG64 draws are specified bit-for-bit; a change here means old manifests no longer reproduce
    # (pinned values, recorded 2026-11 with numpy's PCG64)
    noisy, man = make_noisy_labels(np.zeros(12, dtype=np.int64), 7, "symmetric", 0.5, seed=0)
    assert noisy.tolist() == [0, 6, 4, 1, 0, 0, 0, 0, 0, 0, 0, 4]
    assert man["noisy_sha256"] == "cb1d638881c6882b3981218b765700dad5bd6dfd1d7a6ef8b6e2365d6eca8730"


def test_asymmetric_flips_only_to_the_mapped_class():
    classes = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear")
    clean = np.repeat(np.arange(7), 1000)
    noisy, man = make_noisy_labels(clean, 7, "asymmetric", 0.4, 0, classes=classes, pairs={"sadness": "neutral"})
    changed = noisy != clean
    assert set(clean[changed]) == {3} and set(noisy[changed]) == {0}
    assert abs(changed[clean == 3].mean() - 0.4) < 0.05
    assert man["pairs"] == {"sadness": "neutral"}


def test_eac_noise_file_round_trip(tmp_path):
    rows = [(f"train_{i:05d}.jpg", i % 7) for i in range(1, 50)]
    path = tmp_path / "noise01.txt"
    write_label_list(path, rows)
    assert path.read_text().splitlines()[0] == "train_00001.jpg 2"  # 1-based on disk
    assert read_label_list(path) == rows


@pytest.mark.realdata
def test_symmetric_30_on_ferplus_majority(ferplus_root, tmp_path):
    ds = build_dataset("ferplus", ferplus_root, "train")
    clean = ds.labels.copy()
    man = apply_noise(ds, "symmetric", 0.3, seed=0)
    assert abs(man["realised_rate"] - 0.30) <= 0.01
    assert not np.any((ds.labels == clean) != (ds.labels == ds.clean_labels))
    flipped = ds.labels != clean
    assert np.all(ds.labels[flipped] != clean[flipped])
    save_manifest(man, tmp_path / "noise.json")
    back = json.loads((tmp_path / "noise.json").read_text())
    assert back["kind"] == "symmetric" and back["seed"] == 0 and len(back["confusion"]) == 7
    ds2 = build_dataset("ferplus", ferplus_root, "train")
    apply_noise(ds2, "symmetric", 0.3, seed=0)
    assert np.array_equal(ds.labels, ds2.labels)
