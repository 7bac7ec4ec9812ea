import pytest
import torch

from ferlab.data import transforms as T
from ferlab.methods import build_method
from ferlab.models import create_backbone


def make(pairing="independent", **kw):
    torch.manual_seed(0)
    return build_method("eac", create_backbone("resnet10", num_classes=7), 7, input_size=32, pairing=pairing, **kw)


def raw(n=4, s=32):
    return torch.randint(0, 256, (n, 3, s, s), dtype=torch.uint8)


def test_mirror_pairing_is_the_exact_mirror_of_view_one():
    m = make("mirror")
    x1, x2 = m.views(raw())
    assert torch.equal(x2, x1.flip(-1))


def test_independent_pairing_flips_the_raw_image_with_its_own_erasing_and_no_noise():
    m = make("independent", augment={"gaussian_noise": 1.0, "erasing": 0.0})
    img = raw()
    x1, x2 = m.views(img)
    clean_flipped = T.Compose(T.Resize(32), T.Normalize(m.mean, m.std))(img.flip(-1))
    assert torch.equal(x2, clean_flipped)              # no Gaussian noise on view 2
    assert not torch.equal(x1, clean_flipped.flip(-1))   # view 1 got noise
    m = make("independent", augment={"gaussian_noise": 0.0, "erasing": 1.0})
    torch.manual_seed(3)
    x1, x2 = m.views(raw(16))
    erased1, erased2 = (x1 == 0).all(1), (x2.flip(-1) == 0).all(1)
    assert erased1.any() and erased2.any()
    assert not torch.equal(erased1, erased2)           # boxes are drawn independently, not mirrored


def test_training_step_outputs_and_gradients():
    m = make()
    batch = {"image": raw(8), "label": torch.randint(0, 7, (8,)), "index": torch.arange(8)}
    out = m.training_step(batch)
    assert set(out) >= {"loss", "ce", "consistency", "logits"}
    torch.testing.assert_close(out["loss"].detach(), out["ce"] + 5.0 * out["consistency"])
    out["loss"].backward()
    assert m.backbone.fc.weight.grad.abs().sum() > 0      # CE reaches the classifier
    assert m.backbone.layer1[0].conv1.weight.grad.abs().sum() > 0


def test_consistency_term_never_touches_the_classifier():
    m = make(lam=1.0)
    x1, x2 = m.views(raw(8))
    maps1, _ = m._maps_and_logits(x1)
    maps2, _ = m._maps_and_logits(x2)
    from ferlab.losses.flip_attention import flip_attention_consistency
    flip_attention_consistency(maps1, maps2).backward()
    assert m.backbone.fc.weight.grad is None
    assert m.backbone.layer4[0].conv1.weight.grad.abs().sum() > 0


def test_single_pass_matches_two_pass_in_eval_mode():
    # in eval mode BN uses running stats, so concatenating views must not change the maths
    m = make("mirror")
    m.eval()
    img = raw(4)
    torch.manual_seed(5)
    a = m.training_step({"image": img, "label": torch.zeros(4, dtype=torch.long), "index": torch.arange(4)})
    m.single_pass = True
    torch.manual_seed(5)
    b = m.training_step({"image": img, "label": torch.zeros(4, dtype=torch.long), "index": torch.arange(4)})
    torch.testing.assert_close(a["loss"], b["loss"], rtol=1e-4, atol=1e-5)


def test_attention_returns_all_class_maps():
    m = make()
    maps = m.attention(torch.randn(2, 3, 64, 64))
    assert maps.shape == (2, 7, 2, 2)


def test_bad_options():
    with pytest.raises(ValueError, match="pairing"):
        make("random")
    with pytest.raises(ValueError, match="augment keys"):
        make(augment={"flip": 0.5})
