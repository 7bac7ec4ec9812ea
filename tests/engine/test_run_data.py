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
