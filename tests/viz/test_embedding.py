import numpy as np
import pytest
import torch

from ferlab.data.noise import apply_noise
from ferlab.data.synthetic import synthetic
from ferlab.methods import build_method
from ferlab.models import create_backbone
from ferlab.viz.embedding import embed, extract_features, load_features, noisy_vs_clean_figure


@pytest.fixture(scope="module")
def data():
    ds = synthetic(split="train", n=40, image_size=32)
    apply_noise(ds, "symmetric", 0.4, 0)
    torch.manual_seed(0)
    m = build_method("baseline", create_backbone("resnet10", num_classes=ds.num_classes), ds.num_classes, input_size=32)
    return ds, m


def test_feature_cache_round_trips(tmp_path, data):
    ds, m = data
    path = tmp_path / "f.npz"
    a = extract_features(m, ds, cache=path, progress=False)
    assert a["features"].shape == (40, 512) and a["noisy"].sum() == (ds.labels != ds.clean_labels).sum() > 0
    b = load_features(path)
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    with torch.no_grad():   # the cache is reused, not recomputed: perturbing the model changes nothing
        for p in m.parameters():
            p.add_(1.0)
    c = extract_features(m, ds, cache=path, progress=False)
    assert np.array_equal(c["features"], a["features"])


def test_cache_of_other_labels_is_refused(tmp_path, data):
    ds, m = data
    path = tmp_path / "f.npz"
    extract_features(m, ds, cache=path, progress=False)
    other = ds.subset(np.arange(20))
    with pytest.raises(ValueError, match="another dataset"):
        extract_features(m, other, cache=path, progress=False)


@pytest.mark.parametrize("how", ["umap", "tsne"])
@pytest.mark.slow
def test_embedding_is_seeded_and_figure_has_two_panels(how):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (30, 8)), rng.normal(6, 1, (30, 8))]).astype(np.float32)
    a, b = embed(x, how, seed=0), embed(x, how, seed=0)
    assert a.shape == (60, 2)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    labels = np.repeat([0, 1], 30)
    clean = labels.copy()
    clean[:5] = 1
    fig = noisy_vs_clean_figure(a, labels, clean, classes=["a", "b"])
    assert len(fig.axes) == 2
