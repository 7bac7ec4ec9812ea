"""LDLVA's adaptive label distribution: hand computations, the lambda_hat gradient against autograd,
the SimNet's Keras batch norm."""
import math

import pytest
import torch

from ferlab.losses.adaptive_ldl import (
    AdaptiveSimNet,
    DiscriminativeCentres,
    KerasBatchNorm1d,
    lambda_hat_gradient,
    local_similarity,
    neighbour_distribution,
    separation_gradient,
    soft_cross_entropy,
    uncertainty_target,
)


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


def test_lambda_hat_gradient_equals_autograd_with_respect_to_lambda_hat():
    torch.manual_seed(1)
    probs = torch.softmax(torch.randn(6, 4, dtype=torch.float64), 1)
    probs[0] = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)    # a zero probability: the 1e-10 in the logs
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    ld = torch.softmax(torch.randn(6, 4, dtype=torch.float64), 1)
    w = torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0, 1.0], dtype=torch.float64)
    lam_hat = torch.tensor([-3.0, -0.5, 0.0, 0.5, 0.8, 4.0], dtype=torch.float64, requires_grad=True)
    lam = torch.sigmoid(lam_hat)
    soft_cross_entropy(probs, uncertainty_target(lam, labels, ld), w).backward()
    got = lambda_hat_gradient(probs, labels, ld, lam.detach(), w)
    torch.testing.assert_close(got, lam_hat.grad)
    # = dL/dlambda * sigma'(lambda_hat): at most a quarter of dL/dlambda, less the larger |lambda_hat|
    lam_leaf = lam.detach().requires_grad_(True)
    soft_cross_entropy(probs, uncertainty_target(lam_leaf, labels, ld), w).backward()
    ratio = got / lam_leaf.grad
    torch.testing.assert_close(ratio, lam.detach() * (1 - lam.detach()))
    assert ratio.max() <= 0.25 and ratio[-1] < 0.02
    # the model favours the given label over the neighbours -> negative gradient -> lambda rises under SGD
    sure, half = torch.tensor([[0.9, 0.05, 0.05]]), torch.tensor([0.5])
    assert lambda_hat_gradient(sure, torch.tensor([0]), torch.tensor([[0.0, 0.5, 0.5]]), half).item() < 0
    assert lambda_hat_gradient(sure, torch.tensor([1]), torch.tensor([[1.0, 0.0, 0.0]]), half).item() > 0


def test_keras_batch_norm_forward_and_moving_statistics_by_hand():
    bn = KerasBatchNorm1d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.0, -1.0, 0.25]))
    x1 = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.1, -2.0], [2.0, -0.1, 6.0], [6.0, 0.0, 2.0]])
    x2 = torch.tensor([[0.0, 1.0, 1.0], [2.0, 1.0, 3.0]])
    mean1, var1 = torch.tensor([3.0, 0.0, 2.0]), torch.tensor([3.5, 0.005, 8.0])     # biased: sum sq / 4
    y1 = bn(x1)
    torch.testing.assert_close(y1, (x1 - mean1) / torch.sqrt(var1 + 1e-3) * bn.weight + bn.bias)
    torch.testing.assert_close(bn.running_mean, 0.01 * mean1)
    torch.testing.assert_close(bn.running_var, 0.99 * 1.0 + 0.01 * var1)
    bn(x2)
    mean2, var2 = torch.tensor([1.0, 1.0, 2.0]), torch.tensor([1.0, 0.0, 1.0])
    want_mean = 0.99 * (0.01 * mean1) + 0.01 * mean2
    want_var = 0.99 * (0.99 + 0.01 * var1) + 0.01 * var2
    torch.testing.assert_close(bn.running_mean, want_mean)
    torch.testing.assert_close(bn.running_var, want_var)
    bn.eval()
    torch.testing.assert_close(bn(x1), (x1 - want_mean) / torch.sqrt(want_var + 1e-3) * bn.weight + bn.bias)
    # torch's BatchNorm1d on the same batch: eps 1e-5 and the unbiased variance (x 4/3) with momentum 0.1
    ref = torch.nn.BatchNorm1d(3)
    ref(x1)
    torch.testing.assert_close(ref.running_var, 0.9 + 0.1 * var1 * 4 / 3)


def test_simnet_batch_norm_is_keras_by_default_and_torch_as_an_option():
    keras = AdaptiveSimNet(dim=4)
    norms = [m for m in keras.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(norms) == 2 and all(isinstance(m, KerasBatchNorm1d) and m.eps == 1e-3 for m in norms)
    plain = AdaptiveSimNet(dim=4, batch_norm="torch")
    norms = [m for m in plain.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(norms) == 2 and all(type(m) is torch.nn.BatchNorm1d and m.eps == 1e-5 for m in norms)
    assert set(keras.state_dict()) == set(plain.state_dict())           # checkpoints load either way
    with pytest.raises(ValueError, match="batch_norm"):
        AdaptiveSimNet(dim=4, batch_norm="sync")


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
