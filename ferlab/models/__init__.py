"""Backbones. Build one with :func:`create_backbone`; every backbone describes its stages
(:mod:`ferlab.models.stages`), the interface methods use instead of attribute names::

    b = create_backbone("dlib_resnet29", weights="dlib", num_classes=7)   # or "resnet18", ...
    b.stages            # (layer1, layer2, ...) ordered stage modules; b.stages[-1] feeds the head
    b.stage_names       # ("layer1", ...): their attribute names on b
    b.feature_info      # [{"module": "layer1", "channels": 32, "reduction": 4}, ...] one per stage
    b.stem_info         # {"channels": 32, "reduction": 4}: forward_stem's output
    b.forward_stages(b.forward_stem(x), start=0, end=None)   # stages[start:end]; all == forward_features
    b.pretrained_cfg    # mean / std / input sizes / provenance / licence of its weights
"""
from .dlib_format import DlibFormatError, read_dlib_net
from .dlib_resnet import DlibResNet
from .registry import backbone_info, create_backbone, list_backbones, weight_tags
from .resnet import ResNet
from .weights import WeightsError, load_backbone_weights, read_checkpoint

__all__ = ["create_backbone", "list_backbones", "backbone_info", "weight_tags", "ResNet", "DlibResNet",
           "load_backbone_weights", "read_checkpoint", "WeightsError", "DlibFormatError", "read_dlib_net"]
