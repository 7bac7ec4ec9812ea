"""torchvision CNNs as backbones: cut where their stride grows, checked against their own logits; weights enum
records without a fetch; weight files with a key report; networks that are not a chain refused in one line."""
import pytest
import torch
import torchvision

from ferlab.errors import ConfigError
from ferlab.models import WeightsError, backbone_info, create_backbone, weight_tags

SIDE = 64


def test_tv_resnet18_is_described_as_ferlabs_own_resnet18():
    """Cut by measured strides alone, torchvision's ResNet-18 gets the description ferlab's ResNet-18 declares."""
    torch.manual_seed(0)
    tv, own = create_backbone("tv:resnet18", num_classes=7).eval(), create_backbone("resnet18", num_classes=7)
    assert tv.stage_names == own.stage_names and tv.feature_info == own.feature_info
    assert tv.stem_info == own.stem_info and tv.stem_pieces == ("conv1", "bn1", "relu", "maxpool")
    assert [k.removeprefix("model.") for k in tv.state_dict()] == list(own.state_dict())
    # the same weights give the same features, pooled features and logits in both
    own.load_state_dict({k.removeprefix("model."): v for k, v in tv.state_dict().items()})
    own.eval()
    x = torch.randn(2, 3, SIDE, SIDE)
    with torch.no_grad():
        torch.testing.assert_close(tv.forward_features(x), own.forward_features(x))
        torch.testing.assert_close(tv(x), own(x))
        f = tv.forward_stem(x)
        for d, stage in zip(tv.feature_info, tv.stages):
            f = stage(f)
            assert f.shape == (2, d["channels"], SIDE // d["reduction"], SIDE // d["reduction"])


@pytest.mark.parametrize("arch,stages,channels", [
    ("efficientnet_b0", ["features_2", "features_3", "features_5", "features_8"], [24, 40, 112, 1280]),
    ("convnext_tiny", ["features_1", "features_3", "features_5", "features_7"], [96, 192, 384, 768]),
    ("regnet_y_400mf", [f"trunk_output_block{i}" for i in range(1, 5)], [48, 104, 208, 440]),
])
def test_stages_end_where_the_stride_grows_and_compute_the_networks_logits(arch, stages, channels):
    """Stage i ends at the last module of stride 4, 8, 16, 32 (EfficientNet: blocks 2, 3, 5 and the head conv;
    ConvNeXt: the stages after each downsampling layer); the pooled features through torchvision's own
    classifier give torchvision's logits."""
    torch.manual_seed(0)
    net = create_backbone(f"tv:{arch}").eval()
    assert list(net.stage_names) == stages and [d["channels"] for d in net.feature_info] == channels
    assert [d["reduction"] for d in net.feature_info] == [4, 8, 16, 32]
    torch.manual_seed(0)
    ref = torchvision.models.get_model(arch).eval()                  # the same init, its classifier kept
    x = torch.randn(2, 3, SIDE, SIDE)
    with torch.no_grad():
        f = net.forward_stem(x)
        for d, stage in zip(net.feature_info, net.stages):
            f = stage(f)
            assert f.shape == (2, d["channels"], SIDE // d["reduction"], SIDE // d["reduction"])
        classifier = ref.fc if hasattr(ref, "fc") else ref.classifier[-1]
        torch.testing.assert_close(classifier(net.forward_head(f, pre_logits=True)), ref(x))
    assert net.linear_pool == (arch != "convnext_tiny")              # ConvNeXt's classifier starts with a LayerNorm


def test_weights_enum_records_come_from_the_enum_without_a_fetch():
    w = torchvision.models.ResNet50_Weights.IMAGENET1K_V2
    t = w.transforms()
    cfg = backbone_info("tv:resnet50", "IMAGENET1K_V2")
    assert cfg["mean"] == tuple(t.mean) and cfg["std"] == tuple(t.std) and cfg["input_size"] == t.crop_size[0]
    assert cfg["file"] == w.url and cfg["tag"] == "IMAGENET1K_V2" and w.meta["recipe"] in cfg["trained_on"]
    assert backbone_info("tv:resnet50")["provenance"].startswith("random initialisation")
    assert weight_tags("tv:resnet50") == ["IMAGENET1K_V1", "IMAGENET1K_V2", "DEFAULT"]
    with pytest.raises(WeightsError, match=r"IMAGENET1K_V1, IMAGENET1K_V2, DEFAULT.*no file 'IMAGENET'"):
        create_backbone("tv:resnet50", weights="IMAGENET")


def test_a_torchvision_state_dict_loads_with_a_key_report_and_another_architecture_is_refused(tmp_path, capsys):
    torch.manual_seed(2)
    sd = torchvision.models.resnet18().state_dict()                 # with its 1000-class fc
    torch.save(sd, tmp_path / "r18.pth")
    net = create_backbone("tv:resnet18", weights=tmp_path / "r18.pth", num_classes=7)
    tensors = [k for k in sd if not k.endswith("num_batches_tracked") and not k.startswith("fc.")]
    assert sorted(net.load_report.loaded) == sorted(tensors) and net.load_report.match == 1.0
    assert f"loaded {len(tensors)} backbone tensors (100.0% match" in capsys.readouterr().out
    assert all(torch.equal(net.model.state_dict()[k], sd[k]) for k in tensors)
    torch.save(torchvision.models.resnet34().state_dict(), tmp_path / "r34.pth")
    with pytest.raises(WeightsError, match=r"r34.pth: only \d+\.\d% of the backbone's tensors match.*unexpected"):
        create_backbone("tv:resnet18", weights=tmp_path / "r34.pth", verbose=False)


def test_networks_that_are_not_a_chain_are_refused_in_one_line():
    for arch, why in [("densenet121", "do not end in an AdaptiveAvgPool2d"), ("vit_b_16", "do not end in"),
                      ("vgg11", "do not end in an AdaptiveAvgPool2d")]:       # VGG pools to 7 x 7, not globally
        with pytest.raises(ConfigError, match=f"tv:{arch}: ferlab cannot cut it into stages: .*{why}") as e:
            create_backbone(f"tv:{arch}")
        assert "\n" not in str(e.value) and "timm:<model>" in str(e.value)
    with pytest.raises(ConfigError, match=r"tv:resnet19: torchvision has no classification model 'resnet19' \(close: "):
        create_backbone("tv:resnet19")
