"""Safe loading of the face-pretrained checkpoints the papers used.

Formats (detected from the file, or forced with ``fmt=``):

- ``msceleb``: torch file ``{"state_dict": {...}}`` with torchvision keys, optional
  ``module.`` prefix (RUL/EAC/SCN ``resnet18_msceleb.pth``).
- ``vggface2_pkl``: pickled ``{name: numpy array}`` (EAC ``resnet50_ft_weight.pkl``),
  read by an unpickler that admits nothing but numpy arrays.
- ``dmue``: torch file with ``feat_net.*`` keys (DMUE ``mv_epoch_*.pt``).
- ``torchvision``: a flat state dict.
- ``safetensors``: a ``.safetensors`` file (timm / Hugging Face), read with the ``safetensors``
  package (tensors only, no code).

Torch files are always read with ``torch.load(weights_only=True)``. Every load prints
a key report and refuses one that matches fewer than ``min_match`` of the backbone keys.
"""
from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..errors import UserError, safe_torch_load

FORMATS = ("msceleb", "vggface2_pkl", "dmue", "torchvision", "safetensors")
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # protocol-2 pickles store array bytes as latin-1 text; encoding is side-effect free
}


class WeightsError(UserError, RuntimeError):
    """A weight file could not be read safely or does not fit the backbone."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise WeightsError(f"refusing to unpickle {module}.{name}: weight .pkl files may only contain numpy arrays")


def load_numpy_pickle(path: str | Path) -> dict[str, np.ndarray]:
    """Read a pickled ``{name: ndarray}`` dict without executing arbitrary code."""
    with open(path, "rb") as f:
        try:
            obj = _NumpyOnlyUnpickler(f, encoding="latin1").load()
        except WeightsError as e:
            raise WeightsError(f"{path}: {e}") from None
        except Exception as e:
            raise WeightsError(f"{path}: not a readable pickle of numpy arrays ({e})") from e
    if not isinstance(obj, dict) or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise WeightsError(f"{path}: expected a dict of numpy arrays, got {type(obj).__name__}")
    return obj


@dataclass
class LoadReport:
    """What :func:`load_backbone_weights` (or the dlib loader) copied (printed as a few lines).

    Attributes:
        path: The weight file.
        format: Its format (one of :data:`FORMATS`, or ``dlib``).
        loaded: Backbone tensors filled from the file.
        missing: Backbone tensors the file lacks.
        unexpected: File tensors the backbone has no place for.
        shape_mismatch: ``"key (file shape) vs (backbone shape)"`` of tensors not loaded.
    """

    path: str
    format: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shape_mismatch: list[str] = field(default_factory=list)

    @property
    def match(self) -> float:
        """loaded / (loaded + missing + shape mismatches + unexpected): tensors of the file that the
        backbone has no place for count against the match (weights of a deeper network of the same
        family would otherwise fill a shallower one "100%")."""
        total = len(self.loaded) + len(self.missing) + len(self.shape_mismatch) + len(self.unexpected)
        return len(self.loaded) / max(total, 1)

    def __str__(self) -> str:
        def few(keys):
            return ", ".join(keys[:6]) + (f", ... (+{len(keys) - 6})" if len(keys) > 6 else "")
        lines = [f"weights {self.path} [{self.format}]: loaded {len(self.loaded)} backbone tensors "
                 f"({100 * self.match:.1f}% match, unexpected file tensors counted)"]
        for name in ("missing", "unexpected", "shape_mismatch"):
            keys = getattr(self, name)
            if keys:
                lines.append(f"  {name} ({len(keys)}): {few(keys)}")
        return "\n".join(lines)


def _is_torch_file(path: Path) -> bool:
    return zipfile.is_zipfile(path)


def _is_safetensors(path: Path) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then a JSON header."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= path.stat().st_size


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file (the ``safetensors`` package: ``pip install safetensors``)."""
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise WeightsError(f"{path}: a safetensors file; reading it needs the safetensors package "
                           f"(pip install safetensors, or pip install 'ferlab[timm]')") from None
    try:
        return load_file(str(path), device="cpu")
    except Exception as e:         # safetensors raises its own error types on a damaged header
        raise WeightsError(f"{path}: not a readable safetensors file ({(str(e).splitlines() or ['-'])[0][:120]})") \
            from None


