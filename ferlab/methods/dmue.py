"""DMUE: Dive into Ambiguity -- latent distribution mining and pairwise uncertainty estimation
(She et al., CVPR 2021).

A shared trunk (the stem and every stage but the last: stem .. layer3 of a ResNet) feeds C + 1
copies of the backbone's last stage (``backbone.stages[-1]``): auxiliary branch ``c`` is
trained only on samples *not* labelled ``c`` (over the other C - 1 classes) and, applied to the
samples labelled ``c``, mines their latent label distribution (the soft target of the target
branch). The target branch's logits are scaled by a per-sample confidence computed from the
sample's mean similarity to every class in the batch (weighted CE), and a similarity-preserving
loss ties the auxiliary and target branches. Inference uses the target branch only:
``export_inference_model()`` returns the plain backbone whose head is BN-neck -> classifier. Any
backbone with a stage description works (:mod:`ferlab.models.stages`), e.g. ``dlib_resnet29`` at
any ``out_stage``.

Deviations of the released code, each an explicit option:

- ``train_uncertainty_mlp`` (True, the paper): the released optimizer never contains the
  uncertainty MLP, which stays at its random init (``False``).
- ``train_neck_weight`` (True): the released optimizer also leaves the BN-neck's weight at 1
  (``False``). Its bias is frozen at 0 in both.
- ``sp_space``: ``released`` (default) compares the auxiliary *logits'* Gram matrix with the
  target *features'* (the code); ``features`` uses the auxiliary BN-neck features (the paper figure).
- ``neck``: ``shared`` (default, released) -- one BN-neck for all 2C + 1 calls per step, made in
  the official order (every auxiliary branch, then the target, then every latent pass), so its
  running statistics mix the branches and normalise the target at test time; ``per_branch`` gives
  every branch its own; ``none`` (not in the paper) has no BN-neck at all -- the classifiers
  read the GAP features directly. With ``classifier_bias: true`` this is the ``cpu_scratch``
  preset: from random init the official head (batch-statistics BN-neck on the nearly
  sample-independent GAP features of an untrained net, bias-free N(0, 0.001^2) classifiers)
  keeps the auxiliary CE at ln(C - 1) (see the README's DMUE diagnosis).
- ``classifier_bias`` (False, official): give every classifier a bias.
- ``min_per_class`` (2): the released batch filter skips a batch unless every class occurs twice;
  ferlab counts the skips (``skipped_batches`` in metrics.jsonl) and the ``stratified`` sampler
  makes them impossible for batches of >= 2 C.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..collectives import gather_cat
from ..losses.pairwise_uncertainty import (
    PairwiseConfidence,
    exclude_class,
    latent_distribution_target,
    similarity_preserving_loss,
    soft_label_loss,
)
from ..models.stages import require_stages
from .base import Method, register_method


def ramp_up(epoch: float, a: float) -> float:
    """exp(-5 (1 - e/a)^2) for e <= a, then 1 (weight of the target-branch losses)."""
    return math.exp(-5.0 * (1.0 - epoch / a) ** 2) if epoch <= a else 1.0


def ramp_down(epoch: float, a: float) -> float:
    """1 for e < a, then exp(-(1 - a/e)^2) (weight of the auxiliary CE; ~0.5 at e = 6a)."""
    return 1.0 if epoch < a else math.exp(-((1.0 - a / epoch) ** 2))


# the official per-epoch lr tables as multipliers of each group's base lr (1e-4 and 1e-3):
# [epoch bound, multiplier], applied while epoch < bound; both go back *up* at epochs 22-25.
BASE_SCHEDULE = [[6, 1.0], [12, 0.5], [20, 0.1], [22, 0.1], [25, 0.5], [60, 0.1]]
CLASSIFIER_SCHEDULE = [[4, 1.0], [8, 0.5], [14, 0.1], [22, 0.01], [25, 0.05], [60, 0.01]]


@register_method
class DMUE(Method):
    """Args (``method_args``): ``ramp_a`` (6: AffectNet; FERPlus 10-14, RAF-DB 9-10),
    ``temperature`` (1.2), ``soft_weight`` (0.5), ``sp_weight`` (1000), ``dropout`` (0.5),
    ``classifier_lr_mult`` (10), ``train_uncertainty_mlp`` (True), ``train_neck_weight`` (True),
    ``sp_space`` (released | features), ``neck`` (shared | per_branch), ``min_per_class`` (2),
    ``classifier_init_std`` (0.001, official N(0, 0.001^2) for every classifier),
    ``classifier_bias`` (False, official). ``neck: none`` has no BN-neck (not in the paper).
    """
    name = "dmue"
    per_sample_buffers = ("confidence_bank",)
    # official code: Adam wd 1e-4, lr 1e-4 (base) / 1e-3 (classifiers) with the piecewise tables,
    # 36 epochs, batch 72, ImbalancedDatasetSampler, noise p 0.25 -> resize 256 / crop 224 -> flip -> erase
    defaults = {"optimizer": "adam", "lr": 1e-4, "weight_decay": 1e-4, "scheduler": "piecewise", "epochs": 36,
                "batch_size": 72, "sampler": "balanced",
                "augment": {"gaussian_noise": 0.25, "crop": "resize_crop", "flip": 0.5, "erasing": 0.5}}

    def __init__(self, backbone, num_classes, ramp_a: float = 6.0, temperature: float = 1.2,
                 soft_weight: float = 0.5, sp_weight: float = 1000.0, dropout: float = 0.5,
                 classifier_lr_mult: float = 10.0, train_uncertainty_mlp: bool = True, train_neck_weight: bool = True,
                 sp_space: str = "released", neck: str = "shared", min_per_class: int = 2,
                 classifier_init_std: float = 0.001, classifier_bias: bool = False, **kw):
        augment = kw.pop("augment", None)
        super().__init__(backbone, num_classes, augment=self.defaults["augment"] if augment is None else augment, **kw)
        if sp_space not in ("released", "features"):
            raise ValueError(f"sp_space must be 'released' or 'features', got {sp_space!r}")
        if neck not in ("shared", "per_branch", "none"):
            raise ValueError(f"neck must be 'shared', 'per_branch' or 'none', got {neck!r}")
        if num_classes < 3:
            raise ValueError(f"DMUE needs at least 3 classes (auxiliary branches see C - 1), got {num_classes}")
        require_stages(backbone, "DMUE", "its C + 1 branches are copies of the backbone's last stage, a module from "
                                         "one (N, C, h, w) map to the next")
        C, D = num_classes, backbone.num_features
        backbone.reset_classifier(0)
        # the backbone's last stage is the target branch; the C auxiliary copies start from its (pre-trained) weights
        self.aux_branches = nn.ModuleList(copy.deepcopy(backbone.stages[-1]) for _ in range(C))
        n_necks = {"shared": 1, "per_branch": C + 1, "none": 0}[neck]
        self.necks = nn.ModuleList(nn.BatchNorm1d(D) for _ in range(n_necks))
        for bn in self.necks:
            bn.bias.requires_grad_(False)
            bn.weight.requires_grad_(bool(train_neck_weight))
        self.dropout = nn.Dropout(dropout)
        bias = bool(classifier_bias)
        self.aux_classifiers = nn.ModuleList(nn.Linear(D, C - 1, bias=bias) for _ in range(C))
        self.classifier = nn.Linear(D, C, bias=bias)
        for lin in [*self.aux_classifiers, self.classifier]:
            nn.init.normal_(lin.weight, std=classifier_init_std)
            if bias:
                nn.init.zeros_(lin.bias)
        self.confidence_head = PairwiseConfidence(C)
        self.confidence_head.requires_grad_(bool(train_uncertainty_mlp))
        self.ramp_a, self.temperature = float(ramp_a), float(temperature)
        self.soft_weight, self.sp_weight = float(soft_weight), float(sp_weight)
        self.classifier_lr_mult = float(classifier_lr_mult)
        self.sp_space, self.min_per_class = sp_space, int(min_per_class)
        self.epoch = 0
        # last training-time confidence of every training sample (NaN: not seen yet)
        self.register_buffer("confidence_bank", torch.zeros(0))

    @property
    def find_unused_parameters(self) -> bool:
        """Whether DDP must look for parameters without a gradient: only without the batch filter
        (``min_per_class`` 0), where a batch can lack a class and its auxiliary branch sits out."""
        return self.min_per_class == 0      # without the filter a branch can miss a step

    # -- building blocks ----------------------------------------------------------
    def neck(self, branch: int) -> nn.Module:
        """BN-neck of auxiliary branch ``branch`` (0..C-1) or of the target (C); Identity for ``neck: none``."""
        if not len(self.necks):
            return nn.Identity()
        return self.necks[0] if len(self.necks) == 1 else self.necks[branch]

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, C', h, w): the stem and ``stages[:-1]``, shared by every branch
        (ResNet-18: stem .. layer3, (N, 256, H/16, W/16))."""
        b = self.backbone
        return b.forward_stages(b.forward_stem(x), 0, len(b.stages) - 1)

    def target_stage(self, t: torch.Tensor) -> torch.Tensor:
        """The target branch, the backbone's last stage: trunk output -> (N, D, h', w')."""
        return self.backbone.stages[-1](t)

    def pooled(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, D) target-branch GAP features (what the confidence compares)."""
        return self.backbone.forward_head(self.target_stage(self.trunk(images)), pre_logits=True)

    def _aux(self, c: int, t: torch.Tensor, drop: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.backbone.forward_head(self.aux_branches[c](t), pre_logits=True)
        h = self.neck(c)(self.dropout(f) if drop else f)
        return h, self.aux_classifiers[c](h)

    # -- contract -----------------------------------------------------------------
    def setup_train(self, train_set) -> None:
        """Size the confidence bank to the training set: (N,) NaN (no sample seen yet)."""
        self.confidence_bank = torch.full((len(train_set),), float("nan"), device=self.classifier.weight.device)

    def on_epoch_start(self, epoch: int) -> None:
        """Note the epoch (the ramp-up / ramp-down weights depend on it)."""
        self.epoch = epoch

    def param_groups(self, lr: float) -> list[dict]:
        """Two groups with the official piecewise tables (``scheduler: piecewise``): the backbone
        and auxiliary stages at ``lr`` (:data:`BASE_SCHEDULE`), the classifiers, confidence MLP and
        BN-necks at ``lr * classifier_lr_mult`` (:data:`CLASSIFIER_SCHEDULE`); frozen parameters
        are left out."""
        heads = [*self.aux_classifiers.parameters(), *self.classifier.parameters(),
                 *self.confidence_head.parameters(), *self.necks.parameters()]
        head_ids = {id(p) for p in heads}
        base = [p for p in self.parameters() if id(p) not in head_ids and p.requires_grad]
        return [{"params": base, "lr": lr, "schedule": BASE_SCHEDULE},
                {"params": [p for p in heads if p.requires_grad], "lr": lr * self.classifier_lr_mult,
                 "schedule": CLASSIFIER_SCHEDULE}]

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, C): trunk -> target stage -> GAP -> BN-neck -> classifier."""
        return self.classifier(self.neck(self.num_classes)(self.pooled(images)))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, D): BN-neck features the target classifier reads."""
        return self.neck(self.num_classes)(self.pooled(images))

    def cam_classifier(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The eval-mode BN-neck folded into the target classifier: logits = W' GAP(F) + b'."""
        w, b = self.classifier.weight, self.classifier.bias
        b = w.new_zeros(len(w)) if b is None else b
        bn = self.neck(self.num_classes)
        if isinstance(bn, nn.Identity):
            return w, b
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        return w * scale, w @ (bn.bias - bn.running_mean * scale) + b

    def confidence(self, images: torch.Tensor, labels: torch.Tensor, ref_features: torch.Tensor | None = None,
                   ref_labels: torch.Tensor | None = None) -> torch.Tensor:
        """(N,) confidence in (0, 1) of ``labels`` for ``images``; the class similarities are taken
        against ``ref_features`` (R, D) from :meth:`pooled` (default: the batch itself, as in training)."""
        return self.confidence_head(self.pooled(images), labels, ref_features, ref_labels)

    def noise_scores(self, dataset, device, batch_size: int = 256) -> dict:
        """``1-confidence``: the confidence of each training label with class similarities taken
        against the whole dataset (eval features); ``1-confidence_bank``: 1 - the confidence each
        sample last got in training (NaN if never drawn)."""
        feats = torch.cat([self.pooled(self.prepare(dataset.get_batch(np.arange(lo, min(lo + batch_size, len(dataset))))
                                                    ["image"].to(device))).float()
                           for lo in range(0, len(dataset), batch_size)])
        labels = torch.as_tensor(dataset.labels, device=feats.device)
        conf = torch.cat([self.confidence_head(feats[lo:lo + 1024], labels[lo:lo + 1024], feats, labels)
                          for lo in range(0, len(dataset), 1024)])
        out = {"1-confidence": (1 - conf).cpu().numpy()}
        if len(self.confidence_bank) == len(dataset):
            out["1-confidence_bank"] = (1 - self.confidence_bank).cpu().numpy()
        return out

    def latent_distribution(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W), (N,) -> (N, C): the latent label distribution the auxiliary branches mine
        (branch y_i on sample i, sharpened; 0 at the given label) -- DMUE's soft target."""
        t = self.trunk(images)
        out = torch.zeros(len(labels), self.num_classes, device=images.device)
        for c in labels.unique().tolist():
            mine = (labels == c).nonzero().squeeze(1)
            _, q = self._aux(c, t[mine], drop=False)
            out[mine] = latent_distribution_target(q, c, self.num_classes, self.temperature)
        return out

    def export_inference_model(self) -> nn.Module:
        """A standalone backbone (:class:`~ferlab.models.ResNet`, :class:`~ferlab.models.DlibResNet`: trunk ->
        target stage -> GAP -> BN-neck -> classifier) in eval mode: plain-backbone cost, the same logits as
        :meth:`predict`."""
        net = copy.deepcopy(self.backbone)
        net.fc = nn.Sequential(copy.deepcopy(self.neck(self.num_classes)), copy.deepcopy(self.classifier))
        net.num_classes = self.num_classes
        net.drop = nn.Identity()
        net.requires_grad_(False)
        return net.eval()

    def epoch_stats(self) -> dict:
        """``ramp_up`` and ``ramp_down`` weights of the epoch, ``confidence_mean`` over the samples
        seen so far (confidence bank)."""
        seen = self.confidence_bank[~torch.isnan(self.confidence_bank)]
        return {"ramp_up": ramp_up(self.epoch, self.ramp_a), "ramp_down": ramp_down(self.epoch, self.ramp_a),
                "confidence_mean": float(seen.mean()) if len(seen) else float("nan")}

    # -- training -------------------------------------------------------------------
    def training_step(self, batch):
        """DMUE's loss: ramp_up * (wce + soft_weight * soft + sp_weight * sp) + ramp_down * aux_ce.

        ``aux_ce``: each auxiliary branch's cross-entropy over the other C - 1 classes on the
        samples not labelled with its class (mean over branches); ``wce``: cross-entropy of the
        target logits scaled by the per-sample confidence; ``soft``: the target branch against the
        latent label distribution mined by the auxiliary branches; ``sp``: the similarity-preserving
        loss between auxiliary and target branches. Each sample's confidence goes to the bank.

        Args:
            batch: ``image`` (B, 3, S, S) uint8, ``label`` (B,) int64 (every sample labelled),
                ``index`` (B,) int64.

        Returns:
            ``loss``, ``wce``, ``soft``, ``sp``, ``aux_ce``, ``confidence`` (batch mean), all (),
            and the target branch's ``logits`` (B, C).
        """
        x = self.train_transform(batch["image"])
        y = batch["label"]
        C = self.num_classes
        t = self.trunk(x)
        # the official call order of the shared BN-neck, whose running statistics (momentum 0.1) depend
        # on it, as do the dropout draws: every auxiliary branch, then the target, then every latent pass
        aux = []
        for c in range(C):
            keep = (y != c).nonzero().squeeze(1)
            if len(keep):
                aux.append((c, keep, *self._aux(c, t[keep])))
        f = self.backbone.forward_head(self.target_stage(t), pre_logits=True)          # (B, D) pre-dropout
        h = self.neck(C)(self.dropout(f))
        logits = self.classifier(h)                                                     # (B, C)
        target = logits.new_zeros(len(y), C, dtype=torch.float32)
        aux_ce = sp = logits.new_zeros((), dtype=torch.float32)
        for c, keep, a_feat, a_logits in aux:
            aux_ce = aux_ce + F.cross_entropy(a_logits.float(), exclude_class(y[keep], c))
            sp = sp + similarity_preserving_loss(a_logits if self.sp_space == "released" else a_feat, h[keep])
        used = len(aux)
        for c in range(C):
            mine = (y == c).nonzero().squeeze(1)
            if len(mine) > 1:   # (the BN-neck needs 2 samples in train mode; guaranteed by the filter)
                with torch.no_grad():
                    _, q = self._aux(c, t[mine], drop=False)
                target[mine] = latent_distribution_target(q, c, C, self.temperature)
        aux_ce, sp = aux_ce / max(used, 1), sp / max(used, 1)
        conf = self.confidence_head(f, y)                                                # (B,)
        wce = F.cross_entropy(conf[:, None] * logits.float(), y)
        soft = soft_label_loss(logits, y, target)
        up, down = ramp_up(self.epoch, self.ramp_a), ramp_down(self.epoch, self.ramp_a)
        loss = up * (wce + self.soft_weight * soft + self.sp_weight * sp) + down * aux_ce
        self._remember(batch["index"], conf.detach())
        return {"loss": loss, "wce": wce.detach(), "soft": soft.detach(), "sp": sp.detach(), "aux_ce": aux_ce.detach(),
                "confidence": conf.detach().mean(), "logits": logits.detach()}

    @torch.no_grad()
    def _remember(self, index: torch.Tensor, conf: torch.Tensor) -> None:
        if not len(self.confidence_bank):
            return
        upd = torch.stack([index.to(conf.dtype), conf])   # exact for indices < 2^24
        upd = gather_cat(upd, 1)
        self.confidence_bank[upd[0].long()] = upd[1].to(self.confidence_bank.dtype)
