import pytest
import torch

from ferlab.models import create_backbone, list_backbones


@pytest.mark.parametrize("name,channels", [("resnet18", 512), ("resnet34", 512), ("resnet50", 2048),
                                           ("resnet50_caffe", 2048), ("resnet18_dmue", 512), ("resnet10", 512)])
def test_features_and_head_shapes(name, channels):
    m = create_backbone(name, num_classes=7).eval()
    x = torch.randn(2, 3, 112, 112)
    f = m.forward_features(x)
    assert f.shape == (2, channels, 4, 4)
    assert m.forward_head(f).shape == (2, 7)
    assert m.forward_head(f, pre_logits=True).shape == (2, channels)
    assert torch.allclose(m(x), m.forward_head(f))


def test_stem_variants():
    x = torch.randn(1, 3, 224, 224)
    caffe = create_backbone("resnet50_caffe")
    assert caffe.maxpool(torch.randn(1, 64, 112, 112)).shape[-1] == 56  # pad 0, ceil mode
    assert caffe.layer2[0].conv1.stride == (2, 2) and caffe.layer2[0].conv2.stride == (1, 1)
    tv = create_backbone("resnet50")
    assert tv.layer2[0].conv1.stride == (1, 1) and tv.layer2[0].conv2.stride == (2, 2)
    dm = create_backbone("resnet18_dmue")
    assert isinstance(dm.relu, torch.nn.Identity) and dm.maxpool.kernel_size == 2
    assert dm.forward_stem(x).shape == (1, 64, 56, 56)


def test_registry_errors():
    assert "resnet18" in list_backbones()
    with pytest.raises(ValueError, match="unknown backbone"):
        create_backbone("vit_huge")