def read_checkpoint(path: str | Path, fmt: str | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """Read ``path`` into a flat ``{torchvision key: tensor}`` dict; returns it and the format."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weight file not found")
    if fmt is not None and fmt not in FORMATS:
        raise WeightsError(f"unknown weight format {fmt!r}; known: {FORMATS}")
    if fmt == "safetensors" or (fmt is None and not _is_torch_file(path) and _is_safetensors(path)):
        return read_safetensors(path), "safetensors"
    if fmt == "vggface2_pkl" or (fmt is None and not _is_torch_file(path)):
        arrays = load_numpy_pickle(path)
        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}, "vggface2_pkl"
    obj = safe_torch_load(path, WeightsError, "weight file")
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: expected a dict, got {type(obj).__name__}")
    detected = "torchvision"
    if "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj, detected = obj["state_dict"], "msceleb"
    elif "model" in obj and isinstance(obj["model"], dict):  # a ferlab checkpoint
        obj = obj["model"]
    sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if any(k.startswith("module.") for k in sd):
        sd = {k.removeprefix("module."): v for k, v in sd.items()}
    if any(k.startswith("feat_net.") for k in sd):
        sd = {k.removeprefix("feat_net."): v for k, v in sd.items() if k.startswith("feat_net.")}
        detected = "dmue"
    for prefix in ("backbone.", "base."):
        if sd and all(k.startswith(prefix) or not k.split(".")[0].startswith(("conv", "bn", "layer")) for k in sd) \
                and any(k.startswith(prefix) for k in sd):
            sd = {k.removeprefix(prefix): v for k, v in sd.items() if k.startswith(prefix)}
    return sd, fmt or detected


def load_backbone_weights(model: nn.Module, path: str | Path, fmt: str | None = None, min_match: float = 0.9,
                          verbose: bool = True) -> LoadReport:
    """Copy matching tensors from ``path`` into ``model`` (the classifier ``fc`` is never loaded).

    Raises :class:`WeightsError` when fewer than ``min_match`` of the backbone's
    tensors (``num_batches_tracked`` excluded) are found with the right shape.
    """
    sd, detected = read_checkpoint(path, fmt)
    return load_matching(model, sd, path, detected, min_match=min_match, verbose=verbose)


def load_matching(model: nn.Module, sd: dict[str, torch.Tensor], path: str | Path, fmt: str, min_match: float = 0.9,
                  verbose: bool = True, skip: tuple[str, ...] = ("fc.",)) -> LoadReport:
    """Copy the tensors of ``sd`` (read from ``path``, format ``fmt``) whose names and shapes match
    into ``model``; keys under a prefix of ``skip`` (the classifier) are neither loaded nor counted.
    Prints the key report (``verbose``) and refuses a match below ``min_match`` as
    :func:`load_backbone_weights` does."""
    own = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    backbone_keys = [k for k in own if not k.startswith(skip)]
    rep = LoadReport(str(path), fmt)
    new = {}
    for k in backbone_keys:
        if k not in sd:
            rep.missing.append(k)
        elif tuple(sd[k].shape) != tuple(own[k].shape):
            rep.shape_mismatch.append(f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}")
        else:
            new[k] = sd[k].to(own[k].dtype)
            rep.loaded.append(k)
    rep.unexpected = [k for k in sd if k not in own and not k.endswith("num_batches_tracked")
                      and not k.startswith(skip)]
    if verbose:
        print(rep)
    if rep.match < min_match:
        detail = "; ".join(line.strip() for line in str(rep).splitlines()[1:])
        raise WeightsError(f"{path}: only {100 * rep.match:.1f}% of the backbone's tensors match (need "
                           f"{100 * min_match:.0f}%; file tensors it has no place for count against it): "
                           f"weights of another architecture? {detail}")
    model.load_state_dict(new, strict=False)
    return rep
