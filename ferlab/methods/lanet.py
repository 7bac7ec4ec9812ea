"""LA-Net: landmark-aware label distributions and expression-landmark contrast (Wu & Cui, ICCV 2023).

The backbone's stem + first stage (layer1 of a ResNet) feed two branches: the expression branch
(the backbone's own ``stages[1:]`` + classifier: ``predict`` costs the plain backbone) and a
landmark branch (its own copy of ``stages[1:]`` and an FPN top-down path to heatmaps at the first
stage's resolution, stride 4, trained with the weighted Adaptive Wing loss). Any backbone with a
stage description (:mod:`ferlab.models.stages`) and at least two stages works: ResNet-18's
layer2-4, or dlib_resnet29's stages 2..``out_stage``. Each step estimates a label distribution for
every sample from its K = 8 batch neighbours in the expression (u) and landmark (v) feature
spaces, averages it into a per-sample bank (m = 0.9), and adds KL(target || prediction) to CE;
projections of u and v are contrasted
across modalities against queues of momentum-encoder keys, with positives shared by samples whose
pseudo label (the target's argmax at confidence >= 0.7) agrees.

Deviations, each an option: ``swap_landmarks`` (default True) swaps left/right landmark indices on
flips (the official flip does not; ``swap_landmarks: false`` restores it); ``pseudo_label_offset``
(official 0: sample 0's unique label collides with class 0; 1 avoids it); ``landmark_bias`` (official
False: the lateral and heatmap 1x1 convs are bias-free; True gives them biases, as ferlab did
before); ``heatmap_rounding`` (``official``: the target window's corner truncated toward zero, so a
heatmap centre at 4 or less peaks one pixel further in; ``exact``: the peak at the rounded centre,
see :func:`~ferlab.losses.landmark_contrastive.heatmap_targets`). Not reproduced: the
DDP batch shuffle for the key encoder (moot under the official SyncBN, a no-op in one process);
FPN upsampling goes to the lateral's size instead of x2 (equal at 224 px, needed at 48 px).
Heatmap cell j stands for input pixel j * (input side / heatmap side), as in the official target
generator; on an unpadded backbone (dlib_resnet29: 12 x 12 heatmaps at 55 px, 26 x 26 at 112 px)
the receptive-field centre of cell j is pixel 4 j + 5, so targets near the top/left edge sit up to
about one cell from the features that see them.
The bank, queues and momentum encoder are buffers/modules, so they are checkpointed.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..collectives import gather_cat, gather_cat_with_grad
from ..data import transforms as T
from ..losses.landmark_contrastive import (
    LabelDistributionEstimator,
    adaptive_wing_loss,
    el_contrastive_loss,
    enqueue,
    heatmap_targets,
    init_queue,
    pseudo_labels,
)
from ..models.stages import require_stages
from .base import Method, register_method

MS_CELEB_MEAN = (0.5412, 0.4324, 0.3795)
MS_CELEB_STD = (0.2485, 0.2182, 0.2066)
EMPTY_LABEL = -10 ** 10      # label of the initial queue entries: never equal to a pseudo label


class LandmarkBranch(nn.Module):
    """Own copy of the backbone's ``stages[1:]`` on the first stage's map F1, an FPN top-down path
    to F1's resolution and a 1x1 heatmap head. ``forward(f1)`` -> heatmaps (B, K, h1, w1), v (B, c1).

    The copies carry the backbone's stage names (``layer2``..``layer4`` of a ResNet) and
    ``lateral{i}`` (1x1, ``feature_info[i - 1]["channels"]`` -> c1) reads stage i, so parameter
    names -- checkpoint keys -- are the backbone's own. The lateral and heatmap 1x1 convs are
    bias-free as the official ones (``bias=True``: with biases; a checkpoint that has them, made
    before bias-free was the default, loads with them)."""

    def __init__(self, backbone: nn.Module, num_landmarks: int, bias: bool = False):
        super().__init__()
        require_stages(backbone, "LA-Net", "its landmark branch copies stages 2..n onto the first stage's map and "
                                           "builds its FPN from the stages' maps")
        if len(backbone.stages) < 2:
            raise ValueError(f"LA-Net's landmark branch needs a backbone with at least 2 stages (it copies "
                             f"stages 2..n onto stage 1's map); got {len(backbone.stages)}: {backbone.stage_names}")
        self.stage_names = tuple(backbone.stage_names[1:])
        for name, stage in zip(self.stage_names, backbone.stages[1:]):
            setattr(self, name, copy.deepcopy(stage))
        channels = [d["channels"] for d in backbone.feature_info]
        c1 = channels[0]
        self.lateral_names = tuple(f"lateral{i + 1}" for i in range(len(channels)))
        for i in reversed(range(len(channels))):        # top-down: lateral4 is made (initialised) first
            setattr(self, self.lateral_names[i], nn.Conv2d(channels[i], c1, 1, bias=bias))
        self.heatmap = nn.Conv2d(c1, num_landmarks, 1, bias=bias)
        self.convs = (*self.lateral_names, "heatmap")
        self.num_features = c1

    def _load_from_state_dict(self, state_dict, prefix, *args, **kw):
        for name in self.convs:
            conv = getattr(self, name)
            if conv.bias is None and f"{prefix}{name}.bias" in state_dict:
                conv.bias = nn.Parameter(conv.weight.new_zeros(conv.out_channels))
        super()._load_from_state_dict(state_dict, prefix, *args, **kw)

    @staticmethod
    def _up(p, like):
        return F.interpolate(p, size=like.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, f1: torch.Tensor):
        """The first stage's map f1 (B, c1, h1, w1) -> (heatmaps (B, K, h1, w1), v (B, c1): the
        global average of the finest FPN level)."""
        c = [f1]                                                  # C1 .. Cn (ResNet: layer1 .. layer4 maps)
        for name in self.stage_names:
            c.append(getattr(self, name)(c[-1]))
        laterals = [getattr(self, name) for name in self.lateral_names]
        p = laterals[-1](c[-1])                                   # Pn, then P_{n-1} .. P1 top-down
        for i in reversed(range(len(c) - 1)):
            p = self._up(p, c[i]) + laterals[i](c[i])
        return self.heatmap(p), p.mean((2, 3))


def _mlp(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, cout), nn.ReLU(inplace=True), nn.Linear(cout, cout))


class LANetEncoder(nn.Module):
    """Expression branch (``backbone``) + landmark branch + the two projection heads g_u, g_v."""

    def __init__(self, backbone: nn.Module, num_landmarks: int, landmark_bias: bool = False):
        super().__init__()
        self.backbone = backbone
        self.landmarks = LandmarkBranch(backbone, num_landmarks, bias=landmark_bias)
        c1, d = self.landmarks.num_features, backbone.num_features
        self.proj_u, self.proj_v = _mlp(d, c1), _mlp(c1, c1)

    def forward(self, x: torch.Tensor) -> dict:
        """Normalised images (B, 3, H, W) -> ``logits`` (B, C), expression features ``u`` (B, D),
        landmark features ``v`` (B, c1), ``heatmaps`` (B, K, h1, w1)."""
        b = self.backbone
        f1 = b.forward_stages(b.forward_stem(x), 0, 1)                 # the first stage's map
        u = b.forward_head(b.forward_stages(f1, 1), pre_logits=True)
        heat, v = self.landmarks(f1)
        return {"logits": b.fc(b.drop(u)), "u": u, "v": v, "heatmaps": heat}

    def project(self, u, v):
        """u (B, D), v (B, c1) -> their projections g_u(u), g_v(v), each (B, c1) and L2-normalised."""
        return F.normalize(self.proj_u(u), dim=1), F.normalize(self.proj_v(v), dim=1)


@register_method
class LANet(Method):
    """Args (``method_args``): ``num_landmarks`` (the dataset's K: 68 dlib / synthetic, 19 LA-Net's
    RAF-DB files), ``num_neighbors`` (8), ``bank_momentum`` (0.9), ``temperature`` (0.1),
    ``confidence`` (0.7), ``queue_size`` (8192), ``encoder_momentum`` (0.999), loss weights
    ``landmark_weight`` / ``kl_weight`` / ``contrastive_weight`` (1 / 1 / 0.1),
    ``swap_landmarks`` (True), ``pseudo_label_offset`` (0), ``landmark_bias`` (False),
    ``heatmap_rounding`` (official | exact).
    Augmentation (``augment``): ``flip`` (0.5), ``crop_scale`` ([0.75, 1]), ``jitter`` (0.4),
    ``erasing`` (0.2), ``erasing_scale`` ([0.02, 0.2]) -- landmarks move with the image.
    The training set must carry landmarks (``dataset_args.landmarks``: a ``ferlab landmarks`` file
    or LA-Net's ``.tensor``; the synthetic dataset has its own).
    """
    name = "lanet"
    per_sample_buffers = ("bank",)
    # official: Adam 1e-3, wd 0, LinearLR 1 -> 0 per iteration over floor(N / 128) x 80 iterations, 80 epochs,
    # global batch 128, the last partial batch dropped, progressive sampler
    defaults = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "scheduler": "linear", "epochs": 80,
                "batch_size": 128, "drop_last": True, "sampler": "progressive",
                "augment": {"flip": 0.5, "crop_scale": [0.75, 1.0], "jitter": 0.4, "erasing": 0.2,
                            "erasing_scale": [0.02, 0.2]}}

    def __init__(self, backbone, num_classes, num_landmarks: int = 68, num_neighbors: int = 8,
                 bank_momentum: float = 0.9, temperature: float = 0.1, confidence: float = 0.7,
                 queue_size: int = 8192, encoder_momentum: float = 0.999, landmark_weight: float = 1.0,
                 kl_weight: float = 1.0, contrastive_weight: float = 0.1, swap_landmarks: bool = True,
                 pseudo_label_offset: int = 0, landmark_bias: bool = False, heatmap_rounding: str = "official",
                 **kw):
        augment = {**self.defaults["augment"], **(kw.pop("augment", None) or {})}
        unknown = set(augment) - set(self.defaults["augment"])
        if unknown:
            raise ValueError(f"LA-Net augment keys are {sorted(self.defaults['augment'])}; got {sorted(unknown)}")
        super().__init__(backbone, num_classes, augment={}, **kw)
        if getattr(backbone, "num_classes", None) != num_classes:
            backbone.reset_classifier(num_classes)
        self.landmark_transform = T.landmark_train_transform(self.input_size, self.mean, self.std,
                                                             swap_landmarks=swap_landmarks, **augment)
        self.train_transform = lambda x: self.landmark_transform(x, x.new_zeros(len(x), 1, 2))[0]
        self.num_landmarks = int(num_landmarks)
        if heatmap_rounding not in ("official", "exact"):
            raise ValueError(f"heatmap_rounding must be 'official' or 'exact', got {heatmap_rounding!r}")
        self.heatmap_rounding = heatmap_rounding
        self.query = LANetEncoder(backbone, self.num_landmarks, landmark_bias=bool(landmark_bias))
        self.key_encoder = copy.deepcopy(self.query).requires_grad_(False)
        d_u, d_v = backbone.num_features, self.query.landmarks.num_features
        self.lde = LabelDistributionEstimator(d_u, d_v, k=num_neighbors)
        self.m, self.temperature, self.confidence = float(bank_momentum), float(temperature), float(confidence)
        self.encoder_momentum = float(encoder_momentum)
        self.weights = {"landmarks": float(landmark_weight), "kl": float(kl_weight), "el": float(contrastive_weight)}
        self.pseudo_label_offset = int(pseudo_label_offset)
        self.register_buffer("bank", torch.zeros(0, num_classes))
        self.register_buffer("queue_u", init_queue(queue_size, d_v))
        self.register_buffer("queue_v", init_queue(queue_size, d_v))
        self.register_buffer("queue_labels", torch.full((queue_size,), EMPTY_LABEL, dtype=torch.long))
        self.register_buffer("queue_pointer", torch.zeros((), dtype=torch.long))

    # -- setup ------------------------------------------------------------------------------------
    def setup_train(self, train_set) -> None:
        """Check the training set's landmarks (present, ``num_landmarks`` per image) and start the
        label-distribution bank (N, C) at the one-hot training labels.

        Raises:
            ValueError: No landmarks, or another number of them.
        """
        if train_set.landmarks is None:
            raise ValueError(f"LA-Net needs landmarks on the training set {train_set.name}: make a file with "
                             f"`ferlab landmarks` and pass dataset_args.landmarks=FILE")
        k = train_set.landmarks.shape[1]
        if k != self.num_landmarks:
            raise ValueError(f"{train_set.name} has {k} landmarks per image but LA-Net was built for "
                             f"method_args.num_landmarks={self.num_landmarks}")
        dev = self.backbone.fc.weight.device
        self.bank = F.one_hot(torch.as_tensor(train_set.labels, device=dev).clamp(min=0), self.num_classes).float()

    # -- inference ----------------------------------------------------------------------------------
    def label_distribution(self) -> torch.Tensor:
        """(N, C) the momentum-averaged estimated label distribution of every training sample."""
        return self.bank

    def noise_scores(self, dataset, device, batch_size: int = 256) -> dict:
        """``1-mass``: 1 - the bank's probability mass on each sample's training label."""
        if len(self.bank) != len(dataset):
            return {}
        y = torch.as_tensor(dataset.labels, device=self.bank.device).clamp(min=0)
        return {"1-mass": (1 - self.bank.gather(1, y[:, None])[:, 0]).cpu().numpy()}

    def epoch_stats(self) -> dict:
        """``queue_filled``: the share of the contrastive queue holding keys (not initial entries)."""
        return {"queue_filled": float((self.queue_labels != EMPTY_LABEL).float().mean())}

    # -- training ---------------------------------------------------------------------------------
    @torch.no_grad()
    def _momentum_update(self) -> None:
        m = self.encoder_momentum
        for pk, pq in zip(self.key_encoder.parameters(), self.query.parameters()):
            pk.mul_(m).add_(pq.detach(), alpha=1 - m)
        for bk, bq in zip(self.key_encoder.buffers(), self.query.buffers()):
            bk.copy_(bq)

    def training_step(self, batch):
        """LA-Net's loss: ce + landmark_weight * landmarks + kl_weight * kl + contrastive_weight * el.

        The label distribution of every sample is estimated from its neighbours in the global
        batch and averaged into the bank (``kl``: KL of the target to the prediction);
        ``landmarks``: the weighted Adaptive Wing loss of the heatmaps; ``el``: the
        expression-landmark contrast against the momentum encoder's keys and queues (both are
        updated here).

        Args:
            batch: ``image`` (B, 3, S, S) uint8, ``label`` (B,) int64, ``index`` (B,) int64,
                ``landmarks`` (B, K, 2) float pixel coordinates of ``image``.

        Returns:
            ``loss``, ``ce``, ``landmarks``, ``kl``, ``el``, ``confident`` (share of the batch with
            a confident pseudo label), all (), and ``logits`` (B, C).
        """
        y, idx = batch["label"], batch["index"]
        x, points = self.landmark_transform(batch["image"], batch["landmarks"])
        out = self.query(x)
        logits = out["logits"]
        # label distribution estimation on the global batch (gradients through this rank's slice)
        u_all, lo = gather_cat_with_grad(out["u"])
        v_all, _ = gather_cat_with_grad(out["v"])
        logits_all, _ = gather_cat_with_grad(logits)
        idx_all = gather_cat(idx)
        with torch.autocast(u_all.device.type, enabled=False):   # label distributions in float32 under any amp
            t = self.lde(u_all.float(), v_all.float(), F.softmax(logits_all.float(), 1))
        rows = self.bank[idx_all]
        target = (self.m * rows + (1 - self.m) * t)[lo:lo + len(y)]
        with torch.no_grad():
            self.bank[idx_all] = self.m * rows + (1 - self.m) * t.detach()
        # landmark heatmaps
        heat = out["heatmaps"]
        gt, w = heatmap_targets(points, heat.shape[-1], x.shape[-1] / heat.shape[-1],
                                rounding=self.heatmap_rounding)
        lm_loss = (adaptive_wing_loss(heat, gt) * w).mean()
        # expression-landmark contrast against the other modality's momentum keys and queue
        q_u, q_v = self.query.project(out["u"], out["v"])
        with torch.no_grad():
            self._momentum_update()
            kout = self.key_encoder(x)
            k_u, k_v = self.key_encoder.project(kout["u"], kout["v"])
        yhat = pseudo_labels(target, idx, self.confidence, self.pseudo_label_offset)
        queue_u, queue_v, queue_labels = self.queue_u.clone(), self.queue_v.clone(), self.queue_labels.clone()
        el = (el_contrastive_loss(q_u.float(), k_v.float(), queue_v, queue_labels, yhat, self.temperature)
              + el_contrastive_loss(q_v.float(), k_u.float(), queue_u, queue_labels, yhat, self.temperature))
        with torch.no_grad():
            ku_all, kv_all, y_all = gather_cat(k_u.float()), gather_cat(k_v.float()), gather_cat(yhat)
            pointer = self.queue_pointer.clone()
            enqueue(self.queue_u, self.queue_labels, self.queue_pointer, ku_all, y_all)
            self.queue_pointer.copy_(pointer)
            enqueue(self.queue_v, self.queue_labels, self.queue_pointer, kv_all, y_all)
        ce = F.cross_entropy(logits.float(), y)
        kl = F.kl_div(F.log_softmax(logits.float(), 1), target, reduction="batchmean")
        loss = ce + self.weights["landmarks"] * lm_loss + self.weights["kl"] * kl + self.weights["el"] * el
        return {"loss": loss, "ce": ce.detach(), "landmarks": lm_loss.detach(), "kl": kl.detach(),
                "el": el.detach(), "confident": (yhat >= 0).float().mean(), "logits": logits.detach()}
