"""LDLVA: the lambda_hat step against autograd inside a training step, the official optimizer and
SimNet batch norm by default, torch's as options."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ferlab.data.synthetic import synthetic
from ferlab.engine.config import TrainConfig
from ferlab.engine.optim import KerasAdam, build_optimizer
from ferlab.losses.adaptive_ldl import KerasBatchNorm1d
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
