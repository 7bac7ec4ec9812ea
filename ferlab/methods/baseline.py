"""Plain cross-entropy on the backbone's own classifier (optional label smoothing)."""
from __future__ import annotations

import torch.nn.functional as F

from .base import Method, register_method


@register_method
class Baseline(Method):
    """CE baseline. Unlabelled samples (label -1) are ignored."""
    name = "baseline"
    defaults = {"optimizer": "adam", "lr": 2e-4, "weight_decay": 1e-4, "scheduler": "exponential", "gamma": 0.9,
                "epochs": 60, "batch_size": 32, "augment": {"flip": 0.5, "erasing": 0.5}}

    def __init__(self, backbone, num_classes, label_smoothing: float = 0.0, **kw):
        super().__init__(backbone, num_classes, **kw)
        if getattr(backbone, "num_classes", None) != num_classes:
            backbone.reset_classifier(num_classes)
        self.label_smoothing = label_smoothing

    def training_step(self, batch):
        """Cross-entropy (with ``label_smoothing``) of the augmented ``image`` (B, 3, S, S) uint8
        against ``label`` (B,).

        Returns:
            ``loss`` and ``ce`` (both the cross-entropy, ()), ``logits`` (B, C).
        """
        x = self.train_transform(batch["image"])
        logits = self.predict(x)
        ce = F.cross_entropy(logits.float(), batch["label"], ignore_index=-1, label_smoothing=self.label_smoothing)
        return {"loss": ce, "ce": ce.detach(), "logits": logits.detach()}
