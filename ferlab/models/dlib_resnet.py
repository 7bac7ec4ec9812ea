"""dlib's face-recognition ResNet-29 (``dlib_face_recognition_resnet_model_v1.dat``) as a ferlab backbone.

The network (dlib's face recognition example), input 150 px (any side >= 103 for the full network):

- stem: conv 32 7x7 /2 **unpadded** -> affine -> ReLU -> max-pool 3x3 /2 unpadded;
- ``layer1``: 3 blocks of 32; ``layer2``: down 64 + 3 x 64; ``layer3``: down 128 + 2 x 128;
  ``layer4``: down 256 + 2 x 256; ``layer5``: down 256 (29 convs with the stem);
- block: conv 3x3 -> affine -> ReLU -> conv 3x3 -> affine, added to the block input, ReLU. dlib pads
  stride-1 convs by 1 and stride-2 convs not at all; a down block's skip is avg-pool 2x2 /2 of its
  input, and where the two branches differ (channels, or a pixel of size) the smaller one is
  zero-padded at the end (dlib's ``add_prev``);
- global average pool -> 256 -> fc 128 without bias: the face descriptor.

Options for fine-tuning:

- ``out_stage`` (1..5, default 4): the last stage kept, which feeds the head. The identity
  descriptor discards expression while the middle stages carry it (frozen linear probes on
  FERPlus: 128-ch stage 66.1%, first 256-ch stage 62.7%, final stage 61.2%, descriptor 50.6%),
  and the final map is 1x1 at 112 px / 2x2 at 150 px, too coarse for a CAM. Default 4 (the first
  256-channel stage: 3x3 at 112 px, 4x4 at 150 px); 3 keeps the 128-channel stage (6x6 / 8x8).
- ``norm``: how dlib's ``affine_`` layers (a batch norm folded at the end of training) train.
  ``"frozen"`` (default): a fixed per-channel scale and shift (buffers, like detection backbones'
  FrozenBatchNorm), identical in train and eval mode. ``"batchnorm"``: ``nn.BatchNorm2d`` with
  weight = scale, bias = shift, running mean 0 and running variance 1 - eps, so in eval mode it
  reproduces the affine exactly at the start; in train mode it normalises with batch statistics.
- ``descriptor=True`` (requires ``out_stage=5``): keep the 128-d fc; :meth:`DlibResNet.forward_descriptor`
  then gives dlib's face descriptor (``compute_face_descriptor`` on a 150x150 chip).

Random init: Kaiming convs, zero conv biases, identity affines; with ``norm="frozen"`` nothing
normalises the activations, so each block's second conv starts at zero (the block starts as its
skip path, as in Fixup / zero-init-residual) to keep a 29-conv network from growing its activations
with depth.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .dlib_format import DlibFormatError, DlibNet, read_dlib_net
from .stages import StagedBackbone

WIDTHS = (32, 64, 128, 256, 256)
DEPTHS = (3, 4, 3, 3, 1)          # blocks per stage; stages 2..5 start with a down block
REDUCTIONS = (4, 8, 16, 32, 64)
DLIB_FILE = "dlib_face_recognition_resnet_model_v1.dat"
#: dlib's input layer: (pixel - mean) / 256 on 0..255 RGB
DLIB_PIXEL_MEAN = (122.782, 117.001, 104.298)


class FrozenAffine(nn.Module):
    """y = x * weight + bias per channel, both buffers (never trained): dlib's ``affine_`` layer."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("weight", torch.ones(channels))
        self.register_buffer("bias", torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H, W), in ``x``'s dtype."""
        # in the activations' dtype: under bf16 autocast a float32 scale would promote every map to float32
        # (and the next convolution would cast it back), about a third of a CPU step
        return x * self.weight.to(x.dtype).view(1, -1, 1, 1) + self.bias.to(x.dtype).view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        """The number of channels (shown by ``repr``)."""
        return str(self.weight.numel())


