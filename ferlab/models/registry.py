"""Backbone registry: ``create_backbone(name, weights=path|None, num_classes=0, ...)``."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch.nn as nn

from ..data.transforms import HALF_MEAN, HALF_STD, IMAGENET_MEAN, IMAGENET_STD
from .resnet import BasicBlock, Bottleneck, ResNet

_REGISTRY: dict[str, tuple[Callable[..., nn.Module], dict]] = {}


def register(name: str, mean=IMAGENET_MEAN, std=IMAGENET_STD, source: str = ""):
    def deco(fn):
        _REGISTRY[name] = (fn, {"mean": mean, "std": std, "source": source})
        return fn
    return deco


@register("resnet18", source="torchvision layout; MS-Celeb R18 of RUL/EAC/SCN (state_dict, optional module.)")
def resnet18(**kw):
    return ResNet(BasicBlock, [2, 2, 2, 2], **kw)


@register("resnet34")
def resnet34(**kw):
    return ResNet(BasicBlock, [3, 4, 6, 3], **kw)


@register("resnet50")
def resnet50(**kw):
    return ResNet(Bottleneck, [3, 4, 6, 3], **kw)


@register("resnet50_caffe", source="VGGFace2 resnet50_ft_weight.pkl (EAC): stride on 1x1, ceil-mode maxpool")
def resnet50_caffe(**kw):
    return ResNet(Bottleneck, [3, 4, 6, 3], stem="caffe", stride_on_1x1=True, **kw)


@register("resnet18_dmue", mean=HALF_MEAN, std=HALF_STD, source="DMUE MS-Celeb mv_epoch_*.pt: no stem ReLU, 2x2 maxpool")
def resnet18_dmue(**kw):
    return ResNet(BasicBlock, [2, 2, 2, 2], stem="dmue", **kw)


@register("resnet10", source="small ResNet for CPU presets ([1,1,1,1] BasicBlocks)")
def resnet10(**kw):
    return ResNet(BasicBlock, [1, 1, 1, 1], **kw)


def list_backbones() -> list[str]:
    return sorted(_REGISTRY)


def backbone_info(name: str) -> dict:
    """Normalisation (``mean``, ``std``) and weight provenance of a backbone."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown backbone {name!r}; available: {list_backbones()}")
    return dict(_REGISTRY[name][1])


def create_backbone(name: str, weights: str | Path | None = None, num_classes: int = 0, min_match: float = 0.9,
                    verbose: bool = True, **kw) -> ResNet:
    """Build ``name``; ``weights`` is a user checkpoint file in any format :mod:`ferlab.models.weights` knows."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown backbone {name!r}; available: {list_backbones()}")
    model = _REGISTRY[name][0](num_classes=num_classes, **kw)
    model.default_cfg = {"name": name, **_REGISTRY[name][1], "weights": str(weights) if weights else None}
    if weights is not None:
        from .weights import load_backbone_weights
        model.load_report = load_backbone_weights(model, weights, min_match=min_match, verbose=verbose)
    return model
