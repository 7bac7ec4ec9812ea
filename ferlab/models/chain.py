"""A network of another library (timm, torchvision) as a ferlab backbone: its own modules, run in
order, cut into a stem and stages (:mod:`ferlab.models.stages`).

The network is held whole as ``backbone.model`` (its parameter names are the library's, behind
``model.``); its classifier is removed and ferlab's own ``fc`` (and ``drop``) read the pooled
features. ``chain`` is the network's feature part as a list of ``(name, module)`` pieces in call
order (children, and the children of the containers that hold several stages). The stages are cut
at the pieces that end a resolution (timm: the modules its ``feature_info`` names; torchvision: the
last piece at each total stride), from total stride ``min_reduction`` (default 4) on:

- stem = every piece before the first stage's piece (an entry at stride 2, timm's ResNet ``act1`` or
  EfficientNet's ``blocks.0``, goes into the stem, as in ferlab's own ResNet);
- stage i = the pieces after stage i - 1's end up to its own end; the last stage also takes the
  pieces between the last feature stage and the pooling (EfficientNet's ``conv_head`` + ``bn2``,
  RegNet's ``final_conv``): its output is the map the head pools, so its channels are the network's
  ``num_features`` (EfficientNet-B0: 1280, where ``feature_info`` ends at 320).

A stage made of one piece is that module; a longer one is an ``nn.Sequential`` view of its pieces
(``nn.Identity`` pieces left out). Views are not registered: the parameters exist once, under the
network's own names. The cut is checked when the backbone is built: stem + stages on a probe image
must give the network's own features (:func:`check_chain`); a network whose forward is more than its
modules in sequence is refused, or, where it puts its tokens on a grid itself (timm's
``forward_intermediates``), described without stages (:class:`~ferlab.models.timm_backbones.TimmGridBackbone`).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn as nn

from .stages import StagedBackbone

#: the smallest total stride of a stage: stride-2 entries go into the stem (LA-Net's heatmaps and
#: FPN start at the first stage's map, stride 4 in the paper)
MIN_REDUCTION = 4


def piece(model: nn.Module, name: str) -> nn.Module:
    """The submodule ``name`` (dotted, e.g. ``blocks.3``) of ``model``."""
    return model.get_submodule(name)


def view(model: nn.Module, names: Sequence[str]) -> nn.Module:
    """The module that runs the pieces ``names`` of ``model`` in order (not registered anywhere)."""
    mods = [(n, piece(model, n)) for n in names]
    mods = [(n, m) for n, m in mods if not isinstance(m, nn.Identity)] or mods[-1:]
    if len(mods) == 1:
        return mods[0][1]
    return nn.Sequential(OrderedDict((n.replace(".", "_"), m) for n, m in mods))


def side_reduction(side: int, h: int) -> int:
    """Total stride of a map of side ``h`` from an input of side ``side``, as a power of two."""
    return 2 ** round(math.log2(side / max(h, 1)))


def probe_input(side: int, n: int = 2) -> torch.Tensor:
    """A fixed (n, 3, side, side) input that leaves the global random state alone."""
    return torch.randn(n, 3, side, side, generator=torch.Generator().manual_seed(0))


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same shape and equal up to float32 rounding (relative to ``b``'s largest value)."""
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=1e-4, atol=1e-5 * (1 + float(b.abs().max()))))


def run_chain(model: nn.Module, names: Sequence[str], x: torch.Tensor) -> list[torch.Tensor]:
    """The output of every piece of ``names`` on ``x``."""
    outs = []
    for n in names:
        x = piece(model, n)(x)
        outs.append(x)
    return outs


def cut(names: Sequence[str], ends: Sequence[int]) -> tuple[list[str], list[list[str]]]:
    """(stem, stages) of a chain ``names`` cut after the pieces ``ends`` (increasing indices); the
    last stage runs to the end of the chain."""
    stem = list(names[:ends[0]])
    stages, start = [], ends[0]
    for i, end in enumerate(ends):
        stop = len(names) if i == len(ends) - 1 else end + 1
        stages.append(list(names[start:stop]))
        start = stop
    return stem, stages


