from .registry import backbone_info, create_backbone, list_backbones
from .resnet import ResNet
from .weights import WeightsError, load_backbone_weights, read_checkpoint

__all__ = ["create_backbone", "list_backbones", "backbone_info", "ResNet", "load_backbone_weights",
           "read_checkpoint", "WeightsError"]
