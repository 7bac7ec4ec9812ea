"""Which dataset arguments a run's evaluation splits get (ferlab/engine/run_data.py)."""
import dataclasses

from ferlab.engine.config import TrainConfig
from ferlab.engine.run_data import eval_dataset_args


def _cfg(**kw):
    return TrainConfig(dataset="ferplus", dataset_args={"label_mode": "fer2013", "num_classes": 7,
                                                        "landmarks": "landmarks/ferplus-train.npz",
                                                        "noise_file": "noise/train.txt"}, **kw)


def test_default_eval_args_are_clean_and_drop_the_training_split_files():
    assert eval_dataset_args(_cfg()) == {"label_mode": "majority", "num_classes": 7}


def test_explicit_eval_args_never_inherit_the_training_split_files():
    # what `ferlab eval RUN --dataset-arg exclude_train_duplicates=true` builds: the default
    # evaluation arguments plus the override, stored as eval_dataset_args; a LA-Net run's training
    # landmark file must not come back (its test images are not in it)
    cfg = _cfg()
    cfg = dataclasses.replace(cfg, eval_dataset_args={**eval_dataset_args(cfg), "exclude_train_duplicates": True})
    assert eval_dataset_args(cfg) == {"label_mode": "majority", "num_classes": 7, "exclude_train_duplicates": True}


def test_explicit_eval_args_may_name_their_own_files():
    cfg = _cfg(eval_dataset_args={"landmarks": "landmarks/ferplus-test.npz"})
    assert eval_dataset_args(cfg)["landmarks"] == "landmarks/ferplus-test.npz"
    assert "noise_file" not in eval_dataset_args(cfg)


def test_a_landmark_file_of_the_limited_training_rows_is_enough(tmp_path):
    """limit_train comes first: a landmark file holding only the images a run reads attaches to them, row by row."""
    import numpy as np
    import pytest

    from ferlab.data import DatasetError
    from ferlab.data.landmarks import save_landmarks
    from ferlab.engine.run_data import build_train_set

    pts = np.random.default_rng(0).uniform(0, 32, (16, 68, 2)).astype(np.float32)
    path = save_landmarks(tmp_path / "lm.npz", pts, np.ones(16, bool), [f"{i:06d}" for i in range(16)],
                          {"image_size": 32})
    cfg = TrainConfig(dataset="synthetic", dataset_args={"n": 48, "image_size": 32, "landmarks": str(path)},
                      limit_train=16)
    ds, _ = build_train_set(cfg)
    assert len(ds) == 16 and np.array_equal(ds.landmarks, pts)
    with pytest.raises(DatasetError, match="16 landmark rows for the 20 images"):
        build_train_set(dataclasses.replace(cfg, limit_train=20))
