"""Landmark layouts, files, attaching by name, landmark-aware transforms, detection."""
import numpy as np
import pytest
import torch
from PIL import Image

from ferlab.data.base import FERDataset
from ferlab.data.errors import DatasetError
from ferlab.data.landmarks import attach_landmarks, flip_landmarks, flip_permutation, load_landmarks, save_landmarks
from ferlab.data.transforms import LandmarkHorizontalFlip, LandmarkResizedCrop, landmark_train_transform


@pytest.mark.parametrize("k", [68, 19])
def test_flip_swaps_left_and_right_indices(k):
    perm = flip_permutation(k)
    assert sorted(perm) == list(range(k)) and (perm[perm] == np.arange(k)).all()   # a pairing
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 48, (k, 2)).astype(np.float32)
    for i in range(k):                               # a mirror-symmetric face: partners mirrored, the rest
        if perm[i] > i:                              # on the midline
            pts[perm[i]] = (48 - pts[i, 0], pts[i, 1])
        elif perm[i] == i:
            pts[i, 0] = 24
    np.testing.assert_allclose(flip_landmarks(pts, 48), pts, atol=1e-5)             # same face back
    assert not np.allclose(flip_landmarks(pts, 48, swap=False), pts)                # LA-Net's official flip
    if k == 68:   # dlib order: 36 = image-left eye's outer corner, 45 = the other eye's outer corner
        assert perm[36] == 45 and perm[8] == 8 and perm[48] == 54


def _folder_dataset(tmp_path, names, size=32):
    paths = []
    for i, n in enumerate(names):
        p = tmp_path / n
        Image.fromarray(np.full((size, size, 3), 10 * i, np.uint8)).save(p)
        paths.append(p)
    return FERDataset(classes=["a", "b"], labels=[0] * len(names), paths=paths, image_size=64)


def test_landmark_file_round_trip_matches_by_name_and_rescales(tmp_path):
    pts = np.random.default_rng(0).uniform(0, 32, (4, 68, 2)).astype(np.float32)
    f = save_landmarks(tmp_path / "lm", pts, [True, False, True, True], ["a.png", "b.png", "c.png", "d.png"],
                       {"image_size": 32, "detector": "test"})
    lm = load_landmarks(f)
    np.testing.assert_array_equal(lm["points"], pts)
    assert lm["detected"].tolist() == [True, False, True, True] and lm["meta"]["detector"] == "test"
    ds = _folder_dataset(tmp_path, ["c.png", "a.png"])                 # a subset in another order, 64 px cache
    attach_landmarks(ds, f)
    np.testing.assert_allclose(ds.landmarks, pts[[2, 0]] * 2)
    assert torch.equal(ds.get_batch([1])["landmarks"][0], torch.from_numpy(pts[0] * 2))
    with pytest.raises(DatasetError, match="e.png"):
        attach_landmarks(_folder_dataset(tmp_path, ["a.png", "e.png"]), f)


def test_lanet_tensor_files_are_in_the_224_frame(tmp_path):
    t = torch.rand(2, 19, 2) * 224
    torch.save(t, tmp_path / "raf_train_19_landmarks.tensor")
    ds = _folder_dataset(tmp_path, ["x.png", "y.png"])
    attach_landmarks(ds, tmp_path / "raf_train_19_landmarks.tensor")
    np.testing.assert_allclose(ds.landmarks, t.numpy() * 64 / 224, rtol=1e-6)
    torch.save(torch.rand(2, 19), tmp_path / "bad.tensor")
    with pytest.raises(DatasetError, match="bad.tensor"):
        load_landmarks(tmp_path / "bad.tensor")
    with pytest.raises(DatasetError, match="3 landmark rows"):
        torch.save(torch.rand(3, 19, 2), tmp_path / "three.tensor")
        attach_landmarks(ds, tmp_path / "three.tensor")


def _dot_image(x, y, size=48):
    img = torch.zeros(1, 3, size, size)
    img[0, :, int(y), int(x)] = 255.0
    return img, torch.tensor([[[x + 0.5, y + 0.5]]])


def test_crop_and_flip_move_the_landmark_with_the_pixel():
    torch.manual_seed(0)
    for _ in range(10):
        img, pt = _dot_image(20, 13)
        out, p = LandmarkResizedCrop(48, (0.5, 1.0))(img.repeat(1, 1, 1, 1), pt)
        y, x = divmod(int(out[0, 0].argmax()), 48)
        assert abs(p[0, 0, 0] - (x + 0.5)) <= 1.0 and abs(p[0, 0, 1] - (y + 0.5)) <= 1.0
    img, pt = _dot_image(20, 13)
    out, p = LandmarkHorizontalFlip(1.0, swap=False)(img, pt)
    assert out[0, 0, 13, 27] == 255 and p[0, 0].tolist() == [27.5, 13.5]


def test_landmark_train_transform_shapes():
    x, pts = torch.randint(0, 255, (3, 3, 48, 48), dtype=torch.uint8), torch.rand(3, 68, 2) * 48
    out, p = landmark_train_transform(24)(x, pts)
    assert out.shape == (3, 3, 24, 24) and p.shape == (3, 68, 2) and out.dtype == torch.float32


@pytest.mark.slow
def test_detection_finds_or_falls_back_on_every_image():
    pytest.importorskip("dlib")
    from ferlab.data.landmarks import detect_landmarks
    from ferlab.data.synthetic import synthetic
    ds = synthetic("train", n=6, image_size=48)
    out = detect_landmarks(ds, detect_size=96, progress=False)
    assert out["points"].shape == (6, 68, 2) and out["detected"].dtype == bool
    m = out["meta"]
    assert m["detected"] + m["fallback"] == 6 and m["image_size"] == 48 and len(m["fallback_box"]) == 4
    assert np.isfinite(out["points"]).all()


@pytest.mark.slow
def test_cli_landmarks_of_a_folder_whose_classes_reuse_file_names(tmp_path):
    """``ferlab landmarks`` names images as the dataset does (``<class>/<file>`` for a folder), so two
    class folders holding ``000.png`` each get their own points back."""
    pytest.importorskip("dlib")
    from ferlab.cli import main
    from ferlab.data import build_dataset
    root = tmp_path / "faces"
    for c, shade in (("happy", 30), ("sad", 200)):
        (root / "train" / c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((32, 32, 3), shade + 10 * i, np.uint8)).save(root / "train" / c / f"{i:03d}.png")
    assert main(["landmarks", "--dataset", "folder", "--data-root", str(root), "--out", str(tmp_path / "lm.npz"),
                 "--detect-size", "64", "--fallback-box", "0.1", "0.1", "0.9", "0.9", "--no-progress"]) == 0
    lm = load_landmarks(tmp_path / "lm.npz")
    names = ["happy/000.png", "happy/001.png", "sad/000.png", "sad/001.png"]
    assert lm["names"] == names
    ds = build_dataset("folder", root, "train", image_size=32, landmarks=str(tmp_path / "lm.npz"))
    assert ds.landmarks.shape == (4, 68, 2)
    # rows matched by those names: distinct points, written in reverse order, come back in dataset order
    pts = np.arange(4 * 68 * 2, dtype=np.float32).reshape(4, 68, 2) / 100
    save_landmarks(tmp_path / "lm2.npz", pts[::-1], lm["detected"], names[::-1], lm["meta"])
    ds = build_dataset("folder", root, "train", image_size=32, landmarks=str(tmp_path / "lm2.npz"))
    np.testing.assert_allclose(ds.landmarks, pts * 32 / lm["image_size"], rtol=1e-6)
