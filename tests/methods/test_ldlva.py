"""LDLVA: the lambda_hat step against autograd inside a training step, the official optimizer and
SimNet batch norm by default, torch's as options; the training step (neighbour pass chunked on frozen-norm
backbones, augmentation on uint8) against the step with the neighbour pass written out as the spec has it."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ferlab.data.synthetic import synthetic
from ferlab.engine import precision
from ferlab.engine.config import TrainConfig
from ferlab.engine.optim import KerasAdam, build_optimizer
from ferlab.losses.adaptive_ldl import (
    KerasBatchNorm1d,
    lambda_hat_gradient,
    neighbour_distribution,
    soft_cross_entropy,
    uncertainty_target,
)
from ferlab.methods import build_method, method_class
from ferlab.models import create_backbone

K, C = 4, 7


def make(**kw):
    torch.manual_seed(0)
    return build_method("ldlva", create_backbone("resnet10", num_classes=C), C, input_size=32, num_neighbors=K,
                        augment={"flip": 0.0}, **kw)       # no random augmentation: the step can be recomputed


def test_lambda_hat_step_is_minus_lr_times_the_gradient_with_respect_to_lambda_hat():
    ds = synthetic("train", n=24, image_size=32)
    m = make().train()
    m.setup_train(ds)
    with torch.no_grad():
        m.lambda_hat.copy_(torch.linspace(-2.0, 3.0, 24))           # sigma'(lambda_hat) differs per sample
    ref = copy.deepcopy(m)
    batch = ds.get_batch(np.arange(0, 24, 2))
    m.training_step(batch)
    # the classification loss recomputed by hand as a function of a leaf lambda_hat (train-mode BN: batch statistics)
    idx, y = batch["index"], batch["label"]
    B = len(y)
    nb = ds.get_batch(ref.knn[idx].reshape(-1).numpy())
    with torch.no_grad():
        fn = ref.features(ref.neighbour_transform(nb["image"]))
        pn = F.softmax(ref.backbone.fc(fn), 1).view(B, K, C)
        f = ref.features(ref.train_transform(batch["image"]))
        p = F.softmax(ref.backbone.fc(f), 1)
        w = ref.neighbor_similarity[idx] * ref.simnet(f, fn.view(B, K, -1))
    ld = (w[..., None] * pn).sum(1) / w.sum(1, keepdim=True)
    lam_hat = ref.lambda_hat[idx].clone().requires_grad_(True)
    lam = torch.sigmoid(lam_hat)[:, None]
    target = lam * F.one_hot(y, C) + (1 - lam) * ld
    (-(target * torch.log(p + 1e-10)).sum(1).mean()).backward()
    expect = ref.lambda_hat.clone()
    expect[idx] -= 10.0 * lam_hat.grad                                # lamb_lr 10, momentum 0
    torch.testing.assert_close(m.lambda_hat, expect)
    assert (m.lambda_hat[idx] != ref.lambda_hat[idx]).all()
    torch.testing.assert_close(m.lambda_hat[1::2], ref.lambda_hat[1::2])   # rows not in the batch untouched


def test_official_optimizer_and_simnet_batch_norm_by_default_torch_ones_as_options():
    assert method_class("ldlva").defaults["optimizer"] == "adam_keras"
    cfg = TrainConfig(method="ldlva").resolved(method_class("ldlva").defaults)
    m = make()
    assert isinstance(build_optimizer(m.param_groups(cfg.lr), cfg), KerasAdam)
    norms = [mod for mod in m.simnet.modules() if isinstance(mod, torch.nn.BatchNorm1d)]
    assert len(norms) == 2 and all(isinstance(mod, KerasBatchNorm1d) for mod in norms)
    plain = make(simnet_batchnorm="torch")
    assert all(type(mod) is torch.nn.BatchNorm1d for mod in plain.simnet.modules()
               if isinstance(mod, torch.nn.BatchNorm1d))
    plain.load_state_dict(m.state_dict())                             # same checkpoint keys either way
    torch_adam = TrainConfig(method="ldlva", optimizer="adam").resolved(method_class("ldlva").defaults)
    assert type(build_optimizer(m.param_groups(torch_adam.lr), torch_adam)) is torch.optim.Adam
    with pytest.raises(ValueError, match="batch_norm"):
        make(simnet_batchnorm="sync")


def spec_augment(images, size, pad, flip, mean, std):
    """The official pipeline written out (spec 3.1; resize is the identity here): zero-pad ``pad``, random
    ``size`` crop, random flip, normalise -- in float from the start, drawing the crop rows, the crop
    columns and the flips of the whole batch in that order (ferlab's transform RNG contract)."""
    x = F.pad(images.float(), [pad] * 4)
    B, H = len(x), x.shape[-1]
    top, left = (torch.rand(B) * (H - size + 1)).long(), (torch.rand(B) * (H - size + 1)).long()
    x = torch.stack([xi[:, t:t + size, lf:lf + size] for xi, t, lf in zip(x, top.tolist(), left.tolist())])
    x = torch.where((torch.rand(B) < flip).view(-1, 1, 1, 1), x.flip(-1), x)
    m, s = (torch.tensor(v).view(1, -1, 1, 1) * 255 for v in (mean, std))
    return (x - m) / s


def reference_step(m, batch, ds, pad):
    """LDLVA's step (spec 3.3) with the neighbour pass as the official code runs it: the B*K neighbour
    images augmented like the batch minus erasing, then ONE forward of all of them, without gradient, in
    train mode (batch norm: statistics of the neighbour batch, running averages updated)."""
    y, idx = batch["label"], batch["index"]
    B, K, C = len(y), m.k, m.num_classes
    nidx = m.knn[idx]
    nb = ds.get_batch(nidx.reshape(-1).numpy())
    xn = spec_augment(nb["image"], m.input_size, pad, 0.5, m.mean, m.std)
    with torch.no_grad():
        fn = m.features(xn)
        pn = F.softmax(m.backbone.fc(fn).float(), 1)
    erase = m.train_transform.ops[-1]
    assert type(erase).__name__ == "RandomErasing"
    x = erase(spec_augment(batch["image"], m.input_size, pad, 0.5, m.mean, m.std))
    f = m.features(x)
    logits = m.backbone.fc(f)
    p = F.softmax(logits.float(), 1)
    c = m.simnet(f, fn.view(B, K, -1).to(f.dtype))
    ld = neighbour_distribution(m.neighbor_similarity[idx], c.float(), pn.view(B, K, C))
    lam = torch.sigmoid(m.lambda_hat[idx])
    w = m.weights[y]
    cls = soft_cross_entropy(p, uncertainty_target(lam, y, ld), w)
    feats = torch.cat([f.float(), fn.float()])
    labels = torch.cat([y, nb["label"]])
    lam_all = torch.sigmoid(m.lambda_hat[torch.cat([idx, nidx.reshape(-1)])])
    loss = cls + m.gamma * m.centres.loss(feats, labels, lam_all)
    m._step_lambda(idx, lambda_hat_gradient(p.detach(), y, ld.detach(), lam, w))
    m.centres.update(feats, labels, lam_all)
    return {"loss": loss, "logits": logits.detach(), "calibration": c.detach().mean()}


@pytest.mark.parametrize("backbone,amp", [("resnet10", None), ("dlib_resnet29", None),
                                          ("dlib_resnet29", torch.bfloat16)])
def test_training_step_is_the_official_one_number_for_number(backbone, amp):
    """The step (neighbour images cropped and flipped as uint8, normalised and forwarded chunk by chunk
    when no layer mixes samples) gives the loss, every gradient, every buffer (lambda_hat, centres, BN and
    SimNet running statistics), the outputs and the RNG state of the step with the official neighbour
    pass written out: bit for bit (torch.equal), the same operations on the same values."""
    pad, size = 4, 40
    ds = synthetic("train", n=30, image_size=size)
    torch.manual_seed(0)
    args = {"out_stage": 3, "norm": "frozen"} if backbone == "dlib_resnet29" else {}
    m = build_method("ldlva", create_backbone(backbone, num_classes=C, **args), C, input_size=size,
                     num_neighbors=K, augment={"flip": 0.5, "crop": "random", "crop_padding": pad, "erasing": 0.5})
    m.train()
    m.setup_train(ds)
    m.neighbour_chunk = 5                            # 12 * 4 = 48 neighbours: chunks of 5 and a last one of 3
    ref = copy.deepcopy(m)
    calls = []
    features = m.features
    m.features = lambda x: calls.append(len(x)) or features(x)
    batch = ds.get_batch(np.arange(3, 27, 2))
    runs = []
    for step in (lambda: m.training_step(batch), lambda: reference_step(ref, batch, ds, pad)):
        torch.manual_seed(1)
        with precision.autocast("cpu", amp):         # the trainer's autocast (None: float32)
            out = step()
        out["loss"].backward()
        runs.append((out, torch.rand(4)))
    # the neighbour pass is chunked exactly when no layer mixes the samples (resnet10: train-mode BN)
    assert calls == ([48, 12] if backbone == "resnet10" else [5] * 9 + [3, 12])
    (out, rng), (want, want_rng) = runs
    assert torch.equal(rng, want_rng)                                  # the same random draws, in the same order
    for key in ("loss", "logits", "calibration"):
        assert torch.equal(out[key], want[key]), key
    grads = dict(ref.named_parameters())
    for name, par in m.named_parameters():
        assert par.grad is not None and torch.equal(par.grad, grads[name].grad), name
    expect = ref.state_dict()
    for name, val in m.state_dict().items():                        # parameters and every buffer
        assert torch.equal(val, expect[name]), name
    assert (m.lambda_hat[batch["index"]] != 0.5).all()                 # the step did move lambda_hat
