"""Neighbour lists for LDLVA: never the sample itself, label-free, file round-trips."""
import numpy as np
import pytest

from ferlab.data import build_dataset
from ferlab.data.neighbors import build_neighbors, load_neighbors, nearest, read_knn_csv, save_neighbors, write_knn_csv


def test_nearest_by_hand_excludes_self_even_for_duplicates():
    pts = np.array([[0.0], [0.0], [1.0], [3.0]])
    knn, dist = nearest(pts, 2)
    assert knn.tolist() == [[1, 2], [0, 2], [0, 1], [2, 0]]
    np.testing.assert_allclose(dist, [[0, 1], [0, 1], [1, 1], [2, 3]])
    assert not (knn == np.arange(4)[:, None]).any()
    with pytest.raises(ValueError, match="k must be"):
        nearest(pts, 4)


def test_va_neighbours_of_synthetic_faces_ignore_the_labels(tmp_path):
    ds = build_dataset("synthetic", None, "train", n=80, image_size=32)
    nb = build_neighbors(ds, "va", k=8)
    assert nb["knn"].shape == (80, 8) and not (nb["knn"] == np.arange(80)[:, None]).any()
    d = np.abs(ds.va[:, None] - ds.va[nb["knn"]]).sum(-1)
    np.testing.assert_allclose(nb["similarity"], np.exp(-d / 0.5), rtol=1e-5)
    ds.set_labels(np.roll(ds.labels, 1))                     # noisy labels: same neighbours
    assert np.array_equal(build_neighbors(ds, "va", k=8)["knn"], nb["knn"])
    back = load_neighbors(save_neighbors(nb, tmp_path / "nb.npz"), n=80, k=4)
    assert np.array_equal(back["knn"], nb["knn"][:, :4]) and back["space"] == "va"
    with pytest.raises(ValueError, match="training set has 81"):
        load_neighbors(tmp_path / "nb.npz", n=81)


def test_landmark_space_and_missing_spaces_are_clear():
    ds = build_dataset("synthetic", None, "train", n=40, image_size=32)
    nb = build_neighbors(ds, "landmarks", k=3)
    assert nb["knn"].shape == (40, 3) and 0 < nb["similarity"].mean() < 1
    ds.va = None
    with pytest.raises(ValueError, match="no valence/arousal"):
        build_neighbors(ds, "va")
    with pytest.raises(ValueError, match="checkpoint"):
        build_neighbors(ds, "features")


def test_official_csv_knn_column_round_trips_and_bad_rows_name_the_line(tmp_path):
    knn = np.array([[1, 2], [2, 0], [0, 1]])
    path = write_knn_csv(tmp_path / "raf_train.csv", knn, {"subDirectory_filePath": ["a.jpg", "b.jpg", "c.jpg"],
                                                           "expression": [0, 1, 2]})
    assert path.read_text().splitlines()[1] == "a.jpg,0,1;2"
    assert np.array_equal(read_knn_csv(path), knn)
    assert np.array_equal(load_neighbors(path, n=3, k=2)["knn"], knn)
    (tmp_path / "bad.csv").write_text("subDirectory_filePath,knn\na.jpg,1;x\n")
    with pytest.raises(ValueError, match="bad.csv:2"):
        read_knn_csv(tmp_path / "bad.csv")
    (tmp_path / "self.csv").write_text("knn\n0;1\n0;0\n")
    with pytest.raises(ValueError, match="other rows"):
        load_neighbors(tmp_path / "self.csv")


@pytest.mark.slow
def test_cli_builds_feature_neighbours_from_a_run_and_ldlva_trains_on_them(tmp_path, capsys):
    """`ferlab neighbors --space features --checkpoint RUN` -> a file an LDLVA run reads."""
    import torch

    from ferlab.cli import main
    from ferlab.engine.config import TrainConfig
    from ferlab.engine.trainer import fit
    base = dict(out_dir=str(tmp_path), dataset_args={"n": 64, "image_size": 32}, backbone="resnet10", input_size=32,
                epochs=1, batch_size=16, lr=1e-3, progress=False, limit_eval=16)
    fit(TrainConfig(method="baseline", name="feat", **base))
    assert main(["neighbors", "--dataset", "synthetic", "--space", "features", "--out", str(tmp_path / "x.npz")]) == 2
    assert "needs checkpoint" in capsys.readouterr().err
    cfg = TrainConfig(method="ldlva", name="ldlva", **base)
    cfg.save_yaml(tmp_path / "ldlva.yaml")
    assert main(["neighbors", "--config", str(tmp_path / "ldlva.yaml"), "--space", "features", "--checkpoint",
                 str(tmp_path / "feat" / "checkpoints" / "last.pt"), "--out", str(tmp_path / "nb.npz"),
                 "--no-progress", "-k", "4"]) == 0
    nb = load_neighbors(tmp_path / "nb.npz", n=64)
    assert nb["space"] == "features" and nb["knn"].shape == (64, 4)
    cfg.method_args = {"neighbors": str(tmp_path / "nb.npz"), "num_neighbors": 4}
    fit(cfg)
    state = torch.load(tmp_path / "ldlva" / "checkpoints" / "last.pt", weights_only=True)
    assert torch.equal(state["model"]["knn"], torch.as_tensor(nb["knn"]))
