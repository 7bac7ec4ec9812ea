"""timm models as backbones: the stage description is the model's own ``feature_info`` and computes exactly
the model's features; weight files load with a key report or are refused; nothing is fetched unless asked."""
import os
import subprocess
import sys

import pytest
import torch

from ferlab.errors import ConfigError
from ferlab.models import WeightsError, backbone_info, create_backbone, weight_tags

timm = pytest.importorskip("timm")

CNNS = ["resnet50", "convnext_atto", "efficientnet_b0", "regnety_002", "mobilenetv3_small_050"]
SIDE = 64


@pytest.mark.parametrize("arch", CNNS)
def test_stages_are_feature_info_and_compute_the_models_features(arch):
    torch.manual_seed(0)
    net = create_backbone(f"timm:{arch}", num_classes=7).eval()
    model = net.model
    # the description: feature_info's entries from stride 4 on, named after their modules; the last stage
    # ends where timm pools, so its channels are the map timm's head reads (num_features)
    info = [d for d in model.feature_info if d["reduction"] >= 4]
    assert [d["module"] for d in net.feature_info] == [d["module"].replace(".", "_") for d in info]
    assert [d["reduction"] for d in net.feature_info] == [d["reduction"] for d in info]
    assert [d["channels"] for d in net.feature_info] == [d["num_chs"] for d in info[:-1]] + [model.num_features]
    # the shapes each stage really returns, and the chain is timm's forward_features
    x = torch.randn(2, 3, SIDE, SIDE)
    with torch.no_grad():
        f = net.forward_stem(x)
        assert f.shape[1] == net.stem_info["channels"] and f.shape[-1] == SIDE // net.stem_info["reduction"]
        for d, stage in zip(net.feature_info, net.stages):
            f = stage(f)
            assert f.shape == (2, d["channels"], SIDE // d["reduction"], SIDE // d["reduction"]), d
        want = model.forward_features(x)
        assert torch.equal(f, want) and torch.equal(net.forward_features(x), want)
        assert torch.equal(net.forward_stages(net.forward_stages(net.forward_stem(x), 0, 2), 2), want)
        pooled = net.forward_head(want, pre_logits=True)
        assert torch.equal(pooled, model.forward_head(want, pre_logits=True))
        torch.testing.assert_close(net(x), net.fc(pooled))
    assert net.fc.in_features == net.num_features == pooled.shape[1] and net.fc.out_features == 7
    # stages are views: every parameter once, under timm's own names behind "model."
    assert all(getattr(net, n) is s for n, s in zip(net.stage_names, net.stages))
    assert [k for k in net.state_dict() if not k.startswith("fc.")] == [f"model.{k}" for k in model.state_dict()]
    assert len(list(net.parameters())) == len(list(model.parameters())) + 2            # + ferlab's fc
    # what the methods read off the head: a hidden layer after the pooling (MobileNet-V3's conv_head), a
    # normalisation of the pooled features (ConvNeXt's LayerNorm), or the plain mean
    assert net.head_hidden == (arch == "mobilenetv3_small_050")
    assert net.linear_pool == (arch not in ("convnext_atto", "mobilenetv3_small_050"))


def test_min_reduction_moves_the_first_stage_into_the_stem():
    net = create_backbone("timm:resnet50", min_reduction=8)
    assert net.stage_names == ("layer2", "layer3", "layer4") and net.stem_info == {"channels": 256, "reduction": 4}
    assert net.backbone_args == {"min_reduction": 8}
    with torch.no_grad():
        assert net.forward_stem(torch.randn(1, 3, 64, 64)).shape == (1, 256, 16, 16)


def test_pretrained_cfg_is_timms_and_nothing_is_fetched():
    t = timm.models.get_pretrained_cfg("convnext_atto")
    rand, pre = backbone_info("timm:convnext_atto"), backbone_info("timm:convnext_atto", "timm")
    for cfg in (rand, pre):
        assert cfg["mean"] == tuple(t.mean) and cfg["std"] == tuple(t.std) and cfg["input_size"] == t.input_size[-1]
    assert rand["licence"] is None and rand["tag"] is None and "random" in rand["provenance"]
    assert pre["licence"] == t.license and t.hf_hub_id in pre["provenance"] and pre["tag"] == "timm"
    assert weight_tags("timm:convnext_atto") == ["timm"]
    net = create_backbone("timm:convnext_atto")
    assert net.pretrained_cfg == {**rand, "min_input_size": 32}
    vit = backbone_info("timm:vit_tiny_patch16_224")
    assert vit["mean"] == (0.5, 0.5, 0.5) and vit["min_input_size"] == 224          # a fixed-size model


@pytest.mark.slow
def test_weights_timm_fetches_only_when_asked_and_a_failed_fetch_is_one_line(tmp_path):
    """With the hub offline and empty caches, random init builds and ``weights="timm"`` -- the one path
    that downloads -- is a one-line WeightsError, not a traceback."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "TORCH_HOME": str(tmp_path / "th"),
           "OMP_NUM_THREADS": "1"}
    code = ("from ferlab.models import create_backbone\n"
            "create_backbone('timm:regnety_002')\n"
            "create_backbone('timm:regnety_002', weights='timm')\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 1 and "WeightsError: timm:regnety_002: timm could not fetch its weights" in out.stderr
    assert not (tmp_path / "hf").exists() or not any((tmp_path / "hf").rglob("*.safetensors"))


@pytest.mark.parametrize("form", ["state_dict", "timm_checkpoint", "safetensors", "ferlab"])
def test_a_weight_file_loads_with_a_key_report(tmp_path, capsys, form):
    """timm's own state dict (with its 1000-class classifier), ``{"state_dict": ...}`` as timm's train script
    writes, a .safetensors file and a ferlab backbone's state dict all load every tensor; the classifier is
    neither loaded nor counted."""
    torch.manual_seed(1)
    src = timm.create_model("regnety_002")                       # classifier head.fc: 1000 classes
    sd = src.state_dict()
    path = tmp_path / "w.pth"
    if form == "state_dict":
        torch.save(sd, path)
    elif form == "timm_checkpoint":
        torch.save({"state_dict": sd, "arch": "regnety_002", "epoch": 3}, path)
    elif form == "safetensors":
        from safetensors.torch import save_file
        path = tmp_path / "w.safetensors"
        save_file(sd, str(path))
    else:
        donor = create_backbone("timm:regnety_002", num_classes=7)
        donor.model.load_state_dict(sd, strict=False)
        torch.save(donor.state_dict(), path)
    net = create_backbone("timm:regnety_002", weights=path, num_classes=7)
    rep = net.load_report
    tensors = [k for k in sd if not k.endswith("num_batches_tracked") and not k.startswith("head.fc.")]
    assert sorted(rep.loaded) == sorted(tensors) and rep.match == 1.0
    assert not rep.missing and not rep.unexpected and not rep.shape_mismatch
    assert rep.format == {"state_dict": "torchvision", "timm_checkpoint": "state_dict", "safetensors": "safetensors",
                          "ferlab": "ferlab"}[form]
    assert f"loaded {len(tensors)} backbone tensors (100.0% match" in capsys.readouterr().out
    for k in tensors:
        assert torch.equal(net.model.state_dict()[k], sd[k]), k
    assert net.pretrained_cfg["weights"] == str(path) and net.pretrained_cfg["tag"] is None


def test_a_file_of_another_architecture_is_refused(tmp_path):
    torch.save(timm.create_model("resnet18").state_dict(), tmp_path / "r18.pth")
    with pytest.raises(WeightsError, match=r"r18.pth: only \d+\.\d% of the backbone's tensors match.*another "
                                           r"architecture\? .*shape_mismatch"):
        create_backbone("timm:resnet50", weights=tmp_path / "r18.pth", verbose=False)
    torch.save(timm.create_model("convnext_atto").state_dict(), tmp_path / "cn.pth")
    with pytest.raises(WeightsError, match=r"only 0\.0% of the backbone's tensors match"):
        create_backbone("timm:regnety_002", weights=tmp_path / "cn.pth", verbose=False)
    with pytest.raises(WeightsError, match="weights must be none, 'timm'"):
        create_backbone("timm:regnety_002", weights="imagenet")


def test_unknown_or_undescribable_models_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"timm:convnxt_tiny: timm .* has no model 'convnxt_tiny' \(close: "
                                          r"convnext_tiny"):
        create_backbone("timm:convnxt_tiny")
    with pytest.raises(ConfigError, match="timm:levit_128s: ferlab cannot describe its stages"):
        create_backbone("timm:levit_128s")
    with pytest.raises(ConfigError, match=r"backbone_args \{'depth_multiplier': 2\}"):
        create_backbone("timm:resnet50", depth_multiplier=2)


def test_vit_is_described_by_its_last_tokens_on_a_grid():
    net = create_backbone("timm:vit_tiny_patch16_224", img_size=48).eval()
    assert not net.spatial_stages and net.stages == () and net.feature_info == [] and net.min_input_size == 48
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        f = net.forward_features(x)
        tokens = net.model.forward_features(x)                        # (2, 1 + 9, 192): class token, 3 x 3 patches
        assert f.shape == (2, 192, 3, 3)
        torch.testing.assert_close(f.flatten(2).transpose(1, 2), tokens[:, 1:])
        torch.testing.assert_close(net.forward_head(f, pre_logits=True), tokens[:, 1:].mean(1))
    with pytest.raises(ValueError, match="takes 48 x 48 inputs only, got 64 x 64: build it with backbone_args"):
        net.forward_features(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="no stem or stages: its blocks map tokens to tokens"):
        net.forward_stem(x)


def test_a_deep_copy_keeps_its_stages_on_its_own_parameters():
    """Methods deep-copy backbones and stages (DMUE's branches, LA-Net's momentum encoder, exports): a copy's
    stage views run the copy's modules, not the original's."""
    import copy
    net = create_backbone("timm:efficientnet_b0")
    twin = copy.deepcopy(net)
    assert twin.stages[-1][0] is twin.model.blocks[5] and twin.stages[-1][0] is not net.model.blocks[5]
    stage = copy.deepcopy(net.stages[-1])
    assert [k for k, _ in stage.named_children()] == ["blocks_5", "blocks_6", "conv_head", "bn2"]
