"""Any torchvision classification CNN as a ferlab backbone: ``create_backbone("tv:<model>", weights=...)``.

``<model>`` is a name of ``torchvision.models.list_models(module=torchvision.models)`` (``resnet50``,
``convnext_tiny``, ``efficientnet_b0``, ``regnet_y_400mf``, ...).

- ``weights=None``: torchvision's own random initialisation.
- ``weights="<ENUM>"``: a member of the model's weights enum (``IMAGENET1K_V2``, ``DEFAULT``, ...:
  ``torchvision.models.get_model_weights(name)``), fetched by torchvision itself (``torch.hub``) the
  first time and cached by it -- a download, and only when asked.
- ``weights=PATH``: a torchvision state dict, a ``.safetensors`` file or a ferlab checkpoint of the
  same network, read safely with the key report of :mod:`ferlab.models.weights`, never fetched.

torchvision has no ``feature_info``: the network's feature part (its children before the
``AdaptiveAvgPool2d``, containers that span several strides opened up) is run on a probe image and cut
where the total stride grows (:mod:`ferlab.models.chain`): each stage ends at the last module of its
stride, from ``min_reduction`` (default 4) on. The pooled features are the average pool and the
classifier's layers before its last ``Linear`` (ConvNeXt's LayerNorm; dropouts left out: ferlab's
``drop_rate`` is the dropout before its classifier). The cut is checked against the network's own
logits; networks whose forward is more than that (DenseNet's and MobileNet-V2's functional pooling,
Inception's auxiliary head, VGG's 7 x 7 pooling, the ViTs) are refused.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ..errors import ConfigError
from . import chain as CH
from .pretrained import random_init
from .weights import WeightsError

PREFIX = "tv:"


def classification_models() -> list[str]:
    """torchvision's classification model names."""
    import torchvision.models as tvm
    return tvm.list_models(module=tvm)


def model_problem(arch: str) -> str | None:
    """Why ``tv:<arch>`` names no torchvision classification model, or None."""
    names = classification_models()
    if arch in names:
        return None
    import difflib
    close = difflib.get_close_matches(arch, names, n=3, cutoff=0.6)
    return (f"torchvision has no classification model {arch!r}" + (f" (close: {', '.join(close)})" if close else "")
            + "; `ferlab backbones --tv` lists them")


def _check(arch: str) -> None:
    problem = model_problem(arch)
    if problem:
        raise ConfigError(f"{PREFIX}{arch}: {problem}")


def weight_tags(arch: str) -> list[str]:
    """The members of the model's weights enum (``DEFAULT`` last)."""
    import torchvision.models as tvm
    _check(arch)
    return list(tvm.get_model_weights(arch).__members__)


def is_tag(arch: str, weights) -> bool:
    """Whether ``weights`` names a member of the model's weights enum rather than a file."""
    return isinstance(weights, str) and weights in weight_tags(arch)


def _enum(arch: str, tag: str):
    import torchvision.models as tvm
    return tvm.get_model_weights(arch)[tag]


def backbone_info(arch: str, weights=None) -> dict:
    """ferlab's pretrained record of ``tv:<arch>`` with ``weights`` (None or an enum member name),
    from the enum's metadata (nothing is fetched)."""
    _check(arch)
    cfg = random_init(IMAGENET_MEAN, IMAGENET_STD,
                      source="a torchvision state dict or .safetensors file of this model, or a ferlab checkpoint")
    cfg["provenance"] = f"random initialisation (torchvision's own for {arch})"
    if weights is not None:
        w = _enum(arch, weights)
        t = w.transforms()
        cfg.update(mean=tuple(t.mean), std=tuple(t.std), input_size=int(t.crop_size[0]),
                   trained_on=f"torchvision's {type(w).__name__}.{w.name} (ImageNet-1k classes; recipe "
                              f"{w.meta.get('recipe', '-')})",
                   provenance=f"torchvision {type(w).__name__}.{w.name}, {w.url}",
                   licence="not stated in torchvision's weights metadata (see the recipe)", package="torchvision",
                   file=w.url, install=None)
    return cfg


def _head(model: nn.Module) -> tuple[list[str], str, list[str], str] | None:
    """(feature children, pooling child, pooled-feature layers, classifier name) of a network whose
    children are: features..., a global AdaptiveAvgPool2d, a Linear or a Sequential ending in one."""
    children = list(model.named_children())
    pool = next((i for i, (_, m) in enumerate(children) if isinstance(m, nn.AdaptiveAvgPool2d)
                 and m.output_size in (1, (1, 1))), None)
    if pool is None or pool + 2 != len(children):
        return None
    name, head = children[-1]
    if isinstance(head, nn.Linear):
        return [n for n, _ in children[:pool]], children[pool][0], [], name
    if isinstance(head, nn.Sequential) and len(head) and isinstance(head[-1], nn.Linear):
        layers = [f"{name}.{i}" for i, m in enumerate(head[:-1]) if not isinstance(m, nn.Dropout)]
        return [n for n, _ in children[:pool]], children[pool][0], layers, f"{name}.{len(head) - 1}"
    return None


