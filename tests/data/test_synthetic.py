import numpy as np
import pytest

from ferlab.data.synthetic import render_faces, synthetic


def test_same_seed_same_faces_and_splits_differ():
    a, b = render_faces(40, seed=3), render_faces(40, seed=3)
    assert np.array_equal(a["images"], b["images"]) and np.array_equal(a["labels"], b["labels"])
    tr, te = synthetic("train", n=40, seed=3), synthetic("test", n=40, seed=3)
    assert not np.array_equal(tr.cache.decode(0), te.cache.decode(0))


def test_sample_keys_shapes_and_landmarks_inside_image():
    ds = synthetic("train", n=50, image_size=64)
    s = ds[0]
    assert s["image"].shape == (3, 64, 64) and s["image"].dtype.__str__() == "torch.uint8"
    assert s["landmarks"].shape == (68, 2) and s["va"].shape == (2,)
    lm = ds.landmarks
    assert (lm > 0).all() and (lm < 64).all()
    # the mouth (48-67) is below the eyes (36-47) for every face (roll is at most 12 degrees)
    assert (lm[:, 48:68, 1].mean(1) > lm[:, 36:48, 1].mean(1)).all()


def test_expression_moves_landmarks():
    d = render_faces(400, seed=0)
    lab, lm = d["labels"], d["landmarks"]
    mouth_open = lm[:, 66, 1] - lm[:, 62, 1]
    # surprise opens the mouth far more than neutral
    assert mouth_open[lab == 2].mean() > 2 * mouth_open[lab == 0].mean()


@pytest.mark.slow
def test_valence_follows_class():
    d = render_faces(700, seed=1)
    v = d["va"][:, 0]
    assert v[d["labels"] == 1].mean() > 0.3  # happiness positive
    assert v[d["labels"] == 3].mean() < -0.3  # sadness negative
