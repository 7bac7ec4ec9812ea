"""Pretrained configurations: each backbone's normalisation and provenance, taken by the trainer
unless the config overrides it; backbone options travel with runs."""
import pytest
import torch

from ferlab.data.transforms import HALF_MEAN, HALF_STD, IMAGENET_MEAN, IMAGENET_STD, Normalize
from ferlab.engine.config import TrainConfig
from ferlab.models import WeightsError, backbone_info, create_backbone, list_backbones, weight_tags

KEYS = {"mean", "std", "input_size", "min_input_size", "trained_on", "provenance", "licence", "source",
        "backbone", "tag", "weights"}


@pytest.mark.parametrize("name", list_backbones())
def test_every_backbone_has_a_random_init_record(name):
    cfg = backbone_info(name)
    assert KEYS <= set(cfg) and cfg["tag"] is None and cfg["weights"] is None and cfg["licence"] is None
    want = {"resnet18_dmue": (HALF_MEAN, HALF_STD)}.get(name, (IMAGENET_MEAN, IMAGENET_STD))
    if not name.startswith("dlib"):
        assert (cfg["mean"], cfg["std"]) == want                        # as before pretrained_cfg existed
    net = create_backbone(name)
    assert net.pretrained_cfg == {**cfg, "min_input_size": net.min_input_size} and net.default_cfg is net.pretrained_cfg
    assert net.backbone_args == {}


def test_minimum_input_of_resnet_stems_is_tight():
    for name in ("resnet50_caffe", "resnet18_dmue"):
        net, m = create_backbone(name).eval(), backbone_info(name)["min_input_size"]
        assert net.min_input_size == m
        with torch.no_grad():
            net(torch.randn(1, 3, m, m))
            with pytest.raises(RuntimeError):
                net(torch.randn(1, 3, m - 1, m - 1))


def test_dlib_record_reproduces_dlibs_input_layer():
    cfg = backbone_info("dlib_resnet29", "dlib")
    assert weight_tags("dlib_resnet29") == ["dlib"] and weight_tags("resnet18") == []
    assert (cfg["input_size"], cfg["min_input_size"]) == (150, 103)
    assert "public domain" in cfg["licence"] and "CC0" in cfg["licence"] and "Davis King" in cfg["provenance"]
    assert cfg["install"] == "pip install 'ferlab[landmarks]'"
    pixels = torch.tensor([0.0, 122.782, 255.0]).view(1, 1, 3, 1).expand(1, 3, 3, 1)
    got = Normalize(cfg["mean"], cfg["std"])(pixels)
    want = (pixels - torch.tensor([122.782, 117.001, 104.298]).view(1, 3, 1, 1)) / 256   # dlib: (p - mean) / 256
    torch.testing.assert_close(got, want)
    assert backbone_info("dlib_resnet29", "my_dlib_net.dat")["tag"] == "dlib"          # a .dat file: dlib's cfg
    assert backbone_info("resnet18", "resnet18_msceleb.pth")["mean"] == IMAGENET_MEAN


def test_unknown_named_weights_are_refused():
    with pytest.raises(WeightsError, match=r"resnet18 has no weights named 'dlib' \(named: none\)"):
        create_backbone("resnet18", weights="dlib")


def test_config_normalisation_overrides_the_backbone():
    cfg = backbone_info("resnet18")
    assert TrainConfig().normalisation(cfg) == (IMAGENET_MEAN, IMAGENET_STD)
    assert TrainConfig(mean=[0.5, 0.5, 0.5]).normalisation(cfg) == ((0.5, 0.5, 0.5), IMAGENET_STD)


def test_backbone_args_and_normalisation_travel_with_a_run(tmp_path):
    from ferlab.engine.trainer import fit, load_run_method
    cfg = TrainConfig(out_dir=str(tmp_path), name="r", dataset_args={"n": 32, "image_size": 32},
                      backbone="dlib_resnet29",
                      backbone_args={"out_stage": 3, "norm": "batchnorm"}, input_size=32, epochs=1, batch_size=16,
                      progress=False, val_split=None, limit_eval=16, std=[0.25, 0.25, 0.25])
    fit(cfg)
    method, run_cfg, _ = load_run_method(tmp_path / "r" / "checkpoints" / "last.pt", "cpu")
    b = method.backbone
    assert run_cfg.backbone_args == {"out_stage": 3, "norm": "batchnorm"}
    assert (b.out_stage, b.norm, b.num_features) == (3, "batchnorm", 128)
    assert method.mean == backbone_info("dlib_resnet29")["mean"] and method.std == (0.25, 0.25, 0.25)
    with pytest.raises(ValueError, match=r"input_size 16 is below the minimum input of dlib_resnet29 .*: 31 px"):
        fit(TrainConfig(**{**cfg.to_dict(), "name": "small", "input_size": 16}))
