import pytest
import torch
import torch.nn as nn

from ferlab.losses.flip_attention import class_activation_maps, flip_attention_consistency


def test_cam_equals_hand_computation():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(2, 4, 3, 5, generator=g)
    w = torch.randn(6, 4, generator=g)
    maps = class_activation_maps(f, w)
    assert maps.shape == (2, 6, 3, 5)
    hand = torch.zeros(2, 6, 3, 5)
    for n in range(2):
        for k in range(6):
            for c in range(4):
                hand[n, k] += w[k, c] * f[n, c]
    torch.testing.assert_close(maps, hand)


def test_cam_rejects_mismatched_channels():
    with pytest.raises(ValueError, match="share C"):
        class_activation_maps(torch.zeros(1, 4, 2, 2), torch.zeros(3, 5))


def test_consistency_sends_no_gradient_into_fc_weight():
    f1 = torch.randn(2, 4, 3, 3, requires_grad=True)
    f2 = torch.randn(2, 4, 3, 3, requires_grad=True)
    w = torch.randn(7, 4, requires_grad=True)
    loss = flip_attention_consistency(class_activation_maps(f1, w), class_activation_maps(f2, w))
    loss.backward()
    assert w.grad is None
    assert f1.grad.abs().sum() > 0 and f2.grad.abs().sum() > 0   # both views get gradient (no stop-grad)


def test_consistency_is_mse_against_reflipped_map():
    a, b = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    expected = ((a - b[..., torch.arange(3, -1, -1)]) ** 2).mean()
    torch.testing.assert_close(flip_attention_consistency(a, b), expected)


def _conv(symmetric: bool) -> nn.Conv2d:
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    if symmetric:  # kernels mirror-symmetric in width -> the map commutes with horizontal flips
        with torch.no_grad():
            conv.weight.copy_(conv.weight + conv.weight.flip(-1))
    return conv


def test_zero_for_symmetric_input_through_flip_equivariant_map():
    conv, w = _conv(symmetric=True), torch.randn(7, 8)
    x = torch.randn(2, 3, 9, 9)
    x = x + x.flip(-1)                                   # horizontally symmetric face
    loss = flip_attention_consistency(class_activation_maps(conv(x), w), class_activation_maps(conv(x.flip(-1)), w))
    assert loss.item() == pytest.approx(0.0, abs=1e-10)
    # any input, flip-equivariant map: still consistent
    y = torch.randn(2, 3, 9, 9)
    loss = flip_attention_consistency(class_activation_maps(conv(y), w), class_activation_maps(conv(y.flip(-1)), w))
    assert loss.item() == pytest.approx(0.0, abs=1e-9)


def test_positive_for_non_equivariant_map():
    conv, w = _conv(symmetric=False), torch.randn(7, 8)
    y = torch.randn(2, 3, 9, 9)
    loss = flip_attention_consistency(class_activation_maps(conv(y), w), class_activation_maps(conv(y.flip(-1)), w))
    assert loss.item() > 1e-3
