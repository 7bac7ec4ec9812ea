"""Any timm model as a ferlab backbone: ``create_backbone("timm:<model>", weights=None | "timm" | PATH)``.

Needs the optional ``timm`` package (``pip install 'ferlab[timm]'``). ``<model>`` is any name
``timm.create_model`` takes, with an optional weights tag (``timm:convnext_tiny.fb_in22k``).

- ``weights=None``: timm's own random initialisation. Nothing is read or fetched.
- ``weights="timm"``: timm's published weights for that name, fetched by timm itself (from the
  Hugging Face hub or the model's URL) the first time and cached by it -- the one way ferlab
  downloads anything, and only when asked.
- ``weights=PATH``: a file of that model's weights -- a timm / PyTorch checkpoint (a state dict,
  ``{"state_dict": ...}`` as ``timm``'s train script writes, or a ferlab checkpoint) or a
  ``.safetensors`` file -- read safely, never fetched; it prints the key report of
  :mod:`ferlab.models.weights` and is refused when it matches too little (another architecture).

The stage description (:mod:`ferlab.models.chain`) comes from the model's ``feature_info``: the
stages end at the modules it names from total stride ``min_reduction`` (default 4) on, the stem is
everything before, and the pooled features are timm's own head up to its classifier
(``forward_head(pre_logits=True)``: the pooling, and a norm where the model has one, ConvNeXt's
LayerNorm). A token model whose ``forward_features`` is more than its modules in sequence (a ViT:
class token, position embedding) is described by its last tokens on a grid, when the model puts them
there itself (``forward_intermediates(output_fmt="NCHW")``), with no stages; anything else is refused.

``pretrained_cfg`` carries timm's mean, std, input size, licence and source of the weights
(the same mean / std for random init, so that random init and timm's weights differ only in the
weights).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from ..errors import ConfigError
from . import chain as CH
from .pretrained import random_init
from .weights import WeightsError

PREFIX = "timm:"
INSTALL = "pip install 'ferlab[timm]'"
#: top-level timm modules that belong to the head (pooling, classifier), never to the feature chain
HEAD_CHILDREN = ("global_pool", "head", "fc", "classifier", "head_drop", "fc_norm", "flatten", "pre_logits",
                 "attn_pool", "head_dist")


def import_timm():
    """The timm module, or a :class:`~ferlab.errors.ConfigError` saying how to install it."""
    try:
        import timm
    except ImportError:
        raise ConfigError(f"timm backbones need the timm package: {INSTALL}") from None
    return timm


def model_problem(arch: str) -> str | None:
    """Why ``timm:<arch>`` cannot be built (no timm, no such model), or None."""
    try:
        timm = import_timm()
    except ConfigError as e:
        return str(e)
    if not arch:
        return "timm: needs a model name after it, e.g. timm:convnext_tiny (`ferlab backbones --timm 'convnext*'`)"
    if not timm.is_model(arch):
        import difflib
        close = difflib.get_close_matches(arch.split(".")[0], timm.list_models(), n=3, cutoff=0.7)
        return (f"timm {timm.__version__} has no model {arch!r}" + (f" (close: {', '.join(close)})" if close else "")
                + "; `ferlab backbones --timm PATTERN` lists them")
    return None


def _check(arch: str) -> None:
    problem = model_problem(arch)
    if problem:
        raise ConfigError(f"{PREFIX}{arch}: {problem}")


def timm_cfg(arch: str) -> dict:
    """timm's pretrained configuration of ``arch`` (its default tag when none is named): no file is read."""
    timm = import_timm()
    cfg = timm.models.get_pretrained_cfg(arch, allow_unregistered=True)
    return cfg.to_dict() if cfg is not None else {}


def backbone_info(arch: str, weights=None) -> dict:
    """ferlab's pretrained record of ``timm:<arch>`` with ``weights`` (None, ``"timm"`` or a file),
    from timm's configuration alone (nothing is fetched)."""
    _check(arch)
    t = timm_cfg(arch)
    side = int((t.get("input_size") or (3, 224, 224))[-1])
    fixed = bool(t.get("fixed_input_size"))
    name = f"{t.get('architecture', arch)}.{t['tag']}" if t.get("tag") else arch
    cfg = random_init(t.get("mean") or (0.485, 0.456, 0.406), t.get("std") or (0.229, 0.224, 0.225), input_size=side,
                      min_input_size=side if fixed else 1,
                      source="a timm / PyTorch state dict or .safetensors file of this model, or a ferlab checkpoint")
    cfg["provenance"] = f"random initialisation (timm's own for {arch})"
    if weights == "timm":
        where = f"hf-hub:{t['hf_hub_id']}" if t.get("hf_hub_id") else t.get("url") or "-"
        cfg.update(trained_on=f"timm's weights {name} (see its model card)", provenance=f"timm {name}, {where}",
                   licence=t.get("license") or "not stated in timm's configuration", package="timm", file=where,
                   install=INSTALL)
    return cfg


