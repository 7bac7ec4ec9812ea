"""LDLVA: uncertainty-aware label distribution learning over an auxiliary neighbourhood
(Le et al., WACV 2023; the official code is TensorFlow -- this is a PyTorch re-implementation
from the spec).

Each step also runs the K neighbours of every batch sample (no gradient, train-mode BN, the
same augmentation minus erasing; on the CPU chunk by chunk where no layer mixes samples, see
:meth:`LDLVA.neighbour_features`). Their predicted distributions, weighted by the fixed local
similarity a_ij and the learned pair calibration c_ij (:class:`AdaptiveSimNet`), give ld_i; the
target is lambda_i onehot(y_i) + (1 - lambda_i) ld_i with a per-sample certainty
lambda_i = sigmoid(lambda_hat_i). lambda_hat is trained by its own sparse SGD (lr 10) with the
gradient of the classification loss with respect to lambda_hat (dL/dlambda * lambda (1 - lambda), as
the official tape computes it), the class centres by LDLVA's manual update. The network (SimNet
included) is trained with Keras' Adam (``optimizer: adam_keras``: eps 1e-7 on the uncorrected
sqrt(v)), and the SimNet's batch norms are Keras' (eps 1e-3, moving statistics 0.99 / 0.01 with the
biased batch variance). Inference is the backbone and its classifier (softmax of the logits).

Neighbours come from ``neighbors`` (a file from :mod:`ferlab.data.neighbors` or the official
CSV) or are built from ``space`` when training starts (``va`` by default; see that module); in
``space: features`` the features of the run ``space_checkpoint`` are served by the engine
(:meth:`run_features_checkpoint`).
Deviations: erasing fills with the normalised mean (0) instead of uniform noise; under DDP
lambda_hat rows and the centre update are synchronised across ranks (the official code is
single-GPU). Options: ``simnet_batchnorm: torch`` (torch's BatchNorm1d in the SimNet);
``optimizer: adam`` (torch's Adam for the network).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from ..collectives import gather_cat, in_distributed_run, sum_over_ranks
from ..data import transforms as T
from ..losses.adaptive_ldl import (
    AdaptiveSimNet,
    DiscriminativeCentres,
    lambda_hat_gradient,
    neighbour_distribution,
    soft_cross_entropy,
    uncertainty_target,
)
from .base import Method, register_method


@register_method
class LDLVA(Method):
    """Args (``method_args``): ``num_neighbors`` (8), ``gamma`` (0.01, centre loss weight),
    ``lamb_init`` (0.5 RAF-DB / 0.8 AffectNet: the initial lambda_hat), ``lamb_lr`` (10),
    ``lamb_beta`` (0 RAF-DB / 0.9 AffectNet: momentum of the sparse lambda SGD), ``class_weights``
    (none | balanced), ``neighbors`` (path) or ``space`` (va | landmarks | features | pseudo_va) with
    ``space_checkpoint``, ``sim_floor`` (-1.3), ``centre_alpha`` (0.5), ``centre_separation`` (0.1),
    ``simnet_batchnorm`` (keras | torch).
    """
    name = "ldlva"
    per_sample_buffers = ("lambda_hat", "lambda_momentum", "knn", "neighbor_similarity")
    #: neighbour images per forward on the CPU when no backbone layer mixes samples (see neighbour_features)
    neighbour_chunk = 64
    # resnet18_raf: (Keras) Adam lr 1e-3, x0.1 at 10, 20, 40, 60 epochs, batch 32, pad 8 + crop, flip, erasing
    defaults = {"optimizer": "adam_keras", "lr": 1e-3, "weight_decay": 0.0, "scheduler": "step", "gamma": 0.1,
                "milestones": [10, 20, 40], "epochs": 60, "batch_size": 32,
                "augment": {"flip": 0.5, "crop": "random", "crop_padding": 8, "erasing": 0.5}}

    def __init__(self, backbone, num_classes, num_neighbors: int = 8, gamma: float = 0.01, lamb_init: float = 0.5,
                 lamb_lr: float = 10.0, lamb_beta: float = 0.0, class_weights: str = "none",
                 neighbors: str | None = None, space: str = "va", space_checkpoint: str | None = None,
                 sim_floor: float = -1.3, centre_alpha: float = 0.5, centre_separation: float = 0.1,
                 simnet_batchnorm: str = "keras", **kw):
        augment = kw.pop("augment", None)
        augment = dict(self.defaults["augment"] if augment is None else augment)
        super().__init__(backbone, num_classes, augment=augment, **kw)
        if class_weights not in ("none", "balanced"):
            raise ValueError(f"class_weights must be 'none' or 'balanced', got {class_weights!r}")
        if getattr(backbone, "num_classes", None) != num_classes:
            backbone.reset_classifier(num_classes)
        nn.init.kaiming_normal_(backbone.fc.weight)          # HeNormal, as the official Dense head
        nn.init.zeros_(backbone.fc.bias)
        D = backbone.num_features
        self.simnet = AdaptiveSimNet(D, floor=sim_floor, batch_norm=simnet_batchnorm)
        self.centres = DiscriminativeCentres(num_classes, D, alpha=centre_alpha, separation=centre_separation)
        self.neighbour_transform = T.train_transform(self.input_size, self.mean, self.std,
                                                     **{**augment, "erasing": 0.0})
        self.k, self.gamma = int(num_neighbors), float(gamma)
        self.lamb_init, self.lamb_lr, self.lamb_beta = float(lamb_init), float(lamb_lr), float(lamb_beta)
        self.class_weights = class_weights
        self.neighbors_path, self.space, self.space_checkpoint = neighbors, space, space_checkpoint
        self.register_buffer("lambda_hat", torch.zeros(0))
        self.register_buffer("lambda_momentum", torch.zeros(0))
        self.register_buffer("knn", torch.zeros(0, self.k, dtype=torch.long))
        self.register_buffer("neighbor_similarity", torch.zeros(0, self.k))
        self.register_buffer("weights", torch.ones(num_classes))
        self._train_set = None

    # -- setup ------------------------------------------------------------------
    def run_features_checkpoint(self) -> str | None:
        """``space_checkpoint`` when the neighbours are built in ``space: features``."""
        return self.space_checkpoint if self.space == "features" and not self.neighbors_path else None

    def setup_train(self, train_set, run_features=None) -> None:
        """Load or build the neighbours (``run_features``: the (N, D) features of ``space_checkpoint``'s
        run on ``train_set``, for ``space: features``) and size the per-sample state."""
        from ..data.neighbors import build_neighbors, load_neighbors
        n = len(train_set)
        if self.neighbors_path:
            nb = load_neighbors(self.neighbors_path, n=n, k=self.k)
        else:
            nb = build_neighbors(train_set, self.space, self.k,
                                 coordinates=run_features if self.space == "features" else None)
        dev = self.backbone.fc.weight.device
        self.knn = torch.as_tensor(nb["knn"], device=dev)
        self.neighbor_similarity = torch.as_tensor(nb["similarity"], device=dev)
        self.lambda_hat = torch.full((n,), self.lamb_init, device=dev)
        self.lambda_momentum = torch.zeros(n, device=dev)
        if self.class_weights == "balanced":      # sklearn 'balanced': n / (C * n_c)
            counts = np.bincount(train_set.labels, minlength=self.num_classes).astype(np.float64)
            w = n / (self.num_classes * np.maximum(counts, 1))
            self.weights = torch.as_tensor(w, dtype=torch.float32, device=dev)
        self._train_set = train_set

    # -- inference ----------------------------------------------------------------
    def certainty(self) -> torch.Tensor:
        """(N,) lambda = sigmoid(lambda_hat) of every training sample."""
        return torch.sigmoid(self.lambda_hat)

    def noise_scores(self, dataset, device, batch_size: int = 256) -> dict:
        """``1-lambda``: 1 - the learned certainty of each training label."""
        if len(self.lambda_hat) != len(dataset):
            return {}
        return {"1-lambda": (1 - self.certainty()).cpu().numpy()}

    def epoch_stats(self) -> dict:
        """``lambda_mean``: the mean certainty lambda over the training set."""
        lam = self.certainty()
        return {"lambda_mean": float(lam.mean()) if len(lam) else float("nan")}

    # -- training -------------------------------------------------------------------
    def _neighbour_images(self, nidx: torch.Tensor) -> dict:
        if self._train_set is None:
            raise RuntimeError("LDLVA.setup_train(train_set) must run before training (it loads the neighbours)")
        return self._train_set.get_batch(nidx.reshape(-1).cpu().numpy())

    def _batch_coupled(self) -> bool:
        """Whether a layer of the backbone mixes the samples of a batch here (batch norm in train mode or
        without running statistics): then the B*K neighbours must go through it as one batch."""
        return any(isinstance(mod, nn.modules.batchnorm._BatchNorm) and (mod.training or mod.running_mean is None)
                   for mod in self.backbone.modules())

    @torch.no_grad()
    def neighbour_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B*K, D) features of the neighbours' uint8 images: the neighbour augmentation of the whole batch,
        then the backbone (constants: no gradient; the module's mode, so train-mode BN statistics and
        running averages). Every random draw comes first, on the whole batch in the pipeline's order
        (crop, flip: on the uint8 images); on the CPU, when no layer mixes samples (frozen-norm
        backbones), the normalisation and the forward then run :attr:`neighbour_chunk` images at a time
        -- the same numbers (no layer couples the samples, and the convolutions' arithmetic per sample does
        not depend on the batch size: bit for bit in the tests, float32 and bf16) with activations that stay
        in cache instead of (B*K)-sized maps in fresh memory for every op; batch-norm backbones and GPUs
        keep one B*K batch."""
        head, tail = self.neighbour_transform.split_per_sample_tail()
        x = head(images)
        n = len(x) if x.device.type != "cpu" or self._batch_coupled() else self.neighbour_chunk
        return torch.cat([self.features(tail(c)) for c in x.split(n)])

    def training_step(self, batch):
        """LDLVA's loss cls + gamma * dcm; also steps lambda_hat (sparse SGD) and the class centres.

        The K neighbours of each sample are read from the training set and run without gradient;
        their predictions, weighted by the fixed similarity and the SimNet calibration, give the
        neighbour distribution ld. ``cls``: soft cross-entropy against
        lambda onehot(y) + (1 - lambda) ld (class-weighted with ``class_weights: balanced``);
        ``dcm``: the discriminative centre loss of the batch and neighbour features.

        Args:
            batch: ``image`` (B, 3, S, S) uint8, ``label`` (B,) int64, ``index`` (B,) int64 (rows
                of the training set given to :meth:`setup_train`).

        Returns:
            ``loss``, ``cls``, ``dcm``, ``lambda`` (batch mean certainty), ``calibration`` (mean
            c_ij), all (), and ``logits`` (B, C).
        """
        y, idx = batch["label"], batch["index"]
        B, K, C = len(y), self.k, self.num_classes
        nidx = self.knn[idx]                                                       # (B, K)
        nb = self._neighbour_images(nidx)
        fn = self.neighbour_features(nb["image"].to(y.device, non_blocking=True))
        with torch.no_grad():                        # constants, but train-mode BN (statistics + running averages)
            pn = F.softmax(self.backbone.fc(fn).float(), 1)                       # (B*K, C)
        x = self.train_transform(batch["image"])
        f = self.features(x)                                                       # (B, D)
        logits = self.backbone.fc(f)
        p = F.softmax(logits.float(), 1)
        c = self.simnet(f, fn.view(B, K, -1).to(f.dtype))                          # (B, K), grads to SimNet and f
        ld = neighbour_distribution(self.neighbor_similarity[idx], c.float(), pn.view(B, K, C))
        lam = torch.sigmoid(self.lambda_hat[idx])
        target = uncertainty_target(lam, y, ld)
        w = self.weights[y]
        cls = soft_cross_entropy(p, target, w)
        ny = nb["label"].to(y.device)
        feats = torch.cat([f.float(), fn.float()])
        lam_all = torch.sigmoid(self.lambda_hat[torch.cat([idx, nidx.reshape(-1)])])
        dcm = self.centres.loss(feats, torch.cat([y, ny]), lam_all)
        loss = cls + self.gamma * dcm
        self._step_lambda(idx, lambda_hat_gradient(p.detach(), y, ld.detach(), lam, w))
        self.centres.update(feats, torch.cat([y, ny]), lam_all, world_sum=sum_over_ranks)
        return {"loss": loss, "cls": cls.detach(), "dcm": dcm.detach(), "lambda": lam.mean().detach(),
                "calibration": c.detach().mean(), "logits": logits.detach()}

    @torch.no_grad()
    def _step_lambda(self, idx: torch.Tensor, grad: torch.Tensor) -> None:
        """Sparse SGD on the rows ``idx`` (TF IndexedSlices semantics: momentum of untouched rows
        is left alone); under DDP every rank applies every rank's rows."""
        if in_distributed_run():     # the gradient of the rank-averaged loss, as DDP gives the network
            grad = grad / dist.get_world_size()
        idx, grad = gather_cat(idx), gather_cat(grad)
        mom = self.lamb_beta * self.lambda_momentum[idx] + grad.to(self.lambda_momentum.dtype)
        self.lambda_momentum[idx] = mom
        self.lambda_hat[idx] -= self.lamb_lr * mom
