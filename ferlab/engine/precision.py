"""What ``amp`` and ``channels_last`` mean on a device: the autocast dtype and the memory format.

``amp: auto`` is bf16 autocast where the hardware computes bf16 natively -- a CUDA GPU that supports
it (else fp16 with a gradient scaler), or a CPU with AVX512-BF16 or AMX-BF16, read from the cpuinfo
that torch ships (``torch.cpu.get_capabilities()``; before torch 2.5, the kernel's ``/proc/cpuinfo`` flags)
-- and off on any other CPU, where bf16 would be
emulated and slower than float32. ``channels_last: auto`` is on on CUDA and on a CPU running bf16
autocast (oneDNN's bf16 convolutions work in NHWC; on the CPU in float32 the gain depends on the input
size, so the float32 path keeps the contiguous format it always had).

Under bf16 autocast the network's convolutions and matrix products run in bf16; the methods cast
logits and feature maps to float32 before every softmax, loss, kernel density or ranking, so every
number a user reads (losses, probabilities, noise signals, neighbour distances) is float32 math on
bf16 activations.

``FERLAB_CPU_BF16=0`` (or ``1``) overrides the CPU detection, e.g. to measure the float32 path of
``auto`` on a bf16 machine.

Autocast's weight-cast cache is turned off where torch's cache keeps the cast of a weight first made
under ``no_grad`` (torch before the fix of pytorch#158232): a method's no-grad pass (LDLVA's neighbours)
would otherwise leave the weights it touched without gradients in the training pass that follows in the
same autocast region (:func:`autocast_cache_keeps_gradients`).
"""
from __future__ import annotations

import contextlib
import functools
import os
import re

import torch
import torch.utils.deterministic

from ..errors import ConfigError

AMP_CHOICES = ("auto", "bf16", "fp16", "off")
CHANNELS_LAST_CHOICES = ("auto", "on", "off")


#: /proc/cpuinfo flag -> the key torch.cpu.get_capabilities() gives the same instruction set
_CPUINFO_KEYS = {"avx2": "avx2", "avx512f": "avx512_f", "avx512_bf16": "avx512_bf16", "amx_bf16": "amx_bf16",
                 "avx512_fp16": "avx512_fp16", "amx_fp16": "amx_fp16"}


def cpu_capabilities(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> dict:
    """``torch.cpu.get_capabilities()`` (torch 2.5 and newer); before it, the instruction sets of
    :data:`_CPUINFO_KEYS` read from the flags of ``cpuinfo`` (Linux), under torch's keys; ``{}`` when
    neither is there."""
    if hasattr(torch.cpu, "get_capabilities"):
        return torch.cpu.get_capabilities()
    try:
        text = open(cpuinfo, encoding="utf-8", errors="replace").read()
    except OSError:
        return {}
    found = re.search(r"^flags\s*:(.*)$", text, re.M)
    flags = set(found.group(1).split()) if found else set()
    return {key: True for flag, key in _CPUINFO_KEYS.items() if flag in flags}


def cpu_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX-BF16); ``FERLAB_CPU_BF16=0/1`` overrides."""
    forced = os.environ.get("FERLAB_CPU_BF16", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    caps = cpu_capabilities()
    return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


def cpu_isa() -> str:
    """The CPU's vector instruction sets that matter for training speed, e.g. ``AVX512, AVX512-BF16, AMX-BF16``."""
    caps = cpu_capabilities()
    names = [("avx2", "AVX2"), ("avx512_f", "AVX512"), ("avx512_bf16", "AVX512-BF16"), ("amx_bf16", "AMX-BF16"),
             ("avx512_fp16", "AVX512-FP16"), ("amx_fp16", "AMX-FP16")]
    return ", ".join(label for key, label in names if caps.get(key)) or torch.backends.cpu.get_cpu_capability()


def amp_dtype(amp: str | torch.dtype | None, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype of setting ``amp`` (``auto | bf16 | fp16 | off``) on ``device``, or ``None``
    (float32). An already resolved dtype (or ``None``) is returned as it is."""
    if amp is None or isinstance(amp, torch.dtype):
        return amp
    if amp not in AMP_CHOICES:
        raise ConfigError(f"amp: {amp!r} is not one of {', '.join(AMP_CHOICES)}")
    kind = torch.device(device).type
    if amp == "off":
        return None
    if kind == "cuda":
        if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()):
            return torch.bfloat16
        return torch.float16
    if kind == "cpu":
        if amp == "fp16":
            raise ConfigError("amp fp16: float16 autocast is for CUDA; on the CPU use --amp bf16 (or auto, off)")
        if amp == "bf16" or cpu_native_bf16():
            return torch.bfloat16
        return None
    return None if amp == "auto" else torch.bfloat16


def use_channels_last(setting: str | bool, device: torch.device | str, dtype: torch.dtype | None) -> bool:
    """Whether inputs and weights use the channels_last memory format: ``on`` / ``off``, or ``auto``:
    on CUDA, and on a CPU under bf16 autocast (``dtype``)."""
    if isinstance(setting, bool):
        return setting
    if setting not in CHANNELS_LAST_CHOICES:
        raise ConfigError(f"channels_last: {setting!r} is not one of {', '.join(CHANNELS_LAST_CHOICES)}")
    if setting != "auto":
        return setting == "on"
    kind = torch.device(device).type
    return kind == "cuda" or (kind == "cpu" and dtype == torch.bfloat16)


@functools.cache
def autocast_cache_keeps_gradients() -> bool:
    """Whether a weight cast first under ``no_grad`` inside an autocast region still gets its gradient from
    a later pass in the same region. torch versions before the fix of pytorch#158232 cache that grad-less
    cast and reuse it: the later pass then sends no gradient to the weight. Measured once on a 2 x 2 linear
    map under CPU bf16 autocast (the cache is the same code on every device); draws no random numbers."""
    weight, x = torch.ones(2, 2, requires_grad=True), torch.ones(1, 2)
    with torch.enable_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        with torch.no_grad():
            torch.nn.functional.linear(x, weight)
        return torch.nn.functional.linear(x, weight).requires_grad


def autocast(device: torch.device | str, dtype: torch.dtype | None):
    """``torch.autocast`` to ``dtype`` on ``device``'s type, or a no-op context for float32; its weight-cast
    cache only where torch's cache keeps gradients (:func:`autocast_cache_keeps_gradients`)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype, cache_enabled=autocast_cache_keeps_gradients())


def dtype_name(dtype: torch.dtype | None) -> str:
    """``bf16`` / ``fp16`` / ``off``: the config value that names a resolved dtype."""
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "off")


def describe_precision(device: torch.device | str, dtype: torch.dtype | None, channels_last: bool) -> str:
    """One line for a run header, e.g. ``bf16 autocast (CPU: AVX512, AVX512-BF16, AMX-BF16), channels_last``."""
    dev = torch.device(device)
    where = f"CPU: {cpu_isa()}" if dev.type == "cpu" else dev.type
    amp = f"{dtype_name(dtype)} autocast" if dtype is not None else "float32"
    return f"{amp} ({where}), {'channels_last' if channels_last else 'contiguous'}"


def set_deterministic(on: bool) -> None:
    """PyTorch's deterministic algorithms (``on``) without its filling of uninitialised memory: the fill
    (NaN into every new tensor, a debugging aid) costs a few percent of a CPU step, and runs with and without it
    are bit-identical (``tests/engine/test_precision.py``)."""
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(on, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.deterministic = on
    torch.backends.cudnn.benchmark = not on
