"""Backbone registry: ``create_backbone(name, weights=None | tag | path, num_classes=0, **backbone_args)``.

Every backbone has a random-init entry (``weights=None``) and may have named weights (``tags``):
``create_backbone("dlib_resnet29", weights="dlib")`` reads dlib's face-recognition ResNet from the
installed ``face-recognition-models`` package. Any other ``weights`` is a checkpoint file in a format
:mod:`ferlab.models.weights` knows (or a dlib ``.dat`` for ``dlib_resnet29``).

Networks of other libraries need no registration: ``timm:<model>`` is any timm model
(:mod:`ferlab.models.timm_backbones`, ``weights="timm"`` fetches timm's published weights) and
``tv:<model>`` any torchvision classification model (:mod:`ferlab.models.tv_backbones`, ``weights=``
a name of its weights enum, e.g. ``IMAGENET1K_V2``, fetched by torchvision). The built model carries

- ``pretrained_cfg`` (:mod:`ferlab.models.pretrained`): normalisation, native / minimum input size,
  provenance and licence of its weights (``default_cfg`` is the same dict, timm's older name);
- ``backbone_args``: the constructor keyword arguments, to rebuild the same network from a state dict;
- the backbone contract: ``forward_stem``, ``forward_features`` -> (N, C, h, w), ``forward_head(f,
  pre_logits)``, ``num_features``, ``fc``, ``drop``, ``global_pool``, ``num_classes``,
  ``reset_classifier``, ``min_input_size``;
- the stage description (:mod:`ferlab.models.stages`): ``stages``, ``stage_names``, ``feature_info``,
  ``stem_info``, ``forward_stages(x, start=0, end=None)``.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch.nn as nn

from . import pretrained as P
from .dlib_resnet import DlibResNet
from .resnet import BasicBlock, Bottleneck, ResNet
from .weights import WeightsError

_REGISTRY: dict[str, tuple[Callable[..., nn.Module], dict]] = {}


def register(name: str, cfgs: dict):
    """Register a constructor; ``cfgs`` maps a weights tag (None = random init) to its record."""
    def deco(fn):
        _REGISTRY[name] = (fn, cfgs)
        return fn
    return deco


@register("resnet18", {None: P.RESNET})
def resnet18(**kw):
    """ResNet-18 (:class:`~ferlab.models.resnet.ResNet` options in ``kw``)."""
    return ResNet(BasicBlock, [2, 2, 2, 2], **kw)


@register("resnet34", {None: P.random_init()})
def resnet34(**kw):
    """ResNet-34 (random initialisation or a weight file)."""
    return ResNet(BasicBlock, [3, 4, 6, 3], **kw)


@register("resnet50", {None: P.random_init()})
def resnet50(**kw):
    """ResNet-50 with torchvision's stem and stride placement."""
    return ResNet(Bottleneck, [3, 4, 6, 3], **kw)


@register("resnet50_caffe", {None: P.RESNET_CAFFE})
def resnet50_caffe(**kw):
    """ResNet-50 in the Caffe layout of the VGGFace2 weights (``caffe`` stem, stride on the first 1x1)."""
    return ResNet(Bottleneck, [3, 4, 6, 3], stem="caffe", stride_on_1x1=True, **kw)


@register("resnet18_dmue", {None: P.RESNET_DMUE})
def resnet18_dmue(**kw):
    """ResNet-18 with DMUE's stem (no ReLU, 2x2 max-pool), the layout of its MS-Celeb weights."""
    return ResNet(BasicBlock, [2, 2, 2, 2], stem="dmue", **kw)


@register("resnet10", {None: P.RESNET_SMALL})
def resnet10(**kw):
    """A one-block-per-stage ResNet (tests and quick runs)."""
    return ResNet(BasicBlock, [1, 1, 1, 1], **kw)


@register("dlib_resnet29", {None: P.DLIB_RANDOM, "dlib": P.DLIB_FACE})
def dlib_resnet29(**kw):
    """dlib's face-recognition ResNet (:class:`~ferlab.models.dlib_resnet.DlibResNet`; named weights ``dlib``)."""
    return DlibResNet(**kw)


def list_backbones() -> list[str]:
    """The registered backbone names, sorted (``timm:<model>`` and ``tv:<model>`` name any other network)."""
    return sorted(_REGISTRY)


#: name prefix -> module of its library's adapter (``create``, ``backbone_info``, ``weight_tags``, ``is_tag``,
#: ``model_problem``)
LIBRARIES = {"timm:": "timm_backbones", "tv:": "tv_backbones"}


def library(name: str):
    """(adapter module, model name) of a ``timm:`` / ``tv:`` backbone name, or (None, name)."""
    import importlib
    for prefix, module in LIBRARIES.items():
        if name.startswith(prefix):
            return importlib.import_module(f"{__package__}.{module}"), name[len(prefix):]
    return None, name