def weight_tags(arch: str) -> list[str]:
    """``["timm"]`` where timm publishes weights for ``arch``, else none."""
    t = timm_cfg(arch)
    return ["timm"] if (t.get("hf_hub_id") or t.get("url") or t.get("file")) else []


def is_tag(arch: str, weights) -> bool:
    """Whether ``weights`` names published weights (``"timm"``) rather than a file."""
    return weights == "timm"


def _classifiers(model: nn.Module) -> tuple[str, ...]:
    c = (getattr(model, "pretrained_cfg", None) or {}).get("classifier") or ()
    return (c,) if isinstance(c, str) else tuple(c)


def _chain(model: nn.Module, feature_modules: list[str]) -> list[str]:
    """The names of the pieces ``forward_features`` runs, in order: the top-level children up to the
    head, each container that holds a feature module replaced by its children (recursively)."""
    names = []
    for name, _child in model.named_children():
        if name in HEAD_CHILDREN:
            break
        names.append(name)

    def expand(prefix: str, mod: nn.Module) -> list[str]:
        inner = [f for f in feature_modules if f.startswith(prefix + ".")]
        if not inner or not isinstance(mod, (nn.Sequential, nn.ModuleList)):
            return [prefix]
        return [n for child, m in mod.named_children() for n in expand(f"{prefix}.{child}", m)]
    return [n for name in names for n in expand(name, model.get_submodule(name))]


def _spatial(model: nn.Module, num_classes: int, drop_rate: float, min_reduction: int):
    """The :class:`~ferlab.models.chain.ChainBackbone` of a network whose ``forward_features`` is its
    modules in sequence with (N, C, h, w) stage outputs, or None."""
    info = [d for d in model.feature_info if d["reduction"] >= min_reduction]
    if not info:
        return None
    names = _chain(model, [d["module"] for d in model.feature_info])
    if any(d["module"] not in names for d in info):
        return None
    ends = [names.index(d["module"]) for d in info]
    if ends != sorted(ends):
        return None
    stem, stages = CH.cut(names, ends)
    side = max(64, 2 * info[-1]["reduction"])
    x = CH.probe_input(side)
    with torch.no_grad():
        try:
            want = model.forward_features(x)
            f = CH.run_chain(model, stem, x)[-1] if stem else x
            stem_out, outs = f, []
            for s in stages:
                f = CH.run_chain(model, s, f)[-1]
                outs.append(f)
        except Exception:        # a piece that is not meant to be called on its own (the chain is wrong)
            return None
    if not CH.close(f, want) or any(o.ndim != 4 for o in outs + [stem_out]):
        return None
    if any(o.shape[1] != d["num_chs"] or CH.side_reduction(side, o.shape[-1]) != d["reduction"]
           for o, d in zip(outs[:-1], info[:-1])):
        return None
    channels = [d["num_chs"] for d in info[:-1]] + [outs[-1].shape[1]]
    with torch.no_grad():
        pooled = model.forward_head(outs[-1], pre_logits=True)
    net = TimmBackbone(model, stem, stages, [d["module"].replace(".", "_") for d in info], channels,
                       [d["reduction"] for d in info],
                       {"channels": stem_out.shape[1], "reduction": CH.side_reduction(side, stem_out.shape[-1])},
                       pooled.shape[1], num_classes, drop_rate, min_input_size=info[-1]["reduction"])
    net.linear_pool = CH.close(pooled, outs[-1].mean((2, 3)))
    return net


def _first_side(value) -> int | None:
    """An image side from timm's ``img_size`` / ``patch_size`` (an int or an (h, w) pair), or None."""
    if isinstance(value, (tuple, list)) and value:
        value = value[0]
    return int(value) if isinstance(value, int) else None


def _grid(model: nn.Module, num_classes: int, drop_rate: float):
    """The :class:`TimmGridBackbone` of a token model that puts its last tokens on a grid, or None."""
    if not hasattr(model, "forward_intermediates"):
        return None
    pe = getattr(model, "patch_embed", None)
    fixed = _first_side(getattr(pe, "img_size", None)) if getattr(pe, "strict_img_size", False) else None
    net = TimmGridBackbone(model, 1, 1, 0, drop_rate, min_input_size=fixed or 1, fixed_input_size=fixed)
    with torch.no_grad():
        try:
            f = net.forward_features(CH.probe_input(fixed or 64))
            pooled = net.global_pool(f)
        except Exception:
            return None
    if f.ndim != 4:
        return None
    smallest = fixed or _first_side(getattr(pe, "patch_size", None)) or 1
    net = TimmGridBackbone(model, f.shape[1], pooled.shape[1], num_classes, drop_rate, min_input_size=smallest,
                           fixed_input_size=fixed)
    net.linear_pool = CH.close(pooled, f.mean((2, 3)))
    return net


