import math

import pytest
import torch
import torch.nn.functional as F

from ferlab.losses.uncertainty_mixup import add_up_loss, sample_uncertainty, uncertainty_mixup


def test_weights_sum_to_one_and_more_uncertain_sample_weighs_more():
    mu = torch.randn(4, 8)
    log_var = torch.zeros(4, 8)
    log_var[0] += 2.0                     # sample 0 is the most uncertain
    perm = torch.tensor([1, 0, 3, 2])
    mixed, a, b = uncertainty_mixup(mu, log_var, perm)
    torch.testing.assert_close(a + b, torch.ones(4, 1))
    assert a[0] > 0.5 and b[1] > 0.5      # sample 0 dominates both of its mixtures
    assert a[0].item() == pytest.approx(math.e ** 2 / (math.e ** 2 + 1))
    torch.testing.assert_close(mixed, a * mu + b * mu[perm])


def test_uncertainty_is_mean_of_exp():
    lv = torch.tensor([[0.0, math.log(3.0)]])
    assert sample_uncertainty(lv).item() == pytest.approx(2.0)


def test_log_var_learns_only_through_mixing_weights():
    mu = torch.randn(6, 5, requires_grad=True)
    log_var = torch.randn(6, 5, requires_grad=True)
    y = torch.randint(0, 3, (6,))
    fc = torch.nn.Linear(5, 3)
    # self-pairs: weights are 1/2 + 1/2 of the same feature -> no gradient reaches log_var
    mixed, _, _ = uncertainty_mixup(mu, log_var, torch.arange(6))
    add_up_loss(fc(mixed), y, y).backward()
    assert log_var.grad.abs().max().item() < 1e-7
    log_var.grad = None
    mixed, _, _ = uncertainty_mixup(mu, log_var, torch.tensor([1, 0, 3, 2, 5, 4]))
    add_up_loss(fc(mixed), y, y[[1, 0, 3, 2, 5, 4]]).backward()
    assert log_var.grad.abs().max().item() > 1e-6


def test_add_up_loss_is_half_half():
    logits, y, y2 = torch.randn(5, 7), torch.randint(0, 7, (5,)), torch.randint(0, 7, (5,))
    expected = 0.5 * F.cross_entropy(logits, y) + 0.5 * F.cross_entropy(logits, y2)
    torch.testing.assert_close(add_up_loss(logits, y, y2), expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_safe_for_half_precision_log_variance(dtype):
    mu = torch.randn(4, 8).to(dtype)
    log_var = torch.full((4, 8), 80.0).to(dtype)   # exp(80) overflows fp16 and bf16-ish ranges
    log_var[1] = -80.0
    mixed, a, b = uncertainty_mixup(mu, log_var, torch.tensor([1, 0, 3, 2]))
    assert torch.isfinite(mixed.float()).all() and torch.isfinite(a).all() and torch.isfinite(b).all()
    assert a[0].item() == pytest.approx(1.0) and a[1].item() == pytest.approx(0.0, abs=1e-6)
