"""Every backbone describes its stages, and the description matches what the network computes."""
import math

import pytest
import torch
import torchvision

from ferlab.models import create_backbone, list_backbones


def _measured_reduction(side: int, h: int) -> int:
    return 2 ** round(math.log2(side / h))       # unpadded nets (dlib) are a pixel or two smaller than side / r


@pytest.mark.parametrize("name", list_backbones())
def test_stage_description_matches_forward(name):
    torch.manual_seed(0)
    net = create_backbone(name, num_classes=7).eval()
    side = 160 if name.startswith("dlib") else 64
    x = torch.randn(1, 3, side, side)
    with torch.no_grad():
        f = net.forward_stem(x)
        assert f.shape[1] == net.stem_info["channels"]
        assert _measured_reduction(side, f.shape[-1]) == net.stem_info["reduction"]
        info = []
        for stage in net.stages:
            f = stage(f)
            info.append({"channels": f.shape[1], "reduction": _measured_reduction(side, f.shape[-1])})
        assert [{k: d[k] for k in ("channels", "reduction")} for d in net.feature_info] == info
        assert torch.equal(net.forward_stages(net.forward_stem(x)), net.forward_features(x))
        assert torch.equal(net.forward_stages(net.forward_stages(net.forward_stem(x), 0, 2), 2), f)
    assert [d["module"] for d in net.feature_info] == list(net.stage_names)
    assert all(getattr(net, n) is s for n, s in zip(net.stage_names, net.stages))
    assert net.feature_info[-1]["channels"] == net.num_features == net.fc.in_features
    children = dict(net.named_children())
    assert all(children[n] is s for n, s in zip(net.stage_names, net.stages)) and "stages" not in children


def test_resnet_parameter_names_are_torchvisions():
    for ours, tv in [("resnet18", torchvision.models.resnet18), ("resnet50", torchvision.models.resnet50)]:
        assert list(create_backbone(ours, num_classes=1000).state_dict()) == list(tv().state_dict())


@pytest.mark.parametrize("out_stage", [1, 2, 3, 4, 5])
def test_dlib_out_stage_sets_the_stages(out_stage):
    net = create_backbone("dlib_resnet29", out_stage=out_stage)
    assert net.stage_names == tuple(f"layer{i}" for i in range(1, out_stage + 1))
    assert net.num_features == (32, 64, 128, 256, 256)[out_stage - 1]
    assert not hasattr(net, f"layer{out_stage + 1}")                 # later stages are not built
