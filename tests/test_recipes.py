"""Every recipe preset parses, names registered parts, and the FERPlus cpu presets are comparable."""
from pathlib import Path

import pytest
import yaml

from ferlab.engine.config import TrainConfig
from ferlab.methods import list_methods, method_class
from ferlab.models import list_backbones

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*/*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_preset_parses(path):
    presets = yaml.safe_load(path.read_text())["presets"]
    assert {"paper", "cpu"} <= set(presets)
    for name in presets:
        given = TrainConfig.from_yaml(path, name)
        cfg = given.resolved(method_class(given.method).defaults)
        assert cfg.method in list_methods() and cfg.backbone in list_backbones()
        if name.startswith("paper"):
            assert cfg.input_size == 224 and cfg.weights, f"{path}:{name} must be the paper setting"


def test_ferplus_cpu_presets_share_everything_but_the_method():
    keys = ("dataset", "dataset_args", "backbone", "input_size", "epochs", "batch_size", "lr", "seed", "limit_train",
            "optimizer", "weight_decay", "scheduler", "gamma")
    cfgs = []
    for method in ("baseline", "eac", "rul", "ldlva", "lanet"):
        cfg = TrainConfig.from_yaml(Path(__file__).resolve().parents[1] / "recipes" / method / "ferplus.yaml", "cpu")
        cfg.dataset_args.pop("landmarks", None)          # LA-Net's training-only landmark file
        cfgs.append(cfg.resolved(method_class(method).defaults))
    family = {"adam_keras": "adam"}      # LDLVA trains with Keras' Adam, its official update
    for key in keys:
        values = {repr(family.get(v, v) if key == "optimizer" else v) for v in (getattr(c, key) for c in cfgs)}
        assert len(values) == 1, key