def _norm_layer(norm: str, channels: int) -> nn.Module:
    return FrozenAffine(channels) if norm == "frozen" else nn.BatchNorm2d(channels)


def add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a + b after zero-padding the smaller of the two at the end of C, H and W (dlib's ``add_prev``)."""
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def pad(t):
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))
    return pad(a) + pad(b)


class DlibBlock(nn.Module):
    """dlib's residual block: conv3x3 -> norm -> ReLU -> conv3x3 -> norm, added to the skip (the
    smaller of the two zero-padded), then ReLU. ``down``: the first conv is stride 2 and unpadded and
    the skip a 2x2 average pool. ``norm``: ``frozen`` (:class:`FrozenAffine`) or ``batchnorm``."""

    def __init__(self, cin: int, cout: int, down: bool, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, 2 if down else 1, 0 if down else 1)  # dlib pads stride-1 convs only
        self.bn1 = _norm_layer(norm, cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.bn2 = _norm_layer(norm, cout)
        self.skip = nn.AvgPool2d(2, 2) if down else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, cin, H, W) -> (N, cout, H', W') with H' = H (or H // 2 when ``down``)."""
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(add_zero_padded(out, self.skip(x)))


def stage_sizes(side: int, out_stage: int = 5) -> list[int] | None:
    """Spatial side of the stem's output and of each stage's output for a ``side`` x ``side``
    input, or None where an unpadded conv / pool would get a map smaller than its kernel."""
    if side < 7:
        return None
    h = (side - 7) // 2 + 1                  # conv 7x7 /2, unpadded
    if h < 3:
        return None
    h = (h - 3) // 2 + 1                     # max-pool 3x3 /2, unpadded
    sizes = [h, h]                           # stem, layer1 (padded stride-1 convs)
    for _ in range(out_stage - 1):
        if h < 3:                            # a down block's 3x3 /2 conv is unpadded
            return None
        h //= 2                              # its avg-pool skip is the larger branch
        sizes.append(h)
    return sizes


def min_input_size(out_stage: int = 5) -> int:
    """Smallest input side the network up to ``out_stage`` accepts (103 for the full network)."""
    return next(s for s in range(1, 4096) if stage_sizes(s, out_stage))


