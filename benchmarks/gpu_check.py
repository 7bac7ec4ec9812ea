"""End-to-end check of every method on one GPU: bf16, fp16, channels_last, cache gpu and torchrun, into a JSON.

Each variant trains a few dozen steps through the trainer: bf16 autocast, fp16 with the gradient scaler,
float32 channels_last, the image cache on the GPU, and a torchrun launch.

Usage:  python benchmarks/gpu_check.py [--device cuda] [--size 224] [--steps 40] [--batch-size 64]
        [--methods baseline eac rul dmue lanet ldlva] [--out benchmarks/results/gpu-check-<gpu name>.json]
        python benchmarks/gpu_check.py --dry          # the same functions at tiny sizes on the CPU

Every method trains :class:`ferlab.engine.trainer.Trainer` runs on synthetic faces (dataset ``synthetic``:
its landmarks feed LA-Net, its valence/arousal LDLVA's neighbours) with a randomly initialised backbone
(``resnet18``; nothing downloads) at ``--size`` px input: one epoch of ``--steps`` optimizer steps of
``--batch-size`` (``limit_train`` = steps x batch), with each method's own hyperparameters (DMUE: the
from-scratch head of ``recipes/dmue/ferplus.yaml``'s ``cpu_scratch`` preset, whose official head stalls
from random init, and the ``stratified`` sampler its batch filter needs). The variants:

- ``bf16``: bf16 autocast, channels_last (``amp: bf16``, ``channels_last: on``);
- ``fp16``: fp16 autocast with the gradient scaler (``amp: fp16``; CUDA only: skipped on the CPU);
- ``fp32_channels_last``: float32, channels_last (``amp: off``, ``channels_last: on``);
- ``cache_gpu``: as ``bf16``, with the image cache on the device (``cache: gpu``; on the CPU that is the
  RAM cache, and the JSON says so);
- ``torchrun``: as ``bf16``, launched by ``python -m torch.distributed.run --nproc_per_node=1`` (one
  subprocess, this script with ``--worker``, runs this variant of every method). With one process the
  trainer sets up no process group and no DDP wrapper: the variant checks the launch and the trainer's
  handling of the torchrun environment.

The checks, one pass flag each per method and variant: ``ran``; ``finite`` (every step's loss);
``falling`` (the mean loss of the last quarter of the steps below the first quarter's); ``first_step``:
the first step's loss equals the same step in float32 on the CPU (same seed, batch and initial weights;
the step's random draws -- augmentation, RUL's mixup permutation, dropout -- come from one seeded CPU
generator in both, :class:`CpuRandom`) within a relative tolerance stated in the JSON (bf16, fp16: 5e-2;
float32: 1e-4, or 1e-2 on CUDA while cuDNN may use TF32 convolutions, PyTorch's default);
``cache_on_device`` (``cache_gpu``); ``resume_bit_exact`` (``bf16``, once per method): a run stopped after
its mid-epoch checkpoint at half the steps (``checkpoint_every``) and resumed ends with the same model
``state_dict`` as the uninterrupted run (``torch.equal`` on every entry, NaN matching NaN). Measured, not
checked: images/s of the steps (batch / median step time, the clock synchronised at every step, the first
two steps left out) and peak memory (``torch.cuda.max_memory_allocated`` on CUDA; the process's peak RSS,
reset before each run, on the CPU).

The JSON (default ``benchmarks/results/gpu-check-<gpu name>.json``) names the hardware (GPU, CUDA and
cuDNN versions, TF32 settings, CPU model), the versions, the command, the settings and tolerances; per
method its time and the CPU float32 first-step loss, per variant the settings the trainer resolved, every
step's loss and loss terms, the checks with their numbers, images/s and peak memory; a top-level
``passed`` and ``failures``. Exit status 0 when every check passes, 1 otherwise, with one ``FAIL`` line
per failed check. The time of each method is printed; the full check is meant to finish within 8 minutes
on one H100 (``total_s`` and ``within_budget`` in the JSON).

The faces are rendered once per process (at ``--image-size``, at most 112 px by default, as the renderer's
cost grows with the square of the side; each method's transform resizes them to ``--size`` on the device)
and every run gets a copy; ``--repeat R`` puts each face R times into the training set.

``--dry``: tiny sizes on the CPU in one thread (``resnet10`` at a quarter of its width, 32 px, 8 steps of 16,
each face four times so that 8 steps from random init show the loss falling), what
``tests/benchmarks/test_gpu_check.py`` runs; fp16 is skipped there.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import math
import os
import pickle
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import machine_and_versions, peak_rss_mib

from ferlab.engine.config import TrainConfig
from ferlab.engine.trainer import Trainer, resolve_device

ROOT = Path(__file__).resolve().parents[1]
METHODS = ["baseline", "eac", "rul", "dmue", "lanet", "ldlva"]
#: variant -> trainer settings (and whether torchrun launches it)
VARIANTS = {
    "bf16": {"amp": "bf16", "channels_last": "on", "cache": "ram"},
    "fp16": {"amp": "fp16", "channels_last": "on", "cache": "ram"},
    "fp32_channels_last": {"amp": "off", "channels_last": "on", "cache": "ram"},
    "cache_gpu": {"amp": "bf16", "channels_last": "on", "cache": "gpu"},
    "torchrun": {"amp": "bf16", "channels_last": "on", "cache": "ram", "launcher": "torchrun"},
}
#: relative tolerance of the first step's loss vs the CPU float32 step, per autocast setting
RTOL = {"bf16": 5e-2, "fp16": 5e-2, "off": 1e-4}
RTOL_TF32 = 1e-2
#: full-size and --dry settings
FULL = {"device": "cuda", "size": 224, "image_size": None, "steps": 40, "batch_size": 64, "backbone": "resnet18",
        "backbone_args": {}, "repeat": 1, "lr": None}
#: a quarter-width ResNet-10: DMUE's eight copies of the last stage and its checkpoints stay small on the CPU;
#: each face four times, so that 8 steps from random init show the loss falling
DRY = {"device": "cpu", "size": 32, "image_size": None, "steps": 8, "batch_size": 16, "backbone": "resnet10",
       "backbone_args": {"widths": [16, 32, 64, 128]}, "repeat": 4, "lr": None}
WARMUP_STEPS = 2
#: the full check at 224 px on one H100 is meant to take at most this long (recorded, not a check)
BUDGET_S = 480
#: one epoch: a method's loss weights, per-epoch schedules and sampler shares stay those of its first epoch
EPOCHS = 1
#: random init: DMUE's official head stalls (auxiliary CE at ln(C - 1)), so the check trains the from-scratch
#: head of recipes/dmue/ferplus.yaml's cpu_scratch preset; DMUE's batch filter needs every class twice a batch
METHOD_CONFIG = {"dmue": {"sampler": "stratified",
                          "method_args": {"neck": "none", "classifier_bias": True, "classifier_lr_mult": 1.0}}}


# -- the step's random draws from one CPU generator -----------------------------------------------------
#: random functions :class:`CpuRandom` does not replay (a step using one cannot match the CPU step)
RANDOM_NAMES = {"multinomial", "normal", "poisson", "exponential_", "geometric_", "cauchy_", "log_normal_",
                "random_", "bernoulli_", "randint_like", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
                "feature_alpha_dropout", "rrelu", "native_dropout"}


class CpuRandom(TorchFunctionMode):
    """Inside: ``torch.rand / randn_like / randperm / randint``, ``Tensor.uniform_ / normal_``,
    ``torch.bernoulli`` and ``F.dropout`` draw from one seeded CPU generator (in float32) and move the draws
    to the device the code asked for, so one training step draws the same numbers on any device and in
    any precision. Random functions it does not replay are listed in ``unreplayed``."""

    def __init__(self, seed: int):
        super().__init__()
        self.gen = torch.Generator().manual_seed(seed)
        self.unreplayed: set[str] = set()
        self.handlers = {torch.rand: self._factory, torch.randn: self._factory, torch.randperm: self._factory,
                         torch.randint: self._factory, torch.rand_like: self._like, torch.randn_like: self._like,
                         torch.Tensor.uniform_: self._uniform, torch.Tensor.normal_: self._normal,
                         torch.bernoulli: self._bernoulli, F.dropout: self._dropout}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        handler = self.handlers.get(func)
        if handler is not None:
            return handler(func, *args, **kwargs)
        if getattr(func, "__name__", "") in RANDOM_NAMES:
            self.unreplayed.add(func.__name__)
        return func(*args, **kwargs)

    def _factory(self, func, *args, device=None, dtype=None, generator=None, **kwargs):
        return func(*args, generator=self.gen, **kwargs).to(device=device, dtype=dtype)

    def _like(self, func, x, dtype=None, device=None, **kwargs):
        base = torch.rand if func is torch.rand_like else torch.randn
        draw = base(tuple(x.shape), generator=self.gen, dtype=torch.float32)
        return draw.to(device=device or x.device, dtype=dtype or x.dtype)

    def _uniform(self, func, t, a=0.0, b=1.0, generator=None):
        return t.copy_(torch.empty(tuple(t.shape), dtype=torch.float32).uniform_(a, b, generator=self.gen))

    def _normal(self, func, t, mean=0.0, std=1.0, generator=None):
        return t.copy_(torch.empty(tuple(t.shape), dtype=torch.float32).normal_(mean, std, generator=self.gen))

    def _bernoulli(self, func, x, p=None, generator=None, **kwargs):
        probs = x.detach().float().cpu() if p is None else torch.full(tuple(x.shape), float(p))
        return torch.bernoulli(probs, generator=self.gen).to(x.device, x.dtype)

    def _dropout(self, func, x, p=0.5, training=True, inplace=False):
        if not training or p == 0:
            return func(x, p, training, inplace)
        keep = (torch.rand(tuple(x.shape), generator=self.gen) >= p).to(x.device, x.dtype) / (1 - p)
        return x.mul_(keep) if inplace else x * keep


# -- one run ---------------------------------------------------------------------------------------------
class Interrupted(Exception):
    """Raised to stop a run after a checkpoint (the resume check's "kill")."""


class FirstStepDone(Exception):
    """Raised by the reference run once its first step's loss is known."""


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepProbe:
    """Forward hooks on a trainer's method: every training step's loss, the (synchronised) clock at the
    start of each step with the epoch it belongs to, and the run's first step under :class:`CpuRandom`."""

    def __init__(self, trainer: Trainer, seed: int, first_only: bool = False):
        self.trainer, self.seed, self.first_only = trainer, seed, first_only
        self.losses: list[torch.Tensor] = []
        self.terms: list[dict[str, torch.Tensor]] = []      # the step's other scalar outputs (ce, ...)
        self.starts: list[tuple[float, int, int]] = []      # (clock, epoch, batch size)
        self.mode: CpuRandom | None = None
        self.unreplayed: set[str] = set()
        method = trainer.method
        self.handles = [method.register_forward_pre_hook(self._pre), method.register_forward_hook(self._post)]

    def _pre(self, module, args):
        if not module.training:
            return
        sync(self.trainer.device)
        self.starts.append((time.perf_counter(), len(self.trainer.history), len(args[0]["label"])))
        if self.trainer.global_step == 0:         # the run's first step (not a resumed run's first)
            self.mode = CpuRandom(self.seed)
            self.mode.__enter__()

    def _post(self, module, args, out):
        if self.mode is not None:
            self.mode.__exit__(None, None, None)
            self.unreplayed |= self.mode.unreplayed
            self.mode = None
        if module.training:
            self.losses.append(out["loss"].detach().float())
            self.terms.append({k: v.detach().float() for k, v in out.items()
                               if k != "loss" and torch.is_tensor(v) and v.ndim == 0})
            if self.first_only:
                raise FirstStepDone

    def loss_values(self) -> list[float]:
        return [float(v) for v in self.losses]

    def term_values(self) -> dict[str, list[float]]:
        keys = self.terms[0] if self.terms else {}
        return {k: [float(t[k]) for t in self.terms if k in t] for k in keys}

    def images_per_s(self) -> float | None:
        """Images per second of the steps: batch / median step time, over steps within one epoch after
        the warm-up steps (the clock is synchronised at every step's start)."""
        rows = [(b[0] - a[0], a[2]) for a, b in zip(self.starts, self.starts[1:]) if a[1] == b[1]]
        rows = rows[WARMUP_STEPS:] or rows
        if not rows:
            return None
        times = sorted(t / n for t, n in rows)
        return 1.0 / times[len(times) // 2]

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        with contextlib.suppress(OSError):      # Linux: "5" resets the process's peak RSS (VmHWM)
            Path("/proc/self/clear_refs").write_text("5")


def peak_memory(device: torch.device) -> dict:
    if device.type == "cuda":
        return {"peak_memory_mib": torch.cuda.max_memory_allocated(device) / 2 ** 20,
                "memory": "torch.cuda.max_memory_allocated"}
    return {"peak_memory_mib": peak_rss_mib(), "memory": "process peak RSS (VmHWM, reset before the run)"}


def run_config(method: str, variant: dict, s: dict, work: Path, name: str, device: str | None = None,
               checkpoints: bool = False) -> TrainConfig:
    """The trainer config of one run: ``s`` holds the sizes (:func:`settings`); ``checkpoints``: also a
    mid-epoch checkpoint every ``checkpoint_every`` steps (the resume check's runs)."""
    return TrainConfig(
        name=name, out_dir=str(work), method=method, dataset="synthetic",
        dataset_args={"n": s["faces"], "image_size": s["image_size"]}, limit_train=s["images"],
        val_split=None, test_split=None, backbone=s["backbone"], backbone_args=dict(s["backbone_args"]),
        input_size=s["size"], epochs=EPOCHS, batch_size=s["batch_size"], lr=s["lr"], **METHOD_CONFIG.get(method, {}),
        amp=variant["amp"], channels_last=variant["channels_last"], cache=variant["cache"],
        device=device or s["device"], checkpoint_every=s["checkpoint_every"] if checkpoints else 0, seed=s["seed"],
        progress=False, train_fit_every=0, log_every=max(1, s["steps"]))


def quiet(verbose: bool):
    """The trainer's header and epoch lines go to stdout; kept out of the check's output unless verbose."""
    return contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())


def train_run(cfg: TrainConfig, seed: int, resume: bool = False, stop_after: int | None = None,
              first_only: bool = False, verbose: bool = False) -> dict:
    """One :class:`Trainer` run with a :class:`StepProbe`: losses, images/s, peak memory, final state.
    ``stop_after``: raise :class:`Interrupted` after the first mid-epoch checkpoint at or past that global
    step; ``first_only``: stop once the first step's loss is known."""
    device = resolve_device(cfg.device)
    gc.collect()                     # the previous run's trainer (a reference cycle) and its CUDA tensors
    if device.type == "cuda":
        torch.cuda.empty_cache()
    reset_peak_memory(device)
    t0 = time.perf_counter()
    with quiet(verbose):
        trainer = Trainer(cfg, resume=resume)
        probe = StepProbe(trainer, seed, first_only)
        if stop_after is not None:
            save = trainer.save

            def save_then_stop(epoch, step, best=False):
                save(epoch, step, best)
                if step > 0 and trainer.global_step >= stop_after:
                    raise Interrupted
            trainer.save = save_then_stop
        stopped = False
        try:
            trainer.fit()
        except (Interrupted, FirstStepDone):
            stopped = True
        finally:
            probe.remove()
    sync(device)
    out = {"losses": probe.loss_values(), "terms": probe.term_values(), "images_per_s": probe.images_per_s(),
           **peak_memory(device), "time_s": time.perf_counter() - t0, "stopped": stopped,
           "global_step": trainer.global_step,
           "resolved": {"device": str(trainer.device), "amp": trainer.cfg.amp,
                        "channels_last": trainer.cfg.channels_last, "cache": trainer.cfg.cache,
                        "cache_device": str(trainer.train_set.cache.device), "world_size": trainer.info.world_size,
                        "grad_scaler": trainer.scaler.is_enabled()},
           "first_step_unreplayed_random_ops": sorted(probe.unreplayed)}
    if trainer.scaler.is_enabled():
        out["grad_scale"] = float(trainer.scaler.get_scale())
    if trainer.history:
        out["epoch_images_per_s"] = [h.get("images_per_s") for h in trainer.history]
    out["state"] = {k: v.detach().to("cpu", copy=True) for k, v in trainer.method.state_dict().items()}
    return out


# -- checks ----------------------------------------------------------------------------------------------
def first_step_rtol(amp: str, device: torch.device, override: float | None) -> tuple[float, str]:
    if override is not None:
        return override, "--first-step-rtol"
    if amp == "off" and device.type == "cuda" and torch.backends.cudnn.allow_tf32:
        return RTOL_TF32, "float32 with cuDNN TF32 convolutions allowed (torch.backends.cudnn.allow_tf32)"
    return RTOL[amp], {"bf16": "bf16 autocast", "fp16": "fp16 autocast", "off": "float32"}[amp]


def evaluate(run: dict, variant: str, reference: float | None, rtol: float, device: torch.device) -> dict:
    """The checks of one variant's run (pass flags and their numbers)."""
    losses = run["losses"]
    checks = {"ran": run.get("error") is None and bool(losses)}
    detail = {}
    if losses:
        checks["finite"] = all(math.isfinite(v) for v in losses)
        q = max(1, len(losses) // 4)
        first, last = float(np.mean(losses[:q])), float(np.mean(losses[-q:]))
        detail["falling"] = {"first_quarter_mean": first, "last_quarter_mean": last, "steps_per_quarter": q}
        checks["falling"] = checks["finite"] and last < first
        if reference is not None:
            diff = abs(losses[0] - reference)
            rel = diff / max(abs(reference), 1e-12)
            detail["first_step"] = {"loss": losses[0], "cpu_float32_loss": reference, "abs_diff": diff,
                                    "rel_diff": rel, "rtol": rtol}
            checks["first_step"] = math.isfinite(rel) and rel <= rtol
    if variant == "cache_gpu" and checks["ran"]:
        want = "cuda" if device.type == "cuda" else "cpu"
        checks["cache_on_device"] = run["resolved"]["cache_device"].startswith(want)
    return {"checks": checks, "detail": detail}


def bit_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """``torch.equal``, with NaN equal to NaN at the same places (DMUE's confidence bank holds NaN for the
    samples not drawn yet)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point():
        nan = torch.isnan(a)
        return torch.equal(nan, torch.isnan(b)) and torch.equal(a[~nan], b[~nan])
    return torch.equal(a, b)


def resume_check(method: str, variant: dict, s: dict, work: Path, uninterrupted: dict, verbose: bool) -> dict:
    """Stop a run after its mid-epoch checkpoint at half the steps, resume it, and compare the final model
    state with the uninterrupted run's (:func:`bit_equal` per entry)."""
    cfg = run_config(method, variant, s, work, f"{method}-resume", checkpoints=True)
    stopped = train_run(cfg, s["seed"], stop_after=s["steps"] // 2, verbose=verbose)
    resumed = train_run(cfg, s["seed"], resume=True, verbose=verbose)
    a, b = uninterrupted["state"], resumed["state"]
    differ = sorted(k for k in a if k not in b or not bit_equal(a[k], b[k]))
    n_stop = stopped["global_step"]
    tail_equal = uninterrupted["losses"][n_stop:] == resumed["losses"]
    return {"stopped_at_step": n_stop, "stopped": stopped["stopped"], "resumed_steps": len(resumed["losses"]),
            "state_entries": len(a), "differing_entries": differ[:10], "n_differing": len(differ),
            "losses_after_resume_equal": tail_equal, "bit_exact": stopped["stopped"] and not differ,
            "time_s": stopped["time_s"] + resumed["time_s"]}


# -- the torchrun variant: this script as the worker -------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_all(methods: list[str], s: dict, work: Path, verbose: bool) -> tuple[dict, str]:
    """The ``torchrun`` variant of every method in one ``torch.distributed.run --nproc_per_node=1``
    subprocess (this script with ``--worker``); returns the worker's per-method runs and the command."""
    spec = {"methods": methods, "settings": s, "work": str(work), "faces": str(work / "faces.pkl"),
            "out": str(work / "torchrun.json"), "verbose": verbose, "threads": torch.get_num_threads()}
    (work / "torchrun-spec.json").write_text(json.dumps(spec))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", f"--master_port={free_port()}",
           str(Path(__file__).resolve()), "--worker", str(work / "torchrun-spec.json")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT), check=False)
    shown = "python -m torch.distributed.run --nproc_per_node=1 benchmarks/gpu_check.py --worker SPEC"
    if verbose:
        print(proc.stdout[-5000:], proc.stderr[-5000:])
    if proc.returncode != 0 or not Path(spec["out"]).is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        err = f"torchrun exited {proc.returncode}: {tail[-1] if tail else 'no output'}"
        return {m: {"losses": [], "error": err} for m in methods}, shown
    return json.loads(Path(spec["out"]).read_text()), shown


def worker(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    s, work = spec["settings"], Path(spec["work"])
    torch.set_num_threads(spec["threads"])      # the CPU's arithmetic as in the checking process
    share_faces(s["repeat"], pickle.loads(Path(spec["faces"]).read_bytes()))
    env = {k: os.environ.get(k) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT", "TORCHELASTIC_RUN_ID")}
    results = {}
    for method in spec["methods"]:
        try:
            run = train_run(run_config(method, VARIANTS["torchrun"], s, work, f"{method}-torchrun"), s["seed"],
                            verbose=spec["verbose"])
            run.pop("state")
            run["torchrun_env"] = env
            run["process_group"] = torch.distributed.is_available() and torch.distributed.is_initialized()
        except Exception as e:  # noqa: BLE001 -- recorded as the run's failure; the other methods still run
            run = {"losses": [], "error": one_line(e), "traceback": traceback.format_exc()[-3000:]}
        results[method] = run
    Path(spec["out"]).write_text(json.dumps(results))
    return 0


# -- the synthetic faces, rendered once ------------------------------------------------------------------
FACES: dict = {}


def share_faces(repeat: int = 1, faces: dict | None = None) -> None:
    """Render each synthetic split once per process and hand every run a copy (``subset`` of the rows,
    with its own image cache) in which each face appears ``repeat`` times (rows ``i`` and ``i + n`` are
    the same face): the renderer, not the GPU, would otherwise dominate the check."""
    from ferlab.data import registry
    if faces:
        FACES.update(faces)
    FACES["repeat"] = repeat
    original = registry.DATASETS["synthetic"]
    if getattr(original, "shared_faces", False):
        return

    def synthetic_once(root=None, split="train", **kw):
        key = (split, tuple(sorted(kw.items())))
        if key not in FACES:
            FACES[key] = original(root, split=split, **kw)
        ds = FACES[key]
        return ds.subset(np.arange(len(ds) * FACES["repeat"]) % len(ds))
    synthetic_once.shared_faces = True
    registry.DATASETS["synthetic"] = synthetic_once


# -- the check -------------------------------------------------------------------------------------------
def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".strip()


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def hardware(device: torch.device) -> dict:
    out = machine_and_versions(device)
    gpu = None
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        gpu = {"name": p.name, "memory_gib": p.total_memory / 2 ** 30, "capability": f"{p.major}.{p.minor}",
               "count": torch.cuda.device_count()}
    out["hardware"] = {"device": str(device), "gpu": gpu, "cuda": torch.version.cuda,
                       "cuda_available": torch.cuda.is_available(),
                       "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
                       "cpu_model": out["machine"]["cpu_model"], "tf32": {
                           "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                           "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32}}
    return out


def settings(args) -> dict:
    """The sizes of the check: ``--dry``'s or the full ones, with the options given on top."""
    base = DRY if args.dry else FULL
    s = {k: getattr(args, k, None) if getattr(args, k, None) is not None else v for k, v in base.items()}
    if s["image_size"] is None:
        s["image_size"] = min(s["size"], 112)
    s.update(images=s["steps"] * s["batch_size"], faces=s["steps"] * s["batch_size"] // max(1, s["repeat"]),
             epochs=EPOCHS,
             checkpoint_every=s["steps"] // 2, seed=args.seed, dry=args.dry)
    return s


def check(args) -> int:
    s = settings(args)
    device = resolve_device(s["device"])
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"gpu_check: --device {s['device']}: CUDA is not available (torch {torch.__version__}); "
              f"--dry runs the check on the CPU", file=sys.stderr)
        return 2
    variants = list(args.variants)
    t_start = time.perf_counter()
    own_work = args.work_dir is None
    work = Path(tempfile.mkdtemp(prefix="gpu-check-") if own_work else args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    share_faces(s["repeat"])
    result = {"benchmark": "gpu-check", "command": " ".join(["python", *sys.argv]) if args.argv is None
              else " ".join(["python", "benchmarks/gpu_check.py", *args.argv]),
              **hardware(device), "settings": {**s, "variants": variants, "epochs": EPOCHS,
                                               "warmup_steps": WARMUP_STEPS, "methods": args.methods},
              "variants": {v: VARIANTS[v] for v in variants},
              "tolerances": {"first_step_rtol": {amp: first_step_rtol(amp, device, args.first_step_rtol)[0]
                                                 for amp in ("bf16", "fp16", "off")},
                             "first_step_rtol_basis": {amp: first_step_rtol(amp, device, args.first_step_rtol)[1]
                                                       for amp in ("bf16", "fp16", "off")},
                             "first_step": "|loss - cpu_float32_loss| <= rtol * |cpu_float32_loss| on the first step",
                             "falling": "mean loss of the last quarter of the steps < mean of the first quarter",
                             "resume": "torch.equal on every model state_dict entry (NaN matching NaN)"},
              "methods": {}}
    t_render = time.perf_counter()
    from ferlab.data import build_dataset
    build_dataset("synthetic", None, "train", n=s["faces"], image_size=s["image_size"])
    result["render_s"] = time.perf_counter() - t_render
    print(f"gpu check on {device} ({(result['hardware']['gpu'] or {}).get('name', result['hardware']['cpu_model'])}): "
          f"{', '.join(args.methods)}; {s['backbone']} at {s['size']} px, {s['steps']} steps of {s['batch_size']}; "
          f"faces rendered in {result['render_s']:.1f} s", flush=True)
    for method in args.methods:
        t0 = time.perf_counter()
        entry = {"variants": {}}
        try:
            ref = train_run(run_config(method, {"amp": "off", "channels_last": "off", "cache": "ram"}, s, work,
                                       f"{method}-reference", device="cpu"), s["seed"], first_only=True,
                            verbose=args.verbose)
            entry["cpu_float32_first_step_loss"] = reference = ref["losses"][0]
        except Exception as e:  # noqa: BLE001 -- a failed run is a failed check, the others still run
            entry["reference_error"] = one_line(e)
            reference = None
        for name in variants:
            if name == "torchrun":
                continue
            variant = VARIANTS[name]
            if name == "fp16" and device.type != "cuda":
                entry["variants"][name] = {"skipped": "fp16 autocast is CUDA-only"}
                continue
            try:
                run = train_run(run_config(method, variant, s, work, f"{method}-{name}", checkpoints=name == "bf16"),
                                s["seed"], verbose=args.verbose)
            except Exception as e:  # noqa: BLE001 -- a failed run is a failed check, the others still run
                run = {"losses": [], "error": one_line(e), "traceback": traceback.format_exc()[-3000:]}
            rtol = first_step_rtol(variant["amp"], device, args.first_step_rtol)[0]
            row = {"config": variant, **{k: v for k, v in run.items() if k != "state"},
                   **evaluate(run, name, reference, rtol, device)}
            if name == "cache_gpu" and device.type != "cuda":
                row["note"] = ("cache gpu on the CPU is the RAM cache (the trainer moves the cache only to a CUDA "
                               "device)")
            if name == "bf16" and "state" in run:
                try:
                    row["resume"] = resume_check(method, variant, s, work, run, args.verbose)
                    row["checks"]["resume_bit_exact"] = row["resume"]["bit_exact"]
                except Exception as e:  # noqa: BLE001 -- a failed run is a failed check, the others still run
                    row["resume"] = {"error": one_line(e), "traceback": traceback.format_exc()[-3000:]}
                    row["checks"]["resume_bit_exact"] = False
            if name in ("cache_gpu",) and "bf16" in entry["variants"] and run["losses"]:
                row["losses_equal_to_bf16"] = run["losses"] == entry["variants"]["bf16"]["losses"]
            entry["variants"][name] = row
        entry["time_s"] = time.perf_counter() - t0
        result["methods"][method] = entry
        print(f"{method}: {entry['time_s']:.1f} s  " + "  ".join(
            f"{n} {'skipped' if 'skipped' in r else 'ok' if all(r['checks'].values()) else 'FAIL'}"
            for n, r in entry["variants"].items()), flush=True)
    if "torchrun" in variants:
        t0 = time.perf_counter()
        (work / "faces.pkl").write_bytes(pickle.dumps(dict(FACES)))
        runs, shown = torchrun_all(args.methods, s, work, args.verbose)
        result["torchrun"] = {"command": shown, "wall_s": time.perf_counter() - t0,
                              "note": "WORLD_SIZE 1: the trainer runs in one process (no process group, no DDP "
                                      "wrapper); the launch and the torchrun environment are what this variant checks"}
        for method in args.methods:
            entry = result["methods"][method]
            run = runs.get(method, {"losses": [], "error": "no result from the torchrun worker"})
            rtol = first_step_rtol(VARIANTS["torchrun"]["amp"], device, args.first_step_rtol)[0]
            row = {"config": VARIANTS["torchrun"], **run,
                   **evaluate(run, "torchrun", entry.get("cpu_float32_first_step_loss"), rtol, device)}
            if "bf16" in entry["variants"] and run["losses"]:
                row["losses_equal_to_bf16"] = run["losses"] == entry["variants"]["bf16"].get("losses")
            entry["variants"]["torchrun"] = row
            entry["time_s"] += run.get("time_s", 0.0)
            print(f"{method} torchrun: {run.get('time_s', 0.0):.1f} s  "
                  f"{'ok' if all(row['checks'].values()) else 'FAIL'}", flush=True)
    failures = []
    for method, entry in result["methods"].items():
        if "reference_error" in entry:
            failures.append(f"{method}: the CPU float32 reference step failed: {entry['reference_error']}")
        for name, row in entry["variants"].items():
            for check_name, ok in row.get("checks", {}).items():
                if not ok:
                    failures.append(failure_line(method, name, check_name, row))
        entry["passed"] = not any(f.startswith((f"{method} ", f"{method}:")) for f in failures)
    result["failures"] = failures
    result["passed"] = not failures
    result["total_s"] = time.perf_counter() - t_start
    result["budget_s"] = BUDGET_S
    result["within_budget"] = result["total_s"] <= BUDGET_S
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / (
        f"gpu-check-{slug(result['hardware']['gpu']['name'])}.json" if device.type == "cuda"
        else f"gpu-check-cpu{'-dry' if args.dry else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    if own_work:
        shutil.rmtree(work, ignore_errors=True)
    for line in failures:
        print(f"FAIL {line}")
    n_checks = sum(len(r.get("checks", {})) for e in result["methods"].values() for r in e["variants"].values())
    if not result["within_budget"] and not args.dry:
        print(f"note: the check took {result['total_s']:.0f} s, over its budget of {BUDGET_S} s")
    print(f"gpu check {'passed' if not failures else 'FAILED'}: {n_checks - len(failures)} of {n_checks} checks "
          f"in {result['total_s']:.0f} s; wrote {out}")
    return 0 if not failures else 1


def failure_line(method: str, variant: str, check_name: str, row: dict) -> str:
    d = row.get("detail", {})
    if check_name == "ran":
        why = row.get("error") or "no training step ran"
    elif check_name == "finite":
        why = f"non-finite step loss ({[v for v in row['losses'] if not math.isfinite(v)][:3]})"
    elif check_name == "falling":
        f = d.get("falling", {})
        why = (f"loss not falling (first quarter {f.get('first_quarter_mean', float('nan')):.4f}, "
               f"last quarter {f.get('last_quarter_mean', float('nan')):.4f})")
    elif check_name == "first_step":
        f = d["first_step"]
        why = (f"first-step loss {f['loss']:.6g} vs CPU float32 {f['cpu_float32_loss']:.6g}: relative difference "
               f"{f['rel_diff']:.3g} > rtol {f['rtol']:.3g}")
        if row.get("first_step_unreplayed_random_ops"):
            why += f" (random ops not replayed: {', '.join(row['first_step_unreplayed_random_ops'])})"
    elif check_name == "resume_bit_exact":
        r = row.get("resume", {})
        why = (r["error"] if "error" in r else "the run was not stopped" if not r.get("stopped") else
               f"resumed state differs from the uninterrupted run in {r['n_differing']} entries "
               f"({', '.join(r['differing_entries'][:3])})")
    elif check_name == "cache_on_device":
        why = f"the image cache is on {row['resolved']['cache_device']}"
    else:
        why = "failed"
    return f"{method} {variant}: {check_name}: {why}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", help="the device checked (default cuda; cpu with --dry)")
    ap.add_argument("--size", type=int, help="network input in px (default 224; 32 with --dry)")
    ap.add_argument("--image-size", type=int,
                    help="side of the rendered synthetic faces (default: --size, at most 112; each method's "
                         "transform resizes them to --size)")
    ap.add_argument("--steps", type=int, help="optimizer steps of every run, one epoch (default 40; 8 with --dry)")
    ap.add_argument("--batch-size", type=int, help="batch size (default 64; 16 with --dry)")
    ap.add_argument("--backbone", help="a registered backbone, randomly initialised (default resnet18; with --dry "
                                       "resnet10 at a quarter of its width, backbone_args widths [16, 32, 64, 128])")
    ap.add_argument("--repeat", type=int, help="each rendered face appears this many times in the training set "
                                               "(default 1; 4 with --dry)")
    ap.add_argument("--lr", type=float, help="base learning rate of every run (default: each method's own)")
    ap.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS, help="methods to check (default all)")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                    help="variants to run (default all; the resume check belongs to bf16)")
    ap.add_argument("--out", help="the JSON (default benchmarks/results/gpu-check-<gpu name>.json; "
                                  "gpu-check-cpu-dry.json with --dry)")
    ap.add_argument("--dry", action="store_true", help="tiny sizes on the CPU: the same code paths, in about a minute")
    ap.add_argument("--first-step-rtol", type=float,
                    help="one relative tolerance of the first-step comparison for every precision (default: "
                         "5e-2 bf16/fp16, 1e-4 float32; 1e-2 float32 with TF32 convolutions)")
    ap.add_argument("--seed", type=int, default=0, help="seed of every run (default 0)")
    ap.add_argument("--work-dir", help="where the runs are written (default: a temporary folder, removed after)")
    ap.add_argument("--verbose", action="store_true", help="show the trainer's output")
    ap.add_argument("--worker", metavar="SPEC", help="internal: run the torchrun variant described by SPEC "
                                                     "(the check launches this under torchrun itself)")
    args = ap.parse_args(argv)
    args.argv = None if argv is None else list(argv)
    if args.worker:
        return worker(args.worker)
    s = settings(args)
    if s["steps"] < 8:
        ap.error(f"--steps {s['steps']}: give at least 8 (the first quarter of the steps is compared with the last)")
    if s["batch_size"] < 1 or s["repeat"] < 1 or s["images"] % s["repeat"]:
        ap.error(f"--batch-size {s['batch_size']} --repeat {s['repeat']}: the repeat must divide steps x batch size")
    from ferlab.data import registry
    threads, synthetic = torch.get_num_threads(), registry.DATASETS["synthetic"]
    if args.dry:          # tiny tensors: one thread, which also keeps a busy machine's cores free
        torch.set_num_threads(1)
    try:
        return check(args)
    finally:              # the check shares its rendered faces through the registry: give it back as it was
        torch.set_num_threads(threads)
        registry.DATASETS["synthetic"] = synthetic
        FACES.clear()


if __name__ == "__main__":
    sys.exit(main())