def _open_up(model: nn.Module, names: list[str], x: torch.Tensor) -> list[str]:
    """``names`` with every container that spans more than one stride doubling replaced by its children."""
    while True:
        out, opened, h = [], False, x
        for n in names:
            m = model.get_submodule(n)
            y = m(h)
            if isinstance(m, nn.Sequential) and len(m) > 1 and CH.side_reduction(h.shape[-1], y.shape[-1]) > 2:
                out += [f"{n}.{c}" for c, _ in m.named_children()]
                opened = True
            else:
                out.append(n)
            h = y
        names = out
        if not opened:
            return names


class TorchvisionBackbone(CH.ChainBackbone):
    """A torchvision CNN cut where its stride grows (see the module docstring); ``model`` is the network."""

    def __init__(self, *args, pool: str, pooled_layers: tuple[str, ...], **kw):
        super().__init__(*args, **kw)
        self.pool_name, self.pooled_layers = pool, tuple(pooled_layers)

    def global_pool(self, f: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) -> (N, num_features): the average pool, then the classifier's layers before its
        last Linear (flattened where a Linear comes)."""
        x = self.model.get_submodule(self.pool_name)(f)
        for name in self.pooled_layers:
            m = self.model.get_submodule(name)
            if isinstance(m, nn.Linear) and x.ndim > 2:
                x = x.flatten(1)
            x = m(x)
        return x.flatten(1)


def create(arch: str, weights=None, num_classes: int = 0, min_match: float = 0.9, verbose: bool = True,
           drop_rate: float = 0.0, min_reduction: int = CH.MIN_REDUCTION, **kw) -> TorchvisionBackbone:
    """``tv:<arch>`` as a ferlab backbone (see the module docstring); ``kw`` go to
    ``torchvision.models.get_model``; ``drop_rate`` is the dropout before ferlab's classifier."""
    import torchvision.models as tvm
    _check(arch)
    tag = weights if weights is not None and is_tag(arch, weights) else None
    if weights is not None and tag is None and not Path(weights).is_file():
        raise WeightsError(f"{PREFIX}{arch}: weights must be none, a name of its weights enum "
                           f"({', '.join(weight_tags(arch)) or 'none'}; fetched by torchvision on first use) or a "
                           f"weight file; no file {str(weights)!r} exists")
    try:
        model = tvm.get_model(arch, weights=_enum(arch, tag) if tag else None, **kw)
    except TypeError as e:
        raise ConfigError(f"{PREFIX}{arch}: backbone_args {kw}: {(str(e).splitlines() or ['-'])[0]}") from None
    except (RuntimeError, OSError) as e:
        if tag is None:
            raise
        raise WeightsError(f"{PREFIX}{arch}: torchvision could not fetch its weights {tag} "
                           f"({(str(e).splitlines() or ['-'])[0][:200]})") from None
    model.eval()
    net = _build(model, arch, num_classes, drop_rate, int(min_reduction))
    net.train()
    if weights is not None and tag is None:
        net.load_report = CH.load_weights(net, weights, (net.classifier_name + ".",), min_match=min_match,
                                          verbose=verbose)
    return net


def _refuse(arch: str, why: str) -> ConfigError:
    return ConfigError(f"{PREFIX}{arch}: ferlab cannot cut it into stages: {why} (supported: networks that are "
                       f"their modules in sequence, a global average pool and a linear classifier: resnet, "
                       f"resnext, wide_resnet, regnet, convnext, efficientnet, efficientnet_v2, mobilenet_v3; "
                       f"timm:<model> describes many more, ViTs and Swin included)")


def _build(model: nn.Module, arch: str, num_classes: int, drop_rate: float, min_reduction: int):
    head = _head(model)
    if head is None:
        raise _refuse(arch, "its children do not end in an AdaptiveAvgPool2d and a linear classifier")
    names, pool, pooled_layers, classifier = head
    side = 64
    x = CH.probe_input(side)
    with torch.no_grad():
        try:
            names = _open_up(model, names, x)
            outs = CH.run_chain(model, names, x)
        except Exception as e:
            raise _refuse(arch, f"its feature modules cannot run in sequence ({type(e).__name__})") from None
        red = [CH.side_reduction(side, o.shape[-1]) if o.ndim == 4 else 0 for o in outs]
        ends = [i for i, r in enumerate(red) if r >= min_reduction and (i + 1 == len(red) or red[i + 1] > r)]
        if not ends or any(o.ndim != 4 for o in outs):
            raise _refuse(arch, "its features are not (N, C, h, w) maps")
        stem, stages = CH.cut(names, ends)
        net = TorchvisionBackbone(model, stem, stages, [names[i].replace(".", "_") for i in ends],
                                  [outs[i].shape[1] for i in ends], [red[i] for i in ends],
                                  {"channels": outs[ends[0] - 1].shape[1] if ends[0] else 3,
                                   "reduction": red[ends[0] - 1] if ends[0] else 1},
                                  1, num_classes, drop_rate, min_input_size=red[ends[-1]], pool=pool,
                                  pooled_layers=pooled_layers)
        linear = model.get_submodule(classifier)
        pooled = net.global_pool(outs[-1])
        if not CH.close(linear(pooled), model(x)):
            raise _refuse(arch, "its forward is more than its modules in sequence")
    net.num_features = pooled.shape[1]
    net.linear_pool = CH.close(pooled, outs[-1].mean((2, 3)))
    net.reset_classifier(num_classes)
    net.classifier_name = classifier
    parent, _, leaf = classifier.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, nn.Identity())     # ferlab's fc replaces it
    return net
