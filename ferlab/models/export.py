"""Standalone inference models: a plain backbone (:class:`~ferlab.models.ResNet`, :class:`~ferlab.models.DlibResNet`)
with its classifier per trained run.

``ferlab export RUN --out model.pt`` writes one file (no pickled code; ``weights_only`` loadable)::

    {"format": "ferlab-inference-v1", "backbone": "resnet18", "backbone_args": {}, "num_classes": 7,
     "head": "linear" | "bn_linear", "input_size": 112, "mean": [...], "std": [...], "classes": [...],
     "image_size": 112, "method": "dmue", "state_dict": {...}}

``image_size``: side of the uint8 images the run trained on, before the resize to ``input_size``
(:class:`ferlab.predictor.Predictor` decodes files to it).
``framing``: how the run's training faces were cut and coloured (:func:`ferlab.data.faces.training_framing`;
absent in older files), which ``Predictor.predict_faces`` cuts faces from photos with.

``backbone_args`` (the constructor arguments, e.g. dlib_resnet29's ``out_stage`` / ``norm``) come from
the network itself (``net.backbone_args``, set by ``create_backbone``) unless given; files without them
rebuild the default network.

``load_inference_model(path)`` rebuilds the network (eval mode) and returns it with that metadata.
Its input is a normalised (N, 3, input_size, input_size) float tensor; it returns (N, num_classes) logits.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from .registry import create_backbone

FORMAT = "ferlab-inference-v1"


def _head_kind(net: nn.Module) -> str:
    fc = net.fc
    if isinstance(fc, nn.Linear):
        return "linear"
    if isinstance(fc, nn.Sequential) and len(fc) == 2 and isinstance(fc[0], nn.BatchNorm1d) \
            and isinstance(fc[1], nn.Linear):
        return "bn_linear"
    raise ValueError(f"cannot export a head of type {type(fc).__name__}")


def save_inference_model(net: nn.Module, path: str | Path, **meta) -> dict:
    """Write ``net`` (a backbone whose ``fc`` is Linear or BN1d -> Linear) with ``meta``."""
    from ..atomic import save_atomic
    meta.setdefault("backbone_args", dict(getattr(net, "backbone_args", {})))
    if "backbone" not in meta and hasattr(net, "pretrained_cfg"):
        meta["backbone"] = net.pretrained_cfg["backbone"]
    obj = {"format": FORMAT, "head": _head_kind(net), "num_classes": int(net.num_classes), **meta,
           "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}}
    save_atomic(obj, path)
    return obj


def load_inference_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild an exported model: returns (backbone in eval mode, metadata without the weights).
    For predictions on image files with the model's own transform and class names, use
    :class:`ferlab.predictor.Predictor`."""
    obj = read_inference_file(path)
    meta = {k: v for k, v in obj.items() if k != "state_dict"}
    return build_inference_model(obj, path).to(device), meta


#: what an export file must hold to be rebuilt
KEYS = ("backbone", "num_classes", "head", "state_dict")


def read_inference_file(path: str | Path) -> dict:
    """The dict of an export file, read safely (``torch.load(weights_only=True)``: tensors, numbers,
    strings, containers; nothing in the file is executed). Anything else -- a missing or empty file,
    a pickle that asks to run code, a training checkpoint, a file of another format -- is a
    :class:`~ferlab.errors.CheckpointError` of one line that names the file."""
    from ..errors import CheckpointError, safe_torch_load
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such inference model file" + (" (a directory)" if path.is_dir() else ""))
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes), not a ferlab inference model")
    obj = safe_torch_load(path, CheckpointError, "inference model", not_a="a ferlab inference model")
    hint = "write one with `ferlab export RUN --out FILE`"
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        what = (f"a torch file holding a {type(obj).__name__}" if not isinstance(obj, dict)
                else "a ferlab training checkpoint (give it to ferlab.predictor.Predictor.load, or export it)"
                if "model" in obj and "config" in obj else f"format {obj.get('format')!r}")
        raise CheckpointError(f"{path}: not a ferlab inference model ({what}; expected format {FORMAT!r}); {hint}")
    missing = [k for k in KEYS if k not in obj]
    if missing:
        raise CheckpointError(f"{path}: incomplete ferlab inference model, missing {', '.join(missing)}; {hint}")
    return obj


def build_inference_model(obj: dict, source: str | Path = "inference model") -> nn.Module:
    """The network of an export file already loaded as a dict, on the CPU in eval mode; weights that
    do not fit the network it names are a :class:`~ferlab.errors.CheckpointError` naming ``source``."""
    from ..errors import CheckpointError
    net = create_backbone(obj["backbone"], num_classes=obj["num_classes"], **obj.get("backbone_args", {}))
    if obj["head"] == "bn_linear":
        bias = obj["state_dict"].get("fc.1.bias") is not None
        net.fc = nn.Sequential(nn.BatchNorm1d(net.num_features),
                               nn.Linear(net.num_features, obj["num_classes"], bias=bias))
    try:
        net.load_state_dict(obj["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as e:
        first = (str(e).splitlines() or ["-"])[0][:160]
        raise CheckpointError(f"{source}: its weights do not fit a {obj['backbone']} with {obj['num_classes']} "
                              f"classes and a {obj['head']} head ({first})") from e
    return net.eval()