class TimmBackbone(CH.ChainBackbone):
    """A timm CNN cut at its ``feature_info`` (see the module docstring); ``model`` is the timm model."""

    def global_pool(self, f: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) -> (N, num_features): timm's head up to its classifier."""
        return self.model.forward_head(f, pre_logits=True)


class TimmGridBackbone(CH.ChainBackbone):
    """A timm token model (ViT, Swin, ...) whose last tokens the model puts on a grid: ``forward_features``
    -> (N, D, h, w) (class / register tokens left out, after the model's final norm), pooled by their
    mean (then the model's ``fc_norm`` where it has one). No stem, no stages: its blocks map tokens to
    tokens, so methods that copy or cut stages (DMUE, LA-Net) refuse it."""

    spatial_stages = False
    no_stages_reason = "its blocks map tokens to tokens; only its last tokens are put on a grid (N, D, h, w)"

    def __init__(self, model: nn.Module, channels: int, num_features: int, num_classes: int = 0,
                 drop_rate: float = 0.0, min_input_size: int = 1, fixed_input_size: int | None = None):
        super().__init__(model, [], [], [], [channels], [], {}, num_features, num_classes, drop_rate, min_input_size)
        self.fixed_input_size = fixed_input_size

    @property
    def stages(self) -> tuple:
        """None: a token network has no spatial stages."""
        return ()

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """Refused: a token network has no stem that gives a map (ValueError)."""
        raise ValueError(f"no stem or stages: {self.no_stages_reason}")

    def forward_stages(self, x: torch.Tensor, start: int = 0, end: int | None = None) -> torch.Tensor:
        """Refused: a token network has no spatial stages (ValueError)."""
        raise ValueError(f"no stem or stages: {self.no_stages_reason}")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, D, H / p, W / p): the last block's patch tokens on their grid."""
        if self.fixed_input_size and tuple(x.shape[-2:]) != (self.fixed_input_size,) * 2:
            raise ValueError(f"this model takes {self.fixed_input_size} x {self.fixed_input_size} inputs only, got "
                             f"{x.shape[-2]} x {x.shape[-1]}: build it with backbone_args img_size: "
                             f"{x.shape[-1]} (or dynamic_img_size: true)")
        return self.model.forward_intermediates(x, indices=1, norm=True, output_fmt="NCHW",
                                                intermediates_only=True)[-1]

    def global_pool(self, f: torch.Tensor) -> torch.Tensor:
        """(N, D, h, w) -> (N, D): the mean of the patch tokens, then ``fc_norm`` where the model has one."""
        return getattr(self.model, "fc_norm", nn.Identity())(f.mean((2, 3)))


def create(arch: str, weights=None, num_classes: int = 0, min_match: float = 0.9, verbose: bool = True,
           drop_rate: float = 0.0, min_reduction: int = CH.MIN_REDUCTION, **kw) -> CH.ChainBackbone:
    """``timm:<arch>`` as a ferlab backbone (see the module docstring); ``kw`` go to ``timm.create_model``
    (``drop_path_rate``, ``img_size``, ...); ``drop_rate`` is the dropout before ferlab's classifier."""
    _check(arch)
    timm = import_timm()
    if weights not in (None, "timm") and not Path(weights).is_file():
        raise WeightsError(f"{PREFIX}{arch}: weights must be none, 'timm' (timm's published weights, fetched by "
                           f"timm on first use) or a weight file; no file {str(weights)!r} exists")
    try:
        model = timm.create_model(arch, pretrained=weights == "timm", num_classes=0, **kw)
    except TypeError as e:
        raise ConfigError(f"{PREFIX}{arch}: backbone_args {kw}: {(str(e).splitlines() or ['-'])[0]}") from None
    except (RuntimeError, OSError) as e:
        if weights != "timm":
            raise
        raise WeightsError(f"{PREFIX}{arch}: timm could not fetch its weights "
                           f"({(str(e).splitlines() or ['-'])[0][:200]})") from None
    model.eval()
    net = _spatial(model, num_classes, drop_rate, int(min_reduction)) or _grid(model, num_classes, drop_rate)
    if net is None:
        raise ConfigError(f"{PREFIX}{arch}: ferlab cannot describe its stages: its forward_features is not its "
                          f"modules in sequence and it puts no tokens on a grid (forward_intermediates)")
    net.train()
    if weights not in (None, "timm"):
        load_weights(net, weights, min_match=min_match, verbose=verbose)
    return net


def load_weights(net: CH.ChainBackbone, path, min_match: float = 0.9, verbose: bool = True):
    """Load a timm / PyTorch / safetensors / ferlab weight file into ``net.model``; returns the
    :class:`~ferlab.models.weights.LoadReport` (also ``net.load_report``)."""
    net.load_report = CH.load_weights(net, path, tuple(c + "." for c in _classifiers(net.model)),
                                      min_match=min_match, verbose=verbose)
    return net.load_report