class DlibResNet(StagedBackbone, nn.Module):
    """dlib's ResNet-29 with ferlab's backbone contract (see :mod:`ferlab.models.resnet`)."""

    def __init__(self, num_classes: int = 0, out_stage: int = 4, norm: str = "frozen", descriptor: bool = False,
                 drop_rate: float = 0.0):
        super().__init__()
        if out_stage not in range(1, 6):
            raise ValueError(f"dlib_resnet29: out_stage must be 1..5 (the stage feeding the head), got {out_stage!r}")
        if norm not in ("frozen", "batchnorm"):
            raise ValueError(f"dlib_resnet29: norm must be 'frozen' or 'batchnorm', got {norm!r}")
        if descriptor and out_stage != 5:
            raise ValueError("dlib_resnet29: descriptor=True needs the full network (out_stage=5)")
        self.out_stage, self.norm = out_stage, norm
        self.conv1 = nn.Conv2d(3, WIDTHS[0], 7, 2, 0)
        self.bn1 = _norm_layer(norm, WIDTHS[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 0)
        cin = WIDTHS[0]
        for i in range(out_stage):
            blocks = [DlibBlock(cin if b == 0 else WIDTHS[i], WIDTHS[i], down=i > 0 and b == 0, norm=norm)
                      for b in range(DEPTHS[i])]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            cin = WIDTHS[i]
        self.stage_names = tuple(f"layer{i + 1}" for i in range(out_stage))
        self._stage_channels, self._stage_reductions = WIDTHS[:out_stage], REDUCTIONS[:out_stage]
        self.stem_info = {"channels": WIDTHS[0], "reduction": 4}
        self.min_input_size = min_input_size(out_stage)
        self.num_features = WIDTHS[out_stage - 1]
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(drop_rate) if drop_rate else nn.Identity()
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        self.descriptor = nn.Linear(WIDTHS[-1], 128, bias=False) if descriptor else None
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        if norm == "frozen":
            for m in self.modules():
                if isinstance(m, DlibBlock):
                    nn.init.zeros_(m.conv2.weight)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, 32, (H - 7) // 4 - ..., ...): 35x35 at 150 px."""
        if min(x.shape[-2:]) < self.min_input_size:
            raise ValueError(f"dlib_resnet29 (out_stage={self.out_stage}) needs inputs of at least "
                             f"{self.min_input_size}x{self.min_input_size} px (its convs are unpadded), "
                             f"got {x.shape[-2]}x{x.shape[-1]}")
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_descriptor(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised images -> (N, 128) dlib face descriptors (needs ``descriptor=True``)."""
        if self.descriptor is None:
            raise RuntimeError("build dlib_resnet29 with out_stage=5, descriptor=True for the 128-d descriptor")
        return self.descriptor(self.forward_head(self.forward_features(x), pre_logits=True))


# -- weights ----------------------------------------------------------------------------------------
def _layout():
    """The records of dlib's file, input upwards: (kind, state-dict prefix or None, expected fields)."""
    yield "con", "conv1", dict(num_filters=32, in_channels=3, kernel=7, stride=2, padding=0)
    yield "affine", "bn1", dict(channels=32)
    yield "relu", None, {}
    yield "max_pool", None, dict(kernel=3, stride=2, padding=0)
    cin = WIDTHS[0]
    for i, (width, depth) in enumerate(zip(WIDTHS, DEPTHS)):
        for b in range(depth):
            down, p = i > 0 and b == 0, f"layer{i + 1}.{b}"
            yield "con", p + ".conv1", dict(num_filters=width, in_channels=cin, kernel=3, stride=2 if down else 1,
                                            padding=0 if down else 1)
            yield "affine", p + ".bn1", dict(channels=width)
            yield "relu", None, {}
            yield "con", p + ".conv2", dict(num_filters=width, in_channels=width, kernel=3, stride=1, padding=1)
            yield "affine", p + ".bn2", dict(channels=width)
            if down:
                yield "avg_pool", None, dict(kernel=2, stride=2, padding=0)
            yield "add_prev", None, {}
            yield "relu", None, {}
            cin = width
    yield "avg_pool", None, dict(kernel=0, stride=1, padding=0)     # dlib's avg_pool_everything
    yield "fc", "descriptor", dict(num_outputs=128, num_inputs=WIDTHS[-1])


def _found(layer) -> dict:
    f = layer.fields

    def kernel():
        return f["kernel_rows"] if f["kernel_rows"] == f["kernel_cols"] else (f["kernel_rows"], f["kernel_cols"])
    if layer.kind == "con":
        return dict(num_filters=f["num_filters"], in_channels=f["weight_shape"][1], kernel=kernel(),
                    stride=f["stride_y"] if f["stride_y"] == f["stride_x"] else (f["stride_y"], f["stride_x"]),
                    padding=f["padding_y"] if f["padding_y"] == f["padding_x"] else (f["padding_y"], f["padding_x"]))
    if layer.kind == "affine":
        return dict(channels=layer.params.size // 2)
    if layer.kind in ("max_pool", "avg_pool"):
        return dict(kernel=kernel(), stride=f["stride_y"], padding=f["padding_y"])
    if layer.kind == "fc":
        return dict(num_outputs=f["num_outputs"], num_inputs=f["num_inputs"])
    return {}


def dlib_state_dict(net: DlibNet) -> dict[str, torch.Tensor]:
    """Map the records of ``dlib_face_recognition_resnet_model_v1.dat`` onto the full
    ``DlibResNet(out_stage=5, descriptor=True, norm="frozen")``'s state dict, checking every record."""
    layout = list(_layout())

    def refuse(msg, at):
        return DlibFormatError(f"{net.path}: {msg} at byte {at}; not dlib's face recognition ResNet ({DLIB_FILE})")
    mean = net.input_fields["mean"]
    if net.input_fields["rows"] != 150 or net.input_fields["cols"] != 150 \
            or max(abs(a - b) for a, b in zip(mean, DLIB_PIXEL_MEAN)) > 1e-3:
        raise refuse(f"input layer is {net.input_fields}, expected 150x150 with mean {DLIB_PIXEL_MEAN}",
                     net.layers[0].offset if net.layers else 0)
    sd = {}
    for i, (layer, (kind, key, want)) in enumerate(zip(net.layers, layout)):
        got = _found(layer) if layer.kind == kind else {}
        if layer.kind != kind or got != want or layer.fields.get("fused_relu") or layer.fields.get("disabled"):
            raise refuse(f"layer {i} is {layer.version} {got or layer.fields}, expected {kind} {want}", layer.offset)
        p = torch.from_numpy(layer.params) if layer.params is not None else None
        if kind == "con":
            n = want["num_filters"] * want["in_channels"] * want["kernel"] ** 2
            if not layer.fields["use_bias"] or p.numel() != n + want["num_filters"]:
                raise refuse(f"layer {i} ({layer.version}) holds {p.numel()} parameters, expected "
                             f"{n + want['num_filters']} (weights and biases)", layer.offset)
            sd[key + ".weight"] = p[:n].view(want["num_filters"], want["in_channels"], want["kernel"], want["kernel"])
            sd[key + ".bias"] = p[n:]
        elif kind == "affine":
            if layer.fields["mode"] != 0 or p.numel() % 2:
                raise refuse(f"layer {i} ({layer.version}) is not a per-channel affine", layer.offset)
            c = p.numel() // 2
            sd[key + ".weight"], sd[key + ".bias"] = p[:c], p[c:]
        elif kind == "fc":
            if layer.fields["use_bias"] or p.numel() != want["num_inputs"] * want["num_outputs"]:
                raise refuse(f"layer {i} ({layer.version}) is not a {want['num_inputs']} -> 128 fc without bias",
                             layer.offset)
            sd[key + ".weight"] = p.view(want["num_inputs"], want["num_outputs"]).t().contiguous()  # dlib: out = in @ W
    if len(net.layers) != len(layout):
        raise refuse(f"{len(net.layers)} layers, expected {len(layout)}", net.layers[-1].offset if net.layers else 0)
    return sd


def load_dlib_weights(model: DlibResNet, path: str | Path, verbose: bool = True):
    """Read dlib's ``.dat`` into ``model`` (any ``out_stage`` / ``norm``; the classifier ``fc`` is
    never loaded, the descriptor only when the model has one). Returns a
    :class:`~ferlab.models.weights.LoadReport`."""
    from .weights import LoadReport
    sd = dlib_state_dict(read_dlib_net(path))
    own = model.state_dict()
    rep = LoadReport(str(path), "dlib")
    new = {}
    for k in own:
        if k.startswith("fc.") or k.endswith("num_batches_tracked"):
            continue
        if k.endswith(".running_mean"):
            new[k] = torch.zeros_like(own[k])
        elif k.endswith(".running_var"):
            eps = model.get_submodule(k.rsplit(".", 1)[0]).eps
            new[k] = torch.full_like(own[k], 1.0 - eps)    # (x - 0) / sqrt(1 - eps + eps) * scale + shift
        elif k in sd:
            new[k] = sd[k]
        else:
            rep.missing.append(k)
            continue
        rep.loaded.append(k)
    rep.unexpected = [k for k in sd if k not in own]
    if rep.missing:
        raise DlibFormatError(f"{path}: no dlib tensors for {rep.missing[:4]}")
    model.load_state_dict(new, strict=False)
    if verbose:
        print(rep)
    return rep
