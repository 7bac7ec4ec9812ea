"""LDLVA's adaptive label distribution: hand computations and the lambda gradient's sign."""
import math

import pytest
import torch

from ferlab.losses.adaptive_ldl import (AdaptiveSimNet, DiscriminativeCentres, lambda_gradient, local_similarity,
                                        neighbour_distribution, separation_gradient, soft_cross_entropy,
                                        uncertainty_target)


def test_local_similarity_is_exp_of_minus_l1_over_half():
    a = torch.tensor([[0.0, 0.0]])
    n = torch.tensor([[[0.0, 0.0], [0.1, -0.2], [1.0, 1.0]]])
    torch.testing.assert_close(local_similarity(a, n), torch.tensor([[1.0, math.exp(-0.6), math.exp(-4.0)]]))


def test_simnet_output_is_floored_and_shaped():
    torch.manual_seed(0)
    net = AdaptiveSimNet(dim=4).eval()
    with torch.no_grad():
        net.net[-1].bias.fill_(-100.0)          # every raw score far below the floor
    c = net(torch.randn(3, 4), torch.randn(3, 5, 4))
    assert c.shape == (3, 5)
    torch.testing.assert_close(c, torch.full((3, 5), 1 / (1 + math.exp(1.3))))


def test_neighbour_distribution_and_target_by_hand():
    a = torch.tensor([[1.0, 0.5]])
    c = torch.tensor([[0.5, 1.0]])              # w = [0.5, 0.5]
    p = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]])
    ld = neighbour_distribution(a, c, p)
    torch.testing.assert_close(ld, torch.tensor([[0.5, 0.25, 0.25]]))
    t = uncertainty_target(torch.tensor([0.8]), torch.tensor([2]), ld)
    torch.testing.assert_close(t, torch.tensor([[0.1, 0.05, 0.85]]))
    assert t.sum().item() == pytest.approx(1.0)
    probs = torch.tensor([[0.2, 0.3, 0.5]])
    want = -(0.1 * math.log(0.2) + 0.05 * math.log(0.3) + 0.85 * math.log(0.5))
    assert soft_cross_entropy(probs, t).item() == pytest.approx(want, rel=1e-5)
    assert soft_cross_entropy(probs, t, torch.tensor([2.0])).item() == pytest.approx(2 * want, rel=1e-5)


def test_lambda_gradient_equals_autograd_and_has_the_spec_sign():
    torch.manual_seed(1)
    probs = torch.softmax(torch.randn(6, 4), 1)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    ld = torch.softmax(torch.randn(6, 4), 1)
    lam = torch.full((6,), 0.6, requires_grad=True)
    soft_cross_entropy(probs, uncertainty_target(lam, labels, ld)).backward()
    torch.testing.assert_close(lambda_gradient(probs, labels, ld), lam.grad)
    # the model favours the given label over the neighbours -> negative gradient -> lambda rises under SGD
    sure = torch.tensor([[0.9, 0.05, 0.05]])
    assert lambda_gradient(sure, torch.tensor([0]), torch.tensor([[0.0, 0.5, 0.5]])).item() < 0
    assert lambda_gradient(sure, torch.tensor([1]), torch.tensor([[1.0, 0.0, 0.0]])).item() > 0


def test_centre_loss_and_update_by_hand():
    cen = DiscriminativeCentres(2, 2, alpha=0.5, separation=0.0)
    x = torch.tensor([[2.0, 0.0], [0.0, 4.0], [2.0, 2.0]])
    y = torch.tensor([0, 1, 0])
    lam = torch.tensor([1.0, 0.5, 0.5])
    assert cen.loss(x, y, lam).item() == pytest.approx(0.5 * (4 + 0.5 * 16 + 0.5 * 8) / 3)
    cen.update(x, y, lam)
    # class 0: sum lam (x - 0) = [3, 1], n0 = 2 -> 0.5 * [3, 1] / (3 * 3); class 1: [0, 2] / (2 * 3) * 0.5
    torch.testing.assert_close(cen.centres, torch.tensor([[1.5 / 9, 0.5 / 9], [0.0, 1.0 / 6]]))


def test_separation_gradient_pushes_centres_apart_and_matches_autograd():
    c = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    d2 = (c[:, None] - c[None]).pow(2).sum(-1)
    phi = torch.triu(torch.exp(-d2 / 2), diagonal=1).sum()
    phi.backward()
    torch.testing.assert_close(separation_gradient(c.detach()), c.grad)
    moved = c.detach() - 0.1 * separation_gradient(c.detach())
    assert torch.dist(moved[0], moved[1]) > torch.dist(c[0], c[1])
