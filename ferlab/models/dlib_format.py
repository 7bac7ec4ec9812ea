"""Reader of dlib's DNN serialization (a network saved with ``dlib::serialize(file) << net``),
in pure Python + numpy: no dlib at run time.

Primitive encodings:

- integer: a control byte whose low 4 bits give the number of little-endian magnitude bytes
  that follow and whose bit 0x80 marks a negative value;
- string: an integer length, then the raw bytes; bool: the ASCII byte ``1`` or ``0``;
- float: integer mantissa then integer exponent, value = m * 2**e (exponents 32000 / 32001 /
  other >= 32000 encode +inf / -inf / nan);
- tensor: integer version 2, num_samples, k, nr, nc, then that many float32 (little-endian);
  an alias tensor (a view into a layer's parameter block) is version 1 and the four dims only.

The stream: the loss layer (version, name, fields); the version of every wrapper from the
outermost inwards (2 per layer, 1 per tag / skip wrapper, which write nothing else); version 3
and the input layer; then every real layer from the input upwards: its record (name, fields,
parameter block) followed by the layer wrapper's bookkeeping (3 bools and 3 tensors, empty in a
saved network; after the first layer also the sample expansion factor).

:func:`read_dlib_net` returns the records; which network they form is the caller's business
(:mod:`ferlab.models.dlib_resnet`). Anything unreadable raises :class:`DlibFormatError` naming the
file and the byte offset where parsing stopped.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .weights import WeightsError


class DlibFormatError(WeightsError):
    """A dlib file is truncated, corrupt, or not the network the reader was asked for."""


@dataclass
class DlibLayer:
    """One layer record of a dlib network file.

    Attributes:
        kind: ``con``, ``affine``, ``relu``, ``max_pool``, ``avg_pool``, ``add_prev`` or ``fc``.
        version: The record's tag as written, e.g. ``con_4``.
        offset: Byte offset of the record in the file.
        fields: The layer's settings (filter counts, sizes, strides, paddings, ...).
        params: Flat float32 parameter block (``con``, ``affine``, ``fc``), else ``None``.
    """

    kind: str                 # con | affine | relu | max_pool | avg_pool | add_prev | fc
    version: str              # the record's tag as written, e.g. "con_4"
    offset: int               # byte offset of the record in the file
    fields: dict = field(default_factory=dict)
    params: np.ndarray | None = None   # flat float32 parameter block (con, affine, fc)


@dataclass
class DlibNet:
    """A parsed dlib network file (:func:`read_dlib_net`).

    Attributes:
        path: The file.
        loss: Name of the loss layer (``loss_metric_2``).
        loss_fields: Its ``version``, ``margin`` and ``distance_threshold``.
        input: Name of the input layer (``input_rgb_image_sized``).
        input_fields: Its ``mean`` (3 floats), ``rows`` and ``cols``.
        layers: The layer records from the input upwards.
    """

    path: str
    loss: str
    loss_fields: dict
    input: str
    input_fields: dict
    layers: list[DlibLayer]


class _Stream:
    def __init__(self, data: bytes, path: str):
        self.data, self.path, self.pos = data, path, 0

    def fail(self, msg: str, at: int | None = None) -> DlibFormatError:
        return DlibFormatError(f"{self.path}: {msg} at byte {self.pos if at is None else at}")

    def _take(self, n: int, what: str, at: int) -> bytes:
        if self.pos + n > len(self.data):
            raise self.fail(f"truncated dlib file ({len(self.data)} bytes): {what} needs "
                            f"{self.pos + n - at} bytes from byte {at}, file ends", at)
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def read_int(self, what: str = "integer") -> int:
        at = self.pos
        ctrl = self._take(1, what, at)[0]
        n = ctrl & 0x0F
        if n > 8 or ctrl & 0x70:
            raise self.fail(f"not a dlib integer (control byte 0x{ctrl:02x}) reading {what}", at)
        v = int.from_bytes(self._take(n, what, at), "little")
        return -v if ctrl & 0x80 else v

    def read_str(self, what: str = "string") -> str:
        at = self.pos
        n = self.read_int(what + " length")
        if not 0 <= n <= 256:
            raise self.fail(f"expected {what}, found a length of {n}", at)
        raw = self._take(n, what, at)
        if not all(32 <= c < 127 for c in raw):
            raise self.fail(f"expected {what}, found non-text bytes {raw[:16]!r}", at)
        return raw.decode("ascii")

    def read_bool(self, what: str = "bool") -> bool:
        at = self.pos
        c = self._take(1, what, at)
        if c not in (b"0", b"1"):
            raise self.fail(f"expected {what} (ASCII 0/1), found 0x{c[0]:02x}", at)
        return c == b"1"

    def read_float(self, what: str = "float") -> float:
        m, e = self.read_int(what + " mantissa"), self.read_int(what + " exponent")
        if e >= 32000:
            return {32000: float("inf"), 32001: float("-inf")}.get(e, float("nan"))
        return float(m * 2.0 ** e)

    def read_tensor(self, what: str = "tensor") -> np.ndarray | tuple:
        """A data tensor -> flat float32 array; an alias tensor -> its 4 dims (tuple)."""
        at = self.pos
        version = self.read_int(what + " version")
        if version not in (1, 2):
            raise self.fail(f"expected {what} (version 1 or 2), found version {version}", at)
        dims = tuple(self.read_int(what + " size") for _ in range(4))
        if min(dims) < 0:
            raise self.fail(f"{what} has a negative size {dims}", at)
        if version == 1:
            return dims
        n = int(np.prod(dims, dtype=np.int64))
        raw = self._take(4 * n, f"{what} of shape {dims}", at)
        return np.frombuffer(raw, "<f4").astype(np.float32)


def _multipliers(s: _Stream) -> list[float]:
    return [s.read_float("learning-rate / weight-decay multiplier") for _ in range(4)]


def _read_layer(s: _Stream) -> DlibLayer:
    at = s.pos
    version = s.read_str("a layer name")
    if version in ("con_4", "con_5", "con_6"):
        params = s.read_tensor("con parameters")
        names = ("num_filters", "kernel_rows", "kernel_cols", "stride_y", "stride_x", "padding_y", "padding_x")
        f = {k: s.read_int(k) for k in names}
        f["weight_shape"], f["bias_shape"] = s.read_tensor("con weight alias"), s.read_tensor("con bias alias")
        f["multipliers"] = _multipliers(s)
        f["use_bias"] = s.read_bool("con use-bias flag") if version != "con_4" else True
        f["fused_relu"] = s.read_bool("con fused-relu flag") if version == "con_6" else False
        return DlibLayer("con", version, at, f, params)
    if version in ("affine_", "affine_2"):
        params = s.read_tensor("affine parameters")
        f = {"gamma_shape": s.read_tensor("affine gamma alias"), "beta_shape": s.read_tensor("affine beta alias"),
             "mode": s.read_int("affine mode")}
        f["disabled"] = s.read_bool("affine disabled flag") if version == "affine_2" else False
        return DlibLayer("affine", version, at, f, params)
    if version in ("relu_", "relu_2", "add_prev_"):
        return DlibLayer("add_prev" if version == "add_prev_" else "relu", version, at)
    if version in ("max_pool_2", "avg_pool_2"):
        names = ("kernel_rows", "kernel_cols", "stride_y", "stride_x", "padding_y", "padding_x")
        return DlibLayer(version[:-2], version, at, {k: s.read_int(k) for k in names})
    if version in ("fc_2", "fc_3"):
        f = {"num_outputs": s.read_int("fc outputs"), "num_inputs": s.read_int("fc inputs")}
        params = s.read_tensor("fc parameters")
        f["weight_shape"], f["bias_shape"] = s.read_tensor("fc weight alias"), s.read_tensor("fc bias alias")
        f["bias_mode"] = s.read_int("fc bias mode")
        f["multipliers"] = _multipliers(s)
        f["use_bias"] = s.read_bool("fc use-bias flag") if version == "fc_3" else f["bias_mode"] == 0
        return DlibLayer("fc", version, at, f, params)
    raise s.fail(f"unknown dlib layer {version!r} (this reader knows con, affine, relu, max/avg pool, "
                 f"add_prev and fc)", at)


def _skip_bookkeeping(s: _Stream) -> None:
    for _ in range(3):
        s.read_bool("layer bookkeeping flag")
    for _ in range(3):
        s.read_tensor("layer gradient / cache tensor")


def read_dlib_net(path: str | Path) -> DlibNet:
    """Parse a dlib DNN file saved with a ``loss_metric`` loss and an ``input_rgb_image_sized``
    input (dlib's face recognition networks) into its layer records, input upwards."""
    path = Path(path)
    if not path.is_file():
        raise DlibFormatError(f"{path}: dlib weight file not found")
    s = _Stream(path.read_bytes(), str(path))
    loss_version = s.read_int("loss layer version")
    at = s.pos
    loss = s.read_str("the loss layer's name")
    if loss != "loss_metric_2":
        raise s.fail(f"expected dlib's metric loss layer 'loss_metric_2', found {loss!r} "
                     f"(not a dlib face recognition network)", at)
    loss_fields = {"version": loss_version, "margin": s.read_float("margin"),
                   "distance_threshold": s.read_float("distance threshold")}
    versions = []
    while True:
        at = s.pos
        v = s.read_int("layer wrapper version")
        if v == 3:
            break
        if v not in (1, 2):
            raise s.fail(f"expected a layer wrapper version (1, 2 or 3), found {v}", at)
        versions.append(v)
    at = s.pos
    inp = s.read_str("the input layer's name")
    if inp != "input_rgb_image_sized":
        raise s.fail(f"expected the input layer 'input_rgb_image_sized', found {inp!r}", at)
    input_fields = {"mean": tuple(s.read_float("input mean") for _ in range(3)),
                    "rows": s.read_int("input rows"), "cols": s.read_int("input columns")}
    layers = []
    while s.pos < len(s.data):
        layers.append(_read_layer(s))
        _skip_bookkeeping(s)
        if len(layers) == 1:
            s.read_int("sample expansion factor")
    if versions.count(2) + 1 != len(layers):
        raise s.fail(f"the header announces {versions.count(2) + 1} layers, the file holds {len(layers)}")
    return DlibNet(str(path), loss, loss_fields, inp, input_fields, layers)
