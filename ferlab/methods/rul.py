"""RUL: Relative Uncertainty Learning (Zhang, Wang & Wang, NeurIPS 2021).

Two heads read the backbone's last feature map: a feature ``mu`` and a
log-variance. Pairs of samples are mixed in feature space with weights given by
their *relative* uncertainty, and the mixture must predict both labels (add-up
loss); the uncertainty head learns only through those weights. Inference is
``fc(mu)``: the cost of a plain backbone plus two small linear layers.

Optional SCN-style relabelling (``relabel=True``): the RUL author states that
the paper's noisy-label numbers were obtained with SCN's relabelling added
(it is not in the released code). From ``relabel_start_epoch`` on, a training
sample whose prediction beats its current label by more than ``relabel_margin``
(p_max - p_label) is permanently relabelled to the prediction. The current
targets are a buffer, hence part of every checkpoint.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..collectives import gather_cat
from ..losses.uncertainty_mixup import add_up_loss, sample_uncertainty, uncertainty_mixup
from .base import Method, register_method


class UncertaintyHead(nn.Sequential):
    """(N, C, h, w) -> (N, dim): BN2d(no affine) -> Dropout -> flatten -> Linear -> BN1d (official layout)."""

    def __init__(self, channels: int, spatial: int, dim: int = 64, dropout: float = 0.4):
        super().__init__(nn.BatchNorm2d(channels, eps=2e-5, affine=False), nn.Dropout(dropout), nn.Flatten(1),
                         nn.Linear(channels * spatial, dim), nn.BatchNorm1d(dim, eps=2e-5))


@register_method
class RUL(Method):
    """Args (``method_args``): ``dim`` (64), ``dropout`` (0.4), ``fc_lr_mult`` (10: the
    classifier trains at 10x the base lr), ``relabel`` (False), ``relabel_start_epoch`` (10,
    SCN's), ``relabel_margin`` (0.2, SCN's).
    Augmentation: with probability ``flip_or_noise`` one of {flip, N(0, 30) noise}; random
    erasing after normalisation.
    """
    name = "rul"
    per_sample_buffers = ("targets",)
    # official code: 60 epochs (the paper says 70), batch 64, Adam 2e-4 (fc 2e-3), wd 1e-4, ExponentialLR 0.9
    defaults = {"optimizer": "adam", "lr": 2e-4, "weight_decay": 1e-4, "scheduler": "exponential", "gamma": 0.9,
                "epochs": 60, "batch_size": 64, "augment": {"flip": 0.0, "flip_or_noise": 0.5, "erasing": 0.5}}

    def __init__(self, backbone, num_classes, dim: int = 64, dropout: float = 0.4, fc_lr_mult: float = 10.0,
                 relabel: bool = False, relabel_start_epoch: int = 10, relabel_margin: float = 0.2, **kw):
        augment = kw.pop("augment", None)
        super().__init__(backbone, num_classes, augment=self.defaults["augment"] if augment is None else augment, **kw)
        backbone.reset_classifier(0)   # RUL has its own classifier on the 64-d feature
        channels, spatial = self._feature_shape(backbone)
        self.mu_head = UncertaintyHead(channels, spatial, dim, dropout)
        self.log_var_head = UncertaintyHead(channels, spatial, dim, dropout)
        self.fc = nn.Linear(dim, num_classes)
        self.fc_lr_mult = float(fc_lr_mult)
        self.relabel, self.relabel_start_epoch = bool(relabel), int(relabel_start_epoch)
        self.relabel_margin = float(relabel_margin)
        self.epoch = 0
        self.register_buffer("targets", torch.zeros(0, dtype=torch.long))  # current per-sample labels (relabel)
        self.register_buffer("relabelled", torch.zeros((), dtype=torch.long))

    def _feature_shape(self, backbone) -> tuple[int, int]:
        was_training = backbone.training
        backbone.eval()
        with torch.no_grad():
            f = backbone.forward_features(torch.zeros(1, 3, self.input_size, self.input_size))
        backbone.train(was_training)
        return f.shape[1], f.shape[2] * f.shape[3]

    # -- contract ---------------------------------------------------------------
    def setup_train(self, train_set) -> None:
        """With ``relabel``: the current targets start as the training labels (N,)."""
        if self.relabel:
            self.targets = torch.as_tensor(train_set.labels, dtype=torch.long, device=self.fc.weight.device).clone()

    def on_epoch_start(self, epoch: int) -> None:
        """Note the epoch (relabelling starts at ``relabel_start_epoch``)."""
        self.epoch = epoch

    def param_groups(self, lr: float) -> list[dict]:
        """Two groups: everything but the classifier at ``lr``, the classifier at ``lr * fc_lr_mult``."""
        fc = set(id(p) for p in self.fc.parameters())
        return [{"params": [p for p in self.parameters() if id(p) not in fc], "lr": lr},
                {"params": list(self.fc.parameters()), "lr": lr * self.fc_lr_mult}]

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised -> (N, C) logits: backbone -> ``mu`` head -> fc (no mixup, no variance)."""
        return self.fc(self.mu_head(self.backbone.forward_features(images)))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, dim) the ``mu`` embedding."""
        return self.mu_head(self.backbone.forward_features(images))

    def uncertainty(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N,) uncertainty s = mean(exp(log_var)) (larger = harder / noisier)."""
        return sample_uncertainty(self.log_var_head(self.backbone.forward_features(images))).squeeze(1)

    def noise_scores(self, dataset, device, batch_size: int = 256) -> dict:
        """``{"uncertainty": (N,) float}``: :meth:`uncertainty` of every sample (eval transform)."""
        import numpy as np
        batches = (dataset.get_batch(np.arange(lo, min(lo + batch_size, len(dataset))))["image"]
                   for lo in range(0, len(dataset), batch_size))
        out = [self.uncertainty(self.prepare(images.to(device))).float().cpu() for images in batches]
        return {"uncertainty": torch.cat(out).numpy()}

    # -- training ---------------------------------------------------------------
    def training_step(self, batch):
        """Uncertainty mixup of ``mu`` with a random permutation of the batch and the add-up loss of
        the mixture against both labels; with ``relabel`` the labels are the current targets, and
        from ``relabel_start_epoch`` on SCN's relabelling updates them.

        Args:
            batch: ``image`` (B, 3, S, S) uint8, ``label`` (B,) int64, ``index`` (B,) int64.

        Returns:
            ``loss`` and ``add_up`` (the add-up loss, ()), ``uncertainty`` (() batch mean of the
            sample uncertainty), ``logits`` (B, C) of the mixed features.
        """
        x = self.train_transform(batch["image"])
        y = batch["label"]
        if self.relabel:
            y = self.targets[batch["index"]]
        f = self.backbone.forward_features(x)
        mu, log_var = self.mu_head(f), self.log_var_head(f)
        perm = torch.randperm(len(y), device=y.device)
        mixed, _, _ = uncertainty_mixup(mu, log_var, perm)
        logits = self.fc(mixed)
        loss = add_up_loss(logits, y, y[perm])
        out = {"loss": loss, "add_up": loss.detach(), "uncertainty": sample_uncertainty(log_var.detach()).mean(),
               # like the official log: argmax of the *mixture* vs y (plateaus near 60%, not a bug)
               "logits": logits.detach()}
        if self.relabel and self.epoch >= self.relabel_start_epoch:
            with torch.no_grad():
                self._relabel(batch["index"], self.fc(mu.detach()).float(), y)
        return out

    def epoch_stats(self) -> dict:
        """With ``relabel``: ``relabelled_total``, label changes so far; else nothing."""
        return {"relabelled_total": int(self.relabelled)} if self.relabel else {}

    @torch.no_grad()
    def _relabel(self, index: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        """SCN: p_max - p_label > margin -> label := argmax (applied on every rank identically)."""
        p = logits.softmax(1)
        p_max, arg = p.max(1)
        change = (p_max - p.gather(1, y[:, None]).squeeze(1)) > self.relabel_margin
        upd = torch.stack([torch.where(change, index, -1), arg])    # (2, n): index (-1 = keep), new label
        upd = gather_cat(upd, 1)
        keep = upd[0] >= 0
        idx, new = upd[0][keep], upd[1][keep]
        self.relabelled += int((self.targets[idx] != new).sum())
        self.targets[idx] = new
