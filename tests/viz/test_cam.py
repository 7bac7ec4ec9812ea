import numpy as np
import pytest
import torch
import torch.nn as nn

from ferlab.methods import build_method, list_methods
from ferlab.models import create_backbone
from ferlab.viz.cam import KINDS, LogitsOnly, MethodCAM, classifier_cam, denormalize, overlay


def make(name, classes=7, size=64):
    torch.manual_seed(0)
    return build_method(name, create_backbone("resnet10", num_classes=classes), classes, input_size=size).eval()


def test_classifier_cam_of_a_one_class_model_equals_hand_computation():
    m = make("baseline", classes=1)
    x = torch.randn(2, 3, 64, 64)
    cam = classifier_cam(m, x, torch.zeros(2, dtype=torch.long))
    with torch.no_grad():
        f = m.backbone.forward_features(x)
        w, b = m.backbone.fc.weight[0], m.backbone.fc.bias[0]
        hand = sum(w[c] * f[:, c] for c in range(f.shape[1]))
        logits = m.predict(x)[:, 0]
    torch.testing.assert_close(cam, hand, rtol=1e-4, atol=1e-5)
    # the CAM's spatial mean plus the bias is the logit (global average pooling is linear)
    torch.testing.assert_close(cam.mean((1, 2)) + b, logits, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_dmue_cam_folds_the_bn_neck_so_the_map_mean_gives_the_logit():
    m = make("dmue")
    m.train()
    m.training_step({"image": torch.randint(0, 256, (14, 3, 64, 64), dtype=torch.uint8),
                     "label": torch.arange(14) % 7, "index": torch.arange(14)})   # non-trivial BN statistics
    m.eval()
    x = torch.randn(3, 3, 64, 64)
    cls = torch.tensor([0, 3, 6])
    cam = classifier_cam(m, x, cls)
    _, bias = m.cam_classifier()
    with torch.no_grad():
        logits = m.predict(x)
    torch.testing.assert_close(cam.mean((1, 2)) + bias[cls], logits[torch.arange(3), cls], rtol=1e-4, atol=1e-4)


def test_classifier_cam_refuses_methods_without_a_pooled_classifier():
    with pytest.raises(ValueError, match="gradcam"):
        classifier_cam(make("rul"), torch.randn(1, 3, 64, 64))


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.mark.parametrize("name", list_methods())
@pytest.mark.parametrize("kind", KINDS)
def test_grad_cam_runs_on_every_method_and_releases_hooks(name, kind):
    m = make(name).train()
    x = torch.randn(3, 3, 64, 64)
    assert _hooks(m) == 0
    with torch.no_grad():                       # as when called from an eval loop
        with MethodCAM(m, kind) as cam:
            assert _hooks(m) > 0
            maps = cam(x, [0, 1, 2])
    assert maps.shape == (3, 64, 64) and np.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1 + 1e-6
    assert _hooks(m) == 0 and m.training        # hooks gone, mode restored


def test_grad_cam_outside_with_block_is_an_error():
    with pytest.raises(RuntimeError, match="with"):
        MethodCAM(make("baseline"))(torch.randn(1, 3, 64, 64))


def test_ddp_style_wrapper_is_unwrapped():
    m = make("eac")

    class Wrapper(nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(LogitsOnly(Wrapper(m))(x), m.predict(x))


def test_denormalize_inverts_the_method_eval_transform_and_overlay_keeps_image_size():
    m = make("baseline", size=48)
    img = torch.randint(0, 256, (2, 3, 48, 48), dtype=torch.uint8)
    assert torch.equal(denormalize(m.prepare(img), m.mean, m.std), img)
    out = overlay(img[0], np.random.rand(2, 2))
    assert out.shape == (48, 48, 3) and out.dtype == np.uint8
    assert np.array_equal(overlay(img[0], np.zeros((2, 2)), alpha=0.0), img[0].permute(1, 2, 0).numpy())


@pytest.mark.slow
def test_attention_views_and_figure():
    from ferlab.viz.cam import attention_figure, attention_views
    img = torch.randint(1, 256, (2, 3, 48, 48), dtype=torch.uint8)
    v = attention_views(img, seed=3)
    assert torch.equal(v["flipped"], img.flip(-1))
    assert ((v["erased"] == 0).all(1).any((1, 2))).all()          # every image got a black box
    assert torch.equal(attention_views(img, seed=3)["erased"], v["erased"])
    fig = attention_figure({"baseline": make("baseline", size=48), "eac": make("eac", size=48)}, img,
                           torch.tensor([0, 3]), class_names=[str(i) for i in range(7)])
    assert len(fig.axes) == 2 * 3 * 3                             # rows x views x (image + 2 methods)


def test_cam_comparison_figure_rows_per_method_and_kind_and_no_hooks_left():
    from ferlab.viz.cam import cam_comparison_figure
    methods = {"baseline": make("baseline"), "rul": make("rul")}
    images = torch.randint(0, 256, (3, 3, 40, 40), dtype=torch.uint8)
    fig = cam_comparison_figure(methods, images, torch.tensor([0, 1, 2]), kinds=("classifier", "gradcam"))
    labels = [ax.get_ylabel() for ax in fig.axes[::3]]
    # RUL's head is not linear in pooled features: no classifier row for it
    assert labels == ["image", "baseline\nclassifier", "baseline\ngradcam", "rul\ngradcam"]
    assert fig.axes[3].images[0].get_array().shape[:2] == (40, 40)      # overlays at the image size
    assert all(_hooks(m) == 0 for m in methods.values())
