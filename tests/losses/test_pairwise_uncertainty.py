"""DMUE's latent targets, soft-label loss, similarity-preserving loss and pairwise confidence."""
import math

import pytest
import torch
import torch.nn.functional as F

from ferlab.losses.pairwise_uncertainty import (
    PairwiseConfidence,
    class_similarity_profile,
    exclude_class,
    latent_distribution_target,
    similarity_gram,
    similarity_preserving_loss,
    soft_label_loss,
)


def test_exclude_class_maps_labels_into_the_other_classes():
    y = torch.tensor([0, 1, 3, 4, 6])
    assert exclude_class(y, 2).tolist() == [0, 1, 2, 3, 5]
    assert exclude_class(y, 6).tolist() == [0, 1, 3, 4, 6]   # (6 itself never reaches branch 6)


def test_latent_target_is_zero_at_the_label_sums_to_one_and_is_sharpened():
    torch.manual_seed(0)
    q_logits = torch.randn(5, 6, requires_grad=True)
    t = latent_distribution_target(q_logits, c=2, num_classes=7, temperature=1.2)
    assert t.shape == (5, 7) and not t.requires_grad
    assert torch.all(t[:, 2] == 0)
    assert torch.allclose(t.sum(1), torch.ones(5))
    # hand computation for the first row
    p = [math.exp(v) for v in q_logits[0].tolist()]
    p = [v / sum(p) for v in p]
    s = [v ** (1 / 1.2) for v in p]
    s = [v / sum(s) for v in s]
    assert torch.allclose(t[0], torch.tensor(s[:2] + [0.0] + s[2:]), atol=1e-6)
    # T > 1 flattens: the largest mass is below the plain softmax's
    assert t[0].max() < max(p)


def test_soft_label_loss_hand_computation_zeroes_the_label_without_renormalising():
    logits = torch.tensor([[1.0, 2.0, 0.0]])
    y = torch.tensor([1])
    target = torch.tensor([[0.25, 0.0, 0.75]])
    p = torch.softmax(logits, 1)[0].tolist()
    expect = ((p[0] - 0.25) ** 2 + 0.0 + (p[2] - 0.75) ** 2) / 3
    assert soft_label_loss(logits, y, target).item() == pytest.approx(expect, rel=1e-6)


def test_similarity_gram_rows_are_unit_and_sp_loss_is_zero_for_the_same_geometry():
    torch.manual_seed(0)
    a = torch.randn(6, 4, requires_grad=True)
    g = similarity_gram(a)
    assert g.shape == (6, 6) and torch.allclose(g.norm(dim=1), torch.ones(6))
    assert similarity_preserving_loss(a, 3 * a.detach()).item() < 1e-12   # scale does not change row-normed Grams
    b = torch.randn(6, 9, requires_grad=True)
    loss = similarity_preserving_loss(a, b)
    loss.backward()
    assert loss.item() > 0 and a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0   # both sides learn


def test_class_similarity_profile_hand_computation():
    f = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = torch.tensor([0, 1, 0])
    prof = class_similarity_profile(f, y, num_classes=3)
    c = 1 / math.sqrt(2)
    # sample 0: class0 mean of cos(f0,f0)=1, cos(f0,f2)=c -> (1+c)/2 ; class1: cos(f0,f1)=0 ; class2 absent -> min
    m0 = torch.tensor([(1 + c) / 2, 0.0, 0.0])
    expect0 = (m0 - m0.min()) / (m0.max() - m0.min())
    assert torch.allclose(prof[0], expect0, atol=1e-6)
    assert torch.allclose(prof.min(1).values, torch.zeros(3)) and torch.allclose(prof.max(1).values, torch.ones(3))
    # a reference set replaces the batch
    ref = class_similarity_profile(f[:1], y[:1], 3, ref_features=f, ref_labels=y)
    assert torch.allclose(ref, prof[:1])


def test_pairwise_confidence_is_a_probability_per_sample_with_gradient_to_features():
    torch.manual_seed(0)
    head = PairwiseConfidence(4)
    f = torch.randn(8, 16, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    s = head(f, y)
    assert s.shape == (8,) and torch.all((s > 0) & (s < 1))
    (s * torch.arange(8.0)).sum().backward()
    assert f.grad.abs().sum() > 0
    # the label is an input: a different label changes the confidence
    assert not torch.allclose(head(f, y.roll(1)), s)
    assert F.one_hot(y, 4).shape == (8, 4)
