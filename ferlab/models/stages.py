"""The stage description every ferlab backbone exposes (in the spirit of timm's ``feature_info``).

A backbone is a stem followed by an ordered tuple of stages (residual stages: each one a module
that maps (N, C_in, h, w) -> (N, C, h / s, w / s)); the last stage feeds the head::

    x = backbone.forward_stem(images)            # (N, stem_info["channels"], H / r0, W / r0)
    x = backbone.forward_stages(x)               # all stages == backbone.forward_features(images)
    backbone.stages[-1]                          # "the last stage" (the one feeding the head)
    backbone.stages[1:]                          # "stages 2..n"
    backbone.stage_names                         # ("layer1", ...): attribute names of the stages
    backbone.feature_info                        # [{"module": "layer1", "channels": 64, "reduction": 4}, ...]

``reduction`` is the total stride of a stage's output relative to the input image (nominal: an
unpadded network such as dlib's is a pixel or two smaller). ``stages`` is a view on modules the
backbone already owns: nothing is registered twice and no parameter name changes.

What a method may rely on beyond :meth:`~StagedBackbone.forward_features` and the pooled head:
``spatial_stages`` (False for a token network whose last tokens are put on a grid: no stem, no
stages), ``head_hidden`` (True where the pooled features pass a hidden layer before ``fc``, so
``fc`` does not act on the map's channels) and ``linear_pool`` (True where the pooled features are
the plain mean of the map, so a classifier CAM decomposes the logits). :func:`require_stages` and
:func:`require_map_classifier` refuse, in one line, a backbone that lacks what a method computes on.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class StagedBackbone:
    """Mixin for :class:`torch.nn.Module` backbones. A subclass sets, in ``__init__``,
    ``self.stage_names`` (tuple of attribute names, in order), ``self._stage_channels`` and
    ``self._stage_reductions`` (one int per stage) and ``self.stem_info`` (``{"channels",
    "reduction"}`` of :meth:`forward_stem`'s output) and ``num_features``, and implements ``forward_stem``;
    ``forward_head`` needs ``global_pool``, ``drop`` and ``fc``."""

    stage_names: tuple[str, ...]
    stem_info: dict
    #: stages that map (N, C, h, w) maps to maps (False: a token network, see the module docstring)
    spatial_stages = True
    #: the pooled features are the mean of the last map (no normalisation or hidden layer after the pooling)
    linear_pool = True
    #: the pooled features pass a hidden layer before ``fc`` (``fc`` does not read the map's channels)
    head_hidden = False

    @property
    def stages(self) -> tuple[nn.Module, ...]:
        """The stage modules in order (``stages[-1]`` feeds the head)."""
        return tuple(getattr(self, name) for name in self.stage_names)

    @property
    def feature_info(self) -> list[dict]:
        """One ``{"module", "channels", "reduction"}`` dict per stage: attribute name, output
        channels, total stride relative to the input."""
        return [{"module": n, "channels": c, "reduction": r}
                for n, c, r in zip(self.stage_names, self._stage_channels, self._stage_reductions)]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, num_features, h, w): the stem, then every stage."""
        return self.forward_stages(self.forward_stem(x))

    def forward_head(self, f: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(N, C, h, w) -> logits (N, num_classes), or the pooled (N, C) features if ``pre_logits``
        (needs ``global_pool``, ``drop`` and ``fc`` on the backbone)."""
        f = self.global_pool(f).flatten(1)
        return f if pre_logits else self.fc(self.drop(f))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, num_classes) logits."""
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh linear classifier on the ``num_features`` pooled features (0: none, ``nn.Identity``)."""
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_stages(self, x: torch.Tensor, start: int = 0, end: int | None = None) -> torch.Tensor:
        """Run ``stages[start:end]`` on ``x`` (the stem's output when ``start == 0``, else the
        output of stage ``start - 1``)."""
        for stage in self.stages[start:end]:
            x = stage(x)
        return x


def backbone_name(backbone) -> str:
    """The name a backbone was built under (``create_backbone``'s), else its class name."""
    return (getattr(backbone, "pretrained_cfg", None) or {}).get("backbone") or type(backbone).__name__


def require_stages(backbone, method: str, need: str) -> None:
    """ValueError naming ``method`` and why (``need``) when ``backbone`` has no spatial stages."""
    if not getattr(backbone, "spatial_stages", True):
        raise ValueError(f"{method} cannot run on {backbone_name(backbone)}: {need}, and it has no stages "
                         f"({getattr(backbone, 'no_stages_reason', 'no spatial stages')})")


def require_map_classifier(backbone, method: str, need: str) -> None:
    """ValueError naming ``method`` and why (``need``) when the backbone's classifier does not read the
    pooled channels of its last map (a hidden layer between them)."""
    if getattr(backbone, "head_hidden", False):
        raise ValueError(f"{method} cannot run on {backbone_name(backbone)}: {need}, and its head passes the "
                         f"pooled {backbone.map_channels} channels through a hidden layer to {backbone.num_features} "
                         f"features before the classifier")