class ChainBackbone(StagedBackbone, nn.Module):
    """A foreign network cut into ferlab's stem and stages (see the module docstring).

    Args:
        model: the network (its classifier already removed).
        stem: names of the pieces before the first stage.
        stages: per stage, the names of its pieces.
        stage_names: identifiers of the stages (the name of the piece that ends each, dots as ``_``).
        channels, reductions: per stage, its output channels and nominal total stride.
        stem_info: ``{"channels", "reduction"}`` of the stem's output.
        num_features: size of the pooled features (what ``fc`` reads; a head with a hidden layer
            makes it differ from the last stage's channels).
        num_classes, drop_rate: ferlab's classifier on the pooled features, and its dropout.
        min_input_size: the smallest input side the network takes.
    """

    spatial_stages = True

    def __init__(self, model: nn.Module, stem, stages, stage_names, channels, reductions, stem_info: dict,
                 num_features: int, num_classes: int = 0, drop_rate: float = 0.0, min_input_size: int = 1):
        super().__init__()
        self.model = model
        self.stem_pieces, self.stage_pieces = tuple(stem), tuple(tuple(s) for s in stages)
        self.stage_names = tuple(stage_names)
        self._stage_channels, self._stage_reductions = tuple(channels), tuple(reductions)
        self.stem_info = dict(stem_info)
        self.num_features = int(num_features)
        self.min_input_size = int(min_input_size)
        self._views = (view(model, self.stem_pieces) if self.stem_pieces else nn.Identity(),
                       *(view(model, s) for s in self.stage_pieces))
        self.drop = nn.Dropout(drop_rate) if drop_rate else nn.Identity()
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    @property
    def stages(self) -> tuple[nn.Module, ...]:
        """The stage modules, in order (views on ``model``'s modules)."""
        return self._views[1:]

    @property
    def map_channels(self) -> int:
        """Channels of :meth:`forward_features`' map (the last stage's output)."""
        return self._stage_channels[-1]

    @property
    def head_hidden(self) -> bool:
        """Whether the pooled features pass a layer with weights of its own (a hidden layer, not a
        normalisation) before ``fc``: then ``fc``'s weights do not act on the map's channels."""
        return self.num_features != self.map_channels

    def __getattr__(self, name: str):
        views = self.__dict__.get("_views")
        if views is not None and name in self.__dict__.get("stage_names", ()):
            return views[1 + self.stage_names.index(name)]
        return super().__getattr__(name)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, stem channels, H / r0, W / r0)."""
        return self._views[0](x)

    def global_pool(self, f: torch.Tensor) -> torch.Tensor:  # pragma: no cover - per library
        """(N, C, h, w) -> (N, num_features) pooled features."""
        raise NotImplementedError

    def forward_head(self, f: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(N, C, h, w) -> logits (N, num_classes), or the pooled (N, num_features) if ``pre_logits``."""
        p = self.global_pool(f)
        return p if pre_logits else self.fc(self.drop(p))


def load_weights(net: ChainBackbone, path, skip: tuple[str, ...], min_match: float = 0.9, verbose: bool = True):
    """Load a weight file into ``net.model``: the library's own state dict (a flat one, ``{"state_dict":
    ...}``, or a ``.safetensors`` file) or a ferlab backbone / checkpoint / export of the same network
    (keys ``model.*``). Keys under ``skip`` (the library's classifier) are ignored. Prints the key
    report and refuses too weak a match (:func:`ferlab.models.weights.load_matching`)."""
    from .weights import load_matching, read_checkpoint
    sd, fmt = read_checkpoint(path)
    if any(k.startswith("model.") for k in sd):
        sd, fmt = {k.removeprefix("model."): v for k, v in sd.items() if k.startswith("model.")}, "ferlab"
    elif fmt == "msceleb":
        fmt = "state_dict"
    return load_matching(net.model, sd, path, fmt, min_match=min_match, verbose=verbose, skip=skip)