def backbone_problem(name: str) -> str | None:
    """Why ``name`` names no backbone (unknown; its library is not installed or has no such model), or None."""
    lib, arch = library(name)
    if lib is not None:
        return lib.model_problem(arch)
    if name not in _REGISTRY:
        return (f"unknown backbone {name!r}; registered: {', '.join(list_backbones())}; any timm or torchvision "
                f"model as timm:<model> / tv:<model> (`ferlab backbones`)")
    return None


def _entry(name: str):
    if name not in _REGISTRY:
        raise ValueError(f"unknown backbone {name!r}; available: {list_backbones()}")
    return _REGISTRY[name]


def _tag(name: str, weights) -> str | None:
    """The registry entry ``weights`` selects: a named tag, or for a file the entry of its format."""
    cfgs = _entry(name)[1]
    if weights is None or (isinstance(weights, str) and weights in cfgs):
        return weights
    if name == "dlib_resnet29" and Path(weights).suffix == ".dat":
        return "dlib"
    return None


def backbone_info(name: str, weights: str | Path | None = None) -> dict:
    """The pretrained configuration ``create_backbone(name, weights=weights)`` would carry (no file
    is read, nothing is fetched): ``mean``, ``std``, ``input_size``, ``min_input_size``, provenance, licence, ..."""
    lib, arch = library(name)
    if lib is not None:
        tag = weights if weights is None or lib.is_tag(arch, weights) else None
        return {**lib.backbone_info(arch, tag), "backbone": name, "tag": tag,
                "weights": str(weights) if weights else None}
    tag = _tag(name, weights)
    return {**_entry(name)[1][tag], "backbone": name, "tag": tag, "weights": str(weights) if weights else None}


def weight_tags(name: str) -> list[str]:
    """Named weights of a backbone (``create_backbone(name, weights=tag)``)."""
    lib, arch = library(name)
    if lib is not None:
        return lib.weight_tags(arch)
    return [t for t in _entry(name)[1] if t is not None]


def packaged_file(cfg: dict) -> Path:
    """The weight file of a named entry, located in its installed package without importing it."""
    from ..data.landmarks import packaged_model_file
    try:
        return Path(packaged_model_file(cfg["package"], cfg["file"], cfg["install"]))
    except ImportError as e:
        raise WeightsError(f"{cfg['backbone']} weights {cfg['tag']!r}: {e}") from None


def create_backbone(name: str, weights: str | Path | None = None, num_classes: int = 0, min_match: float = 0.9,
                    verbose: bool = True, **kw) -> nn.Module:
    """Build ``name`` with constructor arguments ``kw``; ``weights``: None (random init), a tag of
    :func:`weight_tags`, or a checkpoint file (any format :mod:`ferlab.models.weights` knows).
    ``timm:<model>`` / ``tv:<model>``: ``kw`` go to the library's constructor, except ``drop_rate`` and
    ``min_reduction`` (:mod:`ferlab.models.chain`)."""
    lib, arch = library(name)
    if lib is not None:
        model = lib.create(arch, weights=weights, num_classes=num_classes, min_match=min_match, verbose=verbose, **kw)
        cfg = backbone_info(name, weights)
        cfg["min_input_size"] = model.min_input_size          # the built network's (a ViT's img_size argument)
        model.pretrained_cfg = model.default_cfg = cfg
        model.backbone_args = dict(kw)
        return model
    fn, cfgs = _entry(name)
    if isinstance(weights, str) and weights not in cfgs and not Path(weights).exists() \
            and not Path(weights).suffix and "/" not in weights:
        raise WeightsError(f"{name} has no weights named {weights!r} (named: {weight_tags(name) or 'none'}) "
                           f"and no file {weights!r} exists")
    model = fn(num_classes=num_classes, **kw)
    cfg = backbone_info(name, weights)
    cfg["min_input_size"] = getattr(model, "min_input_size", cfg["min_input_size"])
    model.pretrained_cfg = model.default_cfg = cfg
    model.backbone_args = dict(kw)
    if isinstance(weights, str) and weights in cfgs:           # named weights of an installed package
        from .dlib_resnet import load_dlib_weights
        cfg["weights"] = str(packaged_file(cfg))
        model.load_report = load_dlib_weights(model, cfg["weights"], verbose=verbose)
    elif weights is not None and cfg["tag"] == "dlib":         # a dlib .dat file
        from .dlib_resnet import load_dlib_weights
        model.load_report = load_dlib_weights(model, weights, verbose=verbose)
    elif weights is not None:
        from .weights import load_backbone_weights
        model.load_report = load_backbone_weights(model, weights, min_match=min_match, verbose=verbose)
    return model
