"""What ``amp`` / ``channels_last`` resolve to, what a run records, and that bf16 runs resume bit-exactly."""
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.utils.deterministic
import yaml

from ferlab.data.synthetic import synthetic
from ferlab.engine import precision
from ferlab.engine.inference import batched_logits, dataset_features
from ferlab.engine.trainer import Trainer, fit
from ferlab.errors import ConfigError
from ferlab.methods import build_method
from ferlab.models import create_backbone


@pytest.mark.parametrize("native, expected", [("1", torch.bfloat16), ("0", None)])
def test_auto_on_the_cpu_is_bf16_only_where_the_processor_computes_it(monkeypatch, native, expected):
    monkeypatch.setenv("FERLAB_CPU_BF16", native)
    assert precision.amp_dtype("auto", "cpu") is expected
    assert precision.use_channels_last("auto", "cpu", expected) is (expected is not None)
    # explicit settings do not depend on the detection
    assert precision.amp_dtype("bf16", "cpu") is torch.bfloat16
    assert precision.amp_dtype("off", "cpu") is None
    assert precision.use_channels_last("on", "cpu", None) and not precision.use_channels_last("off", "cpu", expected)


def test_detection_reads_the_cpu_capabilities_torch_ships(monkeypatch):
    monkeypatch.delenv("FERLAB_CPU_BF16", raising=False)
    caps = precision.cpu_capabilities()
    if hasattr(torch.cpu, "get_capabilities"):
        assert caps == torch.cpu.get_capabilities()
    assert precision.cpu_native_bf16() == bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


def test_before_torch_2_5_the_capabilities_come_from_cpuinfo_flags(tmp_path, monkeypatch):
    """The fallback reads the kernel's flags under torch's keys; on this CPU it agrees with torch's own
    reading where torch has one."""
    real = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else None
    monkeypatch.delattr(torch.cpu, "get_capabilities", raising=False)
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_tile\n\nprocessor\t: 1\n")
    assert precision.cpu_capabilities(info) == {"avx2": True, "avx512_f": True, "avx512_bf16": True}
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2\n")
    assert precision.cpu_capabilities(info) == {"avx2": True}
    assert precision.cpu_capabilities(tmp_path / "missing") == {}
    if real is not None and Path("/proc/cpuinfo").is_file():
        mine = precision.cpu_capabilities()
        assert {k: bool(real.get(k)) for k in precision._CPUINFO_KEYS.values()} == \
            {k: bool(mine.get(k)) for k in precision._CPUINFO_KEYS.values()}


def test_a_no_grad_pass_leaves_the_weights_their_gradients_under_autocast():
    """A method's no-grad pass (LDLVA's neighbours) before the training pass, in one autocast region: every
    weight still gets its gradient, on torch versions whose weight-cast cache would drop it too."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x = torch.randn(5, 4)
    with precision.autocast("cpu", torch.bfloat16):
        with torch.no_grad():
            net(x)
        loss = net(x).float().square().mean()
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())
    got = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):      # the training pass alone
        net(x).float().square().mean().backward()
    assert all(torch.equal(p.grad, g) for p, g in zip(net.parameters(), got))


def test_fp16_on_the_cpu_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match="amp fp16.*CUDA"):
        precision.amp_dtype("fp16", "cpu")
    with pytest.raises(ConfigError, match="amp: 'half'"):
        precision.amp_dtype("half", "cpu")


@pytest.mark.parametrize("native", ["0", "1"])
def test_the_run_records_what_auto_resolved_to(tmp_path, monkeypatch, native, tiny_cfg):
    monkeypatch.setenv("FERLAB_CPU_BF16", native)
    trainer = Trainer(tiny_cfg(tmp_path, name="r", epochs=1, device="cpu"))
    want = ("bf16", "on") if native == "1" else ("off", "off")
    assert (trainer.cfg.amp, trainer.cfg.channels_last) == want
    assert ("bf16 autocast" if native == "1" else "float32") in trainer.settings()
    trainer.fit()
    saved = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert (saved["amp"], saved["channels_last"]) == want
    # the float32 path of auto is today's path: no autocast, contiguous weights
    weight = trainer.method.backbone.conv1.weight
    assert weight.dtype == torch.float32
    assert weight.is_contiguous(memory_format=torch.channels_last) == (native == "1")


def _stop_after_step(monkeypatch, step_to_stop: int):
    class Stopped(Exception):
        pass
    save = Trainer.save

    def stopping_save(self, epoch, step, best=False):
        save(self, epoch, step, best)
        if step == step_to_stop:
            raise Stopped
    monkeypatch.setattr(Trainer, "save", stopping_save)
    return Stopped


@pytest.mark.parametrize("method", ["baseline", "eac"])
def test_bf16_resume_mid_epoch_equals_uninterrupted(tmp_path, monkeypatch, method, tiny_cfg):
    kw = dict(method=method, amp="bf16", channels_last="on", device="cpu", checkpoint_every=2, augment={"erasing": 0.5})
    full = Trainer(tiny_cfg(tmp_path, name="full", **kw))
    full.fit()
    stopped = _stop_after_step(monkeypatch, 2)
    with pytest.raises(stopped):
        fit(tiny_cfg(tmp_path, name="cut", **kw))
    monkeypatch.undo()
    resumed = Trainer(tiny_cfg(tmp_path, name="cut", **kw), resume=True)
    assert (resumed.start_epoch, resumed.start_step) == (0, 0)     # not loaded until fit()
    resumed.fit()
    a, b = full.method.state_dict(), resumed.method.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [h["loss"] for h in full.history] == [h["loss"] for h in resumed.history]


def test_no_memory_fill_changes_no_result(tmp_path, monkeypatch, tiny_cfg):
    """Deterministic mode without PyTorch's NaN fill of new tensors trains bit-identically to it."""
    runs = {}
    for fill in (False, True):
        trainer = Trainer(tiny_cfg(tmp_path, name=f"fill{fill}", epochs=1, device="cpu", amp="off"))
        assert torch.utils.deterministic.fill_uninitialized_memory is False    # the trainer's setting
        torch.utils.deterministic.fill_uninitialized_memory = fill
        try:
            trainer.fit()
        finally:
            torch.utils.deterministic.fill_uninitialized_memory = False
        runs[fill] = trainer.method.state_dict()
    for k in runs[False]:
        assert torch.equal(runs[False][k], runs[True][k]), k


def test_inference_under_bf16_gives_float32_outputs_close_to_float32():
    torch.manual_seed(0)
    ds = synthetic("val", n=24, image_size=32)
    method = build_method("baseline", create_backbone("resnet10", num_classes=7), 7, input_size=32)
    dev = torch.device("cpu")
    ref = torch.cat([lg for _, lg in batched_logits(method, ds, dev, 8, amp="off")])
    low = torch.cat([lg for _, lg in batched_logits(method, ds, dev, 8, amp="bf16", channels_last="on")])
    assert ref.dtype == low.dtype == torch.float32
    # bf16 keeps 8 significant bits: logits agree to a few parts in a hundred of their scale
    assert (low - ref).abs().max() <= 0.05 * ref.abs().max() + 1e-3
    feats = dataset_features(method, ds, dev, 8, amp="bf16")
    assert feats.dtype == np.float32 and feats.shape[0] == 24
