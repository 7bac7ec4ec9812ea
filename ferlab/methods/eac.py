"""EAC: Erasing Attention Consistency (Zhang, Wang, Liu & Wang, ECCV 2022).

Each sample is seen twice: an erased original and its horizontally flipped
counterpart. Cross-entropy is taken on the original view only; the class
activation maps of all classes must agree with the re-flipped maps of the flipped
view (weight ``lam`` = 5). The CAMs use the detached classifier weight, so the
consistency term shapes the features, never the classifier.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data import transforms as T
from ..losses.flip_attention import class_activation_maps, flip_attention_consistency
from ..models.stages import require_map_classifier
from .base import Method, register_method

PAIRINGS = ("independent", "mirror")


@register_method
class EAC(Method):
    """Args (``method_args``):
        lam: weight of the flip attention consistency (official 5).
        pairing: how the flipped view is built.
            ``independent`` (official noisy-label runs): view 2 = the raw image flipped,
            then resized/normalised with its *own* random erasing and no Gaussian noise.
            ``mirror`` (official clean-label run): view 2 = the exact mirror of view 1
            (same noise, same erased box, flipped).
        single_pass: run both views through the backbone as one concatenated batch
            (faster; BN then normalises over both views together -- the official code
            uses two separate forward passes, the default here).
    Augmentation (``augment``): ``gaussian_noise`` (probability of N(0, 30) pixel noise on
    view 1, official 0.5), ``erasing`` (official 0.5, after normalisation, value 0).
    """
    name = "eac"
    # official code defaults (ResNet-50); the README FAQ (issues #3/#5) asks lr 2e-4 for ResNet-18
    defaults = {"optimizer": "adam", "lr": 1e-4, "weight_decay": 1e-4, "scheduler": "exponential", "gamma": 0.9,
                "epochs": 60, "batch_size": 32, "augment": {"gaussian_noise": 0.5, "erasing": 0.5},
                "by_backbone": {"resnet18": {"lr": 2e-4}}}

    def __init__(self, backbone, num_classes, lam: float = 5.0, pairing: str = "independent",
                 single_pass: bool = False, **kw):
        augment = {**self.defaults["augment"], **(kw.pop("augment", None) or {})}
        unknown = set(augment) - {"gaussian_noise", "erasing"}
        if unknown:
            raise ValueError(f"EAC augment keys are gaussian_noise and erasing (views are fixed by the method); "
                             f"got {sorted(unknown)}")
        super().__init__(backbone, num_classes, augment={"flip": 0.0, **augment}, **kw)
        if pairing not in PAIRINGS:
            raise ValueError(f"pairing must be one of {PAIRINGS}, got {pairing!r}")
        require_map_classifier(backbone, "EAC", "its CAMs are the classifier's weights applied to the channels of "
                                                "the last stage's map")
        if getattr(backbone, "num_classes", None) != num_classes:
            backbone.reset_classifier(num_classes)
        self.lam, self.pairing, self.single_pass = float(lam), pairing, bool(single_pass)
        erase = T.RandomErasing(augment["erasing"]) if augment["erasing"] else None
        # view 1 is self.train_transform: [gaussian noise] -> resize -> normalise -> [erase] (no flip, no crop)
        # view 2 (independent): resize -> normalise -> its own erasing, no noise
        self.flipped_view_transform = T.Compose(T.Resize(self.input_size), T.Normalize(self.mean, self.std), erase)

    def views(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (N, 3, S, S) -> (view 1, flipped view 2), each (N, 3, input, input) normalised."""
        x1 = self.train_transform(images)
        if self.pairing == "mirror":
            return x1, x1.flip(-1)
        return x1, self.flipped_view_transform(images.flip(-1))

    def _maps_and_logits(self, x: torch.Tensor):
        f = self.backbone.forward_features(x)
        return class_activation_maps(f, self.backbone.fc.weight), self.backbone.forward_head(f)

    def training_step(self, batch):
        """Cross-entropy on view 1 plus ``lam`` times the flip attention consistency of the two views.

        Args:
            batch: ``image`` (B, 3, S, S) uint8, ``label`` (B,) int64.

        Returns:
            ``loss`` (ce + lam * consistency), ``ce``, ``consistency`` (all ()) and ``logits``
            (B, C) of view 1.
        """
        x1, x2 = self.views(batch["image"])
        if self.single_pass:
            maps, logits = self._maps_and_logits(torch.cat([x1, x2]))
            n = x1.shape[0]
            maps1, maps2, logits1 = maps[:n], maps[n:], logits[:n]
        else:
            maps1, logits1 = self._maps_and_logits(x1)
            maps2 = class_activation_maps(self.backbone.forward_features(x2), self.backbone.fc.weight)
        ce = F.cross_entropy(logits1.float(), batch["label"], ignore_index=-1)
        consistency = flip_attention_consistency(maps1, maps2)
        loss = ce + self.lam * consistency
        return {"loss": loss, "ce": ce.detach(), "consistency": consistency.detach(), "logits": logits1.detach()}

    def attention(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images (N, 3, H, W) -> CAMs of every class (N, K, h, w), as EAC trains them."""
        return class_activation_maps(self.backbone.forward_features(images), self.backbone.fc.weight)
