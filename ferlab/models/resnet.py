"""ResNets in torchvision key layout, with the stem/stride variants the papers need.

- ``stem="torchvision"``: conv7x7/2 -> BN -> ReLU -> MaxPool(3, 2, pad 1).
- ``stem="caffe"``: conv7x7/2 -> BN -> ReLU -> MaxPool(3, 2, pad 0, ceil_mode) (VGGFace2 R50).
- ``stem="dmue"``: conv7x7/2 -> BN (no ReLU) -> MaxPool(2, 2) (DMUE's MS-Celeb R18).
- ``stride_on_1x1=True``: the bottleneck stride sits on the first 1x1 conv (Caffe R50).

``forward_features(x)`` -> (N, C, H, W) last feature map; ``forward_head(f)`` ->
logits (N, num_classes) or pooled features (N, C) when ``num_classes=0``. Stages
(:mod:`ferlab.models.stages`): ``layer1..layer4``, reductions 4 / 8 / 16 / 32.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .stages import StagedBackbone


def conv3x3(cin, cout, stride=1):
    """3x3 convolution ``cin`` -> ``cout`` channels, padding 1, no bias."""
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


class BasicBlock(nn.Module):
    """ResNet-18/34 block: conv3x3 (``stride``) -> BN -> ReLU -> conv3x3 -> BN, plus the identity
    (or ``downsample``), then ReLU; (N, cin, H, W) -> (N, width, H / stride, W / stride).
    ``stride_on_1x1`` is accepted for a common signature and ignored."""
    expansion = 1

    def __init__(self, cin, width, stride=1, downsample=None, stride_on_1x1=False):
        super().__init__()
        self.conv1 = conv3x3(cin, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = downsample

    def forward(self, x):
        """(N, cin, H, W) -> (N, width, H / stride, W / stride)."""
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + idt)


class Bottleneck(nn.Module):
    """ResNet-50 block: 1x1 -> 3x3 -> 1x1 (``width * 4`` channels) convs with BN and ReLU, plus the
    identity (or ``downsample``); the stride sits on the 3x3 conv, or on the first 1x1 with
    ``stride_on_1x1`` (Caffe). (N, cin, H, W) -> (N, 4 width, H / stride, W / stride)."""
    expansion = 4

    def __init__(self, cin, width, stride=1, downsample=None, stride_on_1x1=False):
        super().__init__()
        s1, s3 = (stride, 1) if stride_on_1x1 else (1, stride)
        self.conv1 = nn.Conv2d(cin, width, 1, s1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, s3, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        """(N, cin, H, W) -> (N, 4 width, H / stride, W / stride)."""
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + idt)


class ResNet(StagedBackbone, nn.Module):
    """A ResNet in torchvision's parameter names with the backbone contract and stage
    description (module docstring).

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: Blocks per stage, e.g. ``[2, 2, 2, 2]`` (ResNet-18).
        num_classes: Size of the linear classifier ``fc``; 0: none (``forward_head`` then gives
            pooled features).
        stem: ``torchvision``, ``caffe`` or ``dmue`` (module docstring).
        stride_on_1x1: Bottleneck stride on the first 1x1 conv (Caffe ResNet-50).
        widths: Base channel width of the four stages.
        in_chans: Input channels.
        drop_rate: Dropout before ``fc`` (0: none).
    """

    stage_names = ("layer1", "layer2", "layer3", "layer4")
    #: smallest input side each stem accepts (the unpadded max-pools of caffe / dmue need a 2x2 map)
    _MIN_INPUT = {"torchvision": 1, "caffe": 3, "dmue": 3}

    def __init__(self, block, layers, num_classes: int = 0, stem: str = "torchvision", stride_on_1x1: bool = False,
                 widths=(64, 128, 256, 512), in_chans: int = 3, drop_rate: float = 0.0):
        super().__init__()
        if stem not in ("torchvision", "caffe", "dmue"):
            raise ValueError(f"stem must be torchvision, caffe or dmue, got {stem!r}")
        self.stem_kind = stem
        self.conv1 = nn.Conv2d(in_chans, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True) if stem != "dmue" else nn.Identity()
        self.maxpool = {"torchvision": lambda: nn.MaxPool2d(3, 2, 1),
                        "caffe": lambda: nn.MaxPool2d(3, 2, 0, ceil_mode=True),
                        "dmue": lambda: nn.MaxPool2d(2, 2)}[stem]()
        self.inplanes = widths[0]
        self.layer1 = self._make_layer(block, widths[0], layers[0], 1, stride_on_1x1)
        self.layer2 = self._make_layer(block, widths[1], layers[1], 2, stride_on_1x1)
        self.layer3 = self._make_layer(block, widths[2], layers[2], 2, stride_on_1x1)
        self.layer4 = self._make_layer(block, widths[3], layers[3], 2, stride_on_1x1)
        self.num_features = widths[3] * block.expansion
        self.stem_info = {"channels": widths[0], "reduction": 4}
        self._stage_channels = tuple(w * block.expansion for w in widths)
        self._stage_reductions = (4, 8, 16, 32)
        self.min_input_size = self._MIN_INPUT[stem]
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(drop_rate) if drop_rate else nn.Identity()
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, block, width, blocks, stride, stride_on_1x1):
        down = None
        if stride != 1 or self.inplanes != width * block.expansion:
            down = nn.Sequential(nn.Conv2d(self.inplanes, width * block.expansion, 1, stride, bias=False),
                                 nn.BatchNorm2d(width * block.expansion))
        layers = [block(self.inplanes, width, stride, down, stride_on_1x1)]
        self.inplanes = width * block.expansion
        layers += [block(self.inplanes, width) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) -> (N, widths[0], ~H / 4, ~W / 4): conv7x7/2 -> BN -> [ReLU] -> max-pool."""
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))
