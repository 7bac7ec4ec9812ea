"""fit / evaluate / resume for any Method: AMP, channels_last, DDP, progress, logging.

Run directory (``<out_dir>/<name>/``): ``config.yaml``, ``noise.json``,
``metrics.jsonl`` (one line per epoch) and ``metrics.csv`` (the same rows), ``tensorboard/``
(with ``tensorboard: true``), ``checkpoints/last.pt`` (full state), ``checkpoints/best.pt`` (the
same state at the epoch of best validation accuracy, when the run has a validation split) and
``summary.json`` (protocol numbers, class names).

Checkpoints: every epoch end, every ``checkpoint_every`` steps or minutes inside an epoch, and at the
step where SIGTERM / SIGUSR1 / a first Ctrl-C stops the run (:mod:`.preemption`: exit status 128 +
the signal's number). A file that cannot be written (full disk, no permission, read-only file system)
is a one-line :class:`~ferlab.errors.WriteError` naming it; the previous file stays as it was.
"""
from __future__ import annotations

import dataclasses
import json
import math
import random
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ..data import DatasetError, build_dataset
from ..data.faces import training_framing
from ..data.noise import save_manifest
from ..data.samplers import epoch_order
from ..errors import CheckpointError, ConfigError, UserError, WriteError
from ..methods import build_method, method_class
from ..models import create_backbone
from ..progress import progress_bar, write_line
from . import checkpoint as ckpt
from .config import TrainConfig
from .config_check import checkpoint_interval
from .distributed import all_gather_objects, barrier, broadcast_buffers, cleanup, init_distributed
from .divergence import TrainingDiverged, diverged, nonfinite_state
from .inference import predict_dataset
from .metrics import classification_report, train_fit_report
from .neighbors import checkpoint_features
from .optim import PER_STEP_SCHEDULERS, build_optimizer, build_scheduler
from .precision import amp_dtype, autocast, describe_precision, dtype_name, set_deterministic, use_channels_last
from .preemption import STOP_SIGNALS, RankAgreement, StopSignals, TrainingStopped, signal_name
from .protocol import summarize
from .run_data import build_eval_set, build_train_set, eval_dataset_args, has_split
from .run_lock import RunLock, check_free, describe
from .run_log import RunLog, format_epoch_line
from .run_model import load_run_method, method_from_state, resolve_device, run_classes  # noqa: F401 (re-export)


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python's, NumPy's and torch's global generators with ``seed`` and switch PyTorch's
    deterministic algorithms on or off (:func:`~ferlab.engine.precision.set_deterministic`)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    set_deterministic(deterministic)


def steps_per_epoch(n: int, per_rank: int, drop_last: bool) -> int:
    """Optimizer steps of an epoch over this rank's ``n`` samples in batches of ``per_rank``: the
    last partial batch is one more step unless ``drop_last`` (LA-Net's official loader drops it)."""
    return n // per_rank if drop_last else math.ceil(n / per_rank)


class Trainer:
    """Build everything from a :class:`TrainConfig` and run ``fit()``.

    The constructor validates the config, resolves the method's defaults, checks that the run
    directory is free (and, with ``resume``, that it has ``checkpoints/last.pt``), seeds, builds the
    datasets (decoded into memory), the backbone, the method, the optimizer and the schedule;
    nothing is written into the run directory before :meth:`fit`. Under torchrun each process
    builds its own ``Trainer``.

    Args:
        cfg: The run's config (validated in place).
        resume: Continue the run from ``<run_dir>/checkpoints/last.pt`` in :meth:`fit`.

    Raises:
        ConfigError: A bad config, or a device that is not there.
        CheckpointError: ``resume`` without a checkpoint.
        RunLockedError: Another live process trains in the run directory.

    Attributes:
        cfg: The resolved config (the method's defaults filled in, ``amp`` and ``channels_last``
            as resolved on the device).
        method: The :class:`~ferlab.methods.base.Method` being trained (on ``device``).
        model: ``method``, or its ``DistributedDataParallel`` wrapper under torchrun.
        device: The ``torch.device`` the method and batches live on.
        info: The :class:`~ferlab.engine.distributed.DistInfo` of this process.
        train_set: The training :class:`~ferlab.data.base.FERDataset` as it trains (noisy labels
            in ``labels``, the originals in ``clean_labels`` when noise was injected).
        eval_sets: ``{"val": dataset, "test": dataset}``, the splits the run has, with clean labels.
        num_classes: C.
        noise_manifest: What the injected noise did (kind, rate, seed, realised rate, ...), or
            ``None`` without noise.
        optimizer: The ``torch.optim.Optimizer`` over ``method.param_groups(cfg.lr)``.
        scheduler: The learning-rate scheduler.
        run_dir: ``<out_dir>/<run name>``.
        ckpt_path: ``<run_dir>/checkpoints/last.pt``.
        best_path: ``<run_dir>/checkpoints/best.pt``.
        history: One dict per finished epoch (``epoch``, ``lr``, the method's losses,
            ``train_acc``, ``time_s``, ``images_per_s``, ``val_acc`` / ``test_acc`` and their
            ``*_mean_class_acc``, the method's ``epoch_stats``, ``train_fit`` when measured): the
            rows of ``metrics.jsonl``.
        global_step: Optimizer steps taken.
    """

    def __init__(self, cfg: TrainConfig, resume: bool = False):
        cfg.validate()
        if resolve_device(cfg.device).type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {cfg.device}: CUDA is not available to this torch ({torch.__version__}); "
                              f"use --device cpu, or auto")
        self.info = init_distributed(resolve_device(cfg.device).type)
        self.device = resolve_device(cfg.device)
        if self.device.type == "cuda" and self.info.enabled:
            self.device = torch.device("cuda", self.info.local_rank)
        self.default_sources = cfg.default_sources(method_class(cfg.method).defaults)
        self.cfg = cfg.resolved(method_class(cfg.method).defaults).validate()
        self.resume = resume
        self.run_dir = Path(self.cfg.out_dir) / self.cfg.run_name()
        self.ckpt_path = self.run_dir / "checkpoints" / "last.pt"
        self.best_path = self.run_dir / "checkpoints" / "best.pt"
        self.lock: RunLock | None = None
        self.last_saved: tuple[int, int] | None = None     # (epoch, step_in_epoch) of this run's last.pt
        self._check_run_dir()
        seed_everything(self.cfg.seed, self.cfg.deterministic)
        self.amp = amp_dtype(self.cfg.amp, self.device)
        self.channels_last = use_channels_last(self.cfg.channels_last, self.device, self.amp)
        # the run's config records what auto resolved to on the computer that runs it
        self.cfg.amp, self.cfg.channels_last = dtype_name(self.amp), "on" if self.channels_last else "off"
        self._build_data()
        self._build_model()
        self.history: list[dict] = []
        self.start_epoch, self.start_step, self.global_step = 0, 0, 0
        self.epoch_acc: dict = {}
        self.every_steps, self.every_seconds = checkpoint_interval(self.cfg.checkpoint_every)
        self.clock = time.monotonic          # of time-based checkpoints (rank 0's decides)
        self.last_save_time = self.clock()
        self.stops = StopSignals()           # installed while fit() runs
        self.agree = RankAgreement(self.info.enabled, self.device)

    # -- construction -----------------------------------------------------------
    def log(self, msg: str) -> None:
        """Print ``msg`` on rank 0 (between progress bars, which stay intact)."""
        if self.info.is_main:
            write_line(msg)

    def _on_rank0(self, check) -> None:
        """Run ``check()`` on rank 0 and raise its :class:`UserError` on every rank (so that no rank
        waits at a collective for a rank that stopped); ``ferlab`` prints it once, from rank 0."""
        err = None
        if self.info.is_main:
            try:
                check()
            except UserError as e:
                err = e
        err = all_gather_objects(err, self.info)[0]
        if err is not None:
            cleanup(self.info)
            err.quiet = not self.info.is_main      # one line per torchrun job: rank 0's
            raise err

    def _check_run_dir(self) -> None:
        """Before any data is read: the run directory is not held by another live process, and
        ``resume`` has a checkpoint to resume."""
        def check():
            check_free(self.run_dir)
            if self.resume and not self.ckpt_path.is_file():
                out = Path(self.cfg.out_dir)
                others = sorted(p.parent.parent.name for p in out.glob("*/checkpoints/last.pt"))[:6] \
                    if out.is_dir() else []
                raise CheckpointError(
                    f"--resume: no checkpoint at {self.ckpt_path} ("
                    + ("the run directory has none" if self.run_dir.is_dir() else "no such run directory")
                    + f"); the run name is {self.cfg.run_name()!r} (--name, --out-dir)"
                    + (f"; runs with a checkpoint in {out}: {', '.join(others)}" if others else "")
                    + "; leave out --resume to start a new run")
        self._on_rank0(check)

    def _build_data(self) -> None:
        cfg = self.cfg
        self.train_set, self.noise_manifest = build_train_set(cfg)
        self.eval_sets = {}
        for which in ("val", "test"):
            ds = build_eval_set(cfg, which)
            if ds is not None:
                self.eval_sets[which] = ds
        if "val" not in self.eval_sets and cfg.val_split:
            self.log(f"note: {cfg.dataset} has no split {cfg.val_split!r}"
                     f"{' under ' + str(cfg.data_root) if cfg.data_root else ''}: training without validation "
                     f"(no best checkpoint, no at-best-val number); --val-fraction F holds out F of the training split")
        self.num_classes = self.train_set.num_classes
        for ds in [self.train_set, *self.eval_sets.values()]:
            if ds.classes != self.train_set.classes:
                raise DatasetError(f"{ds.name} classes {ds.classes} differ from training classes "
                                   f"{self.train_set.classes}")
            ds.preload(progress=cfg.progress and self.info.is_main)
            if cfg.cache == "gpu" and self.device.type == "cuda":
                ds.cache.to(self.device)
        # how the training images are framed and coloured: the predictor cuts faces from photos the same way
        self.framing = training_framing(cfg.dataset, self.train_set)

    def _build_model(self) -> None:
        cfg = self.cfg
        backbone = create_backbone(cfg.backbone, weights=cfg.weights, num_classes=self.num_classes,
                                   min_match=cfg.min_weight_match, verbose=self.info.is_main, **cfg.backbone_args)
        if cfg.input_size < backbone.min_input_size:
            raise ConfigError(f"input_size {cfg.input_size} is below the minimum input of {cfg.backbone} "
                              f"{cfg.backbone_args or ''}: {backbone.min_input_size} px")
        mean, std = cfg.normalisation(backbone.pretrained_cfg)
        try:       # a method checks its arguments (and what it needs from the data) when it is built
            self.method = build_method(cfg.method, backbone, self.num_classes, input_size=cfg.input_size,
                                       mean=mean, std=std, augment=cfg.augment, **cfg.method_args)
            self.method.to(self.device)
            served = self.method.run_features_checkpoint()     # LDLVA's space_checkpoint
            if served is None:
                self.method.setup_train(self.train_set)
            else:       # on the CPU, as always: the same neighbour lists on every device and rank
                self.method.setup_train(self.train_set, run_features=checkpoint_features(
                    served, self.train_set, device="cpu", progress=False,
                    amp="off" if cfg.amp == "off" else "auto"))
        except ValueError as e:
            if isinstance(e, UserError):
                raise
            raise ConfigError(f"method {cfg.method} (method_args, augment): {e}") from e
        if self.channels_last:
            self.method.to(memory_format=torch.channels_last)
        self.model = self.method
        if self.info.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            unused = getattr(self.method, "find_unused_parameters", False)
            self.model = torch.nn.parallel.DistributedDataParallel(self.method, device_ids=ids,
                                                                   find_unused_parameters=unused)
        self.optimizer = build_optimizer(self.method.param_groups(cfg.lr), cfg)
        per_rank = max(1, cfg.batch_size // self.info.world_size)
        steps = steps_per_epoch(len(self.train_set) // self.info.world_size, per_rank, cfg.drop_last)
        if cfg.drop_last and not steps:
            raise ConfigError(f"drop_last: {len(self.train_set) // self.info.world_size} training images per "
                              f"process fill no batch of {per_rank}; lower batch_size or set drop_last: false")
        self.scheduler = build_scheduler(self.optimizer, cfg, steps)
        self.per_step_schedule = cfg.scheduler in PER_STEP_SCHEDULERS
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp == torch.float16)

    # -- state ------------------------------------------------------------------
    def state_dict(self, epoch: int, step: int) -> dict:
        """The full checkpoint state at ``step`` steps into epoch ``epoch`` (0-based; ``step`` 0 with
        ``epoch`` e: e epochs done): model, optimizer, scheduler, gradient scaler, generator states,
        history, config, classes, image size and the (noisy) training labels."""
        return {"model": self.method.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "epoch": epoch, "step_in_epoch": step, "global_step": self.global_step, "rng": ckpt.rng_state(),
                "history": self.history, "epoch_acc": self.epoch_acc, "config": self.cfg.to_dict(),
                "num_classes": self.num_classes, "classes": list(self.train_set.classes),
                "image_size": self.train_set.image_size, "framing": self.framing,
                "labels": torch.from_numpy(self.train_set.labels)}

    def save(self, epoch: int, step: int, best: bool = False) -> None:
        """Checkpoint to ``last.pt``; ``best``: the same state to ``best.pt`` too (both atomic).
        A state holding NaN/inf is never saved (:meth:`_check_state`); a file that cannot be written
        is a :class:`~ferlab.errors.WriteError` on every rank."""
        self._check_state(epoch, step)

        def write():
            state = self.state_dict(epoch, step)
            try:
                ckpt.save_atomic(state, self.ckpt_path)
                if best:
                    ckpt.save_atomic(state, self.best_path)
            except WriteError as e:
                if self.last_saved is None or not self.ckpt_path.is_file():
                    raise
                raise WriteError(f"{e}; {self.ckpt_path.name} holds the {ckpt.position(*self.last_saved)}: "
                                 f"--resume continues from there once the file can be written",
                                 e.errno, e.filename) from e
        self._on_rank0(write)
        self.last_saved = (epoch, step)
        self.last_save_time = self.clock()

    def _is_best(self, row: dict) -> bool:
        """The epoch of ``row`` has the best validation accuracy so far (the first one on ties,
        as the protocol's ``best_val``)."""
        if row.get("val_acc") is None:
            return False
        earlier = [h["val_acc"] for h in self.history[:-1] if h.get("val_acc") is not None]
        return not earlier or row["val_acc"] > max(earlier)

    def settings(self) -> str:
        """The resolved key settings, printed when a run starts."""
        cfg, src = self.cfg, self.default_sources
        official = ", ".join(f"{k} {getattr(cfg, k)} ({v} default)" for k, v in src.items()
                             if k in ("lr", "epochs", "batch_size", "optimizer", "scheduler", "weight_decay"))
        groups = ", ".join(f"{g['lr']:g} ({sum(p.numel() for p in g['params']) / 1e6:.2f}M params)"
                           for g in self.optimizer.param_groups)
        noise = "none" if cfg.noise == "none" else (
            f"{cfg.noise} {cfg.noise_rate:g} (seed {cfg.noise_seed}"
            + (f", file {cfg.noise_file}" if cfg.noise_file else "") + ")")
        val = (f"hold-out {cfg.val_fraction:g} of train (seed {cfg.seed})" if cfg.val_fraction
               else cfg.val_split if "val" in self.eval_sets else "none")
        lines = [f"method      {cfg.method} {cfg.method_args or ''}".rstrip(),
                 f"backbone    {cfg.backbone}, weights {cfg.weights or 'none (random init)'}, "
                 f"input {cfg.input_size} px",
                 f"data        {cfg.dataset} {self.train_set.name}: {len(self.train_set)} train images, "
                 f"{self.num_classes} classes {list(self.train_set.classes)}; val {val}; "
                 f"test {cfg.test_split if 'test' in self.eval_sets else 'none'}",
                 f"schedule    epochs {cfg.epochs}, batch {cfg.batch_size}, {cfg.optimizer} lr per group {groups}, "
                 f"weight decay {cfg.weight_decay:g}, scheduler {cfg.scheduler}, sampler {cfg.sampler}",
                 f"noise       {noise}",
                 f"device      {self.device}{' x' + str(self.info.world_size) if self.info.enabled else ''}, "
                 f"seed {cfg.seed}",
                 f"precision   {describe_precision(self.device, self.amp, self.channels_last)}",
                 f"run         {self.run_dir}",
                 f"checkpoint  {self.ckpt_path.name} at every epoch end"
                 + (f", every {self.every_steps} steps" if self.every_steps else "")
                 + (f", every {cfg.checkpoint_every}" if self.every_seconds else "")
                 + f"; {' / '.join(signal_name(n) for n in STOP_SIGNALS)}: at the current step, then stop "
                   f"(exit {' / '.join(str(128 + n) for n in STOP_SIGNALS)})"]
        if official:
            lines.append(f"defaults    {official}")
        return "\n".join(lines)

    def load(self, path: Path) -> None:
        """Restore a checkpoint written by :meth:`save` to continue training from its position.

        Raises:
            CheckpointError: The file cannot be read, or does not fit this run (config, model,
                training labels).
        """
        state = ckpt.load_run_state(path, ckpt.RUN_KEYS)
        ckpt.check_resumable(state, path, self.cfg, self.method, self.train_set.labels)
        self.method.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.start_epoch, self.start_step = state["epoch"], state["step_in_epoch"]
        self.global_step = state["global_step"]
        self.history = list(state["history"])
        self.epoch_acc = dict(state["epoch_acc"])
        ckpt.set_rng_state(state["rng"])
        self.last_saved = (self.start_epoch, self.start_step)
        saved = tuple(state["config"].get(k) for k in ("amp", "channels_last"))
        if saved[0] in ("bf16", "fp16", "off") and saved != (self.cfg.amp, self.cfg.channels_last):
            self.log(f"note: {path} was trained with amp {saved[0]}, channels_last {saved[1]}; it continues with "
                     f"amp {self.cfg.amp}, channels_last {self.cfg.channels_last} (not bit-identical to an "
                     f"uninterrupted run; --amp / --channels-last choose)")
        self.log(f"resumed {path} from its {ckpt.position(self.start_epoch, self.start_step)}")

    # -- loops ------------------------------------------------------------------
    def evaluate(self, split: str) -> dict:
        """:func:`~ferlab.engine.metrics.classification_report` of the method on ``eval_sets[split]``
        (``"val"`` or ``"test"``)."""
        ds = self.eval_sets[split]
        preds = predict_dataset(self.method, ds, self.device, self.cfg.eval_batch_size, self.info, self.amp,
                                self.channels_last, self.cfg.progress, desc=f"eval {split}")
        return classification_report(ds.labels, preds, self.num_classes)

    def train_fit(self) -> dict | None:
        """How the method fits its noisy training set (:func:`~ferlab.engine.metrics.train_fit_report`);
        ``None`` when the training set has no clean labels to compare with."""
        ds = self.train_set
        if ds.clean_labels is None:
            return None
        preds = predict_dataset(self.method, ds, self.device, self.cfg.eval_batch_size, self.info, self.amp,
                                self.channels_last, self.cfg.progress, desc="eval train")
        return train_fit_report(preds, ds.labels, ds.clean_labels)

    @property
    def _min_per_class(self) -> int:
        return int(getattr(self.method, "min_per_class", 0))

    def _batch_ok(self, labels: torch.Tensor) -> bool:
        """A method's batch filter (DMUE: every class at least ``min_per_class`` times in the
        local batch); the decision is all-reduced, so one short rank skips the step on all."""
        need = self._min_per_class
        if not need:
            return True
        ok = torch.bincount(labels, minlength=self.num_classes).min() >= need
        ok = ok.to(torch.int32).reshape(1)
        if self.info.enabled:
            torch.distributed.all_reduce(ok, op=torch.distributed.ReduceOp.MIN)
        return bool(ok.item())

    def _diverged(self, what: str, where: str) -> TrainingDiverged:
        return diverged(what, where, self.ckpt_path, self.last_saved, fp16=self.amp == torch.float16)

    def _check_finite(self, sums: dict, epoch: int, step: int, steps: int | None = None) -> None:
        loss = float(sums["loss"])
        if not math.isfinite(loss):
            raise self._diverged(f"the running loss is {loss}", ckpt.position(epoch, step + 1, steps))

    def _check_state(self, epoch: int, step: int) -> None:
        """Before any save, on every rank (one rank's verdict stops all): the model and optimizer
        state must be finite, so that the last good checkpoint is never overwritten."""
        bad = all_gather_objects(nonfinite_state(self.method, self.optimizer), self.info)
        bad = next((b for b in bad if b is not None), None)
        if bad is not None:
            raise self._diverged(f"{bad} holds NaN/inf", ckpt.position(epoch, step))

    def _decide(self, synced: bool) -> tuple[int, bool]:
        """After a step: (the signal that stops the run, 0 if none; whether a time-based checkpoint
        is due), the same on every rank. Outside torchrun every step; under it every step on the
        CPU (gloo), and on GPUs at the steps whose loss is read anyway (``synced``: every
        ``log_every`` steps), so that no step waits for the GPU only to ask."""
        if self.info.enabled and self.device.type == "cuda" and not synced:
            return 0, False
        due = bool(self.every_seconds) and self.info.is_main and \
            self.clock() - self.last_save_time >= self.every_seconds
        return self.agree(self.stops.signum, due)

    def _stopped(self, signum: int, epoch: int, step: int, steps: int | None = None) -> TrainingStopped:
        """The exception that ends a run stopped by ``signum`` after checkpointing ``(epoch, step)``."""
        where = ckpt.position(epoch, step, steps)
        where = f"the {where}" if step == 0 else where
        return TrainingStopped(f"stopped by {signal_name(signum)} at {where}; checkpoint {self.ckpt_path}; "
                               f"--resume continues", signum, self.ckpt_path, where, quiet=not self.info.is_main)

    def _rank_acc(self) -> dict:
        """This rank's running sums of the epoch a mid-epoch checkpoint stopped in (``epoch_acc``:
        one process's, or ``{"ranks": [...]}`` of a torchrun job). Resumed with another number of
        processes, rank 0 carries the sums of all."""
        acc = self.epoch_acc
        ranks = acc.get("ranks", [acc])
        if len(ranks) == self.info.world_size:
            return ranks[self.info.rank]
        if self.info.rank != 0:
            return {}
        merged = {"sums": {}, "correct": 0, "seen": 0, "skipped": 0}
        for r in ranks:
            for k, v in r.get("sums", {}).items():
                merged["sums"][k] = merged["sums"].get(k, 0.0) + v
            for k in ("correct", "seen", "skipped"):
                merged[k] += r.get(k, 0)
        return merged

    def train_epoch(self, epoch: int) -> dict:
        """Train one epoch (0-based ``epoch``; a resumed run starts inside it at ``start_step``),
        checkpointing when due or when a stop signal arrives.

        Returns:
            The epoch's row: the mean over samples of each scalar the method's ``training_step``
            returns (``loss``, ...), ``train_acc``, ``time_s``, ``images_per_s`` (and
            ``skipped_batches`` for methods with a batch filter), summed over ranks.

        Raises:
            TrainingStopped: A stop signal ended the run after checkpointing.
            TrainingDiverged: The running loss became NaN/inf.
        """
        cfg = self.cfg
        per_rank = max(1, cfg.batch_size // self.info.world_size)
        order = epoch_order(len(self.train_set), cfg.seed, epoch, self.info.rank, self.info.world_size, cfg.sampler,
                            self.train_set.labels, per_rank, total_epochs=cfg.epochs)
        steps = steps_per_epoch(len(order), per_rank, cfg.drop_last)
        self.method.train()
        self.method.on_epoch_start(epoch)
        start = self.start_step if epoch == self.start_epoch else 0
        acc = self._rank_acc() if start else {}
        sums = {k: torch.as_tensor(v, device=self.device) for k, v in acc.get("sums", {}).items()}
        correct = torch.as_tensor(acc.get("correct", 0), device=self.device)
        seen, t0 = acc.get("seen", 0), time.time()
        skipped = acc.get("skipped", 0)
        images = 0
        bar = progress_bar(range(start, steps), total=steps, initial=start, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   disable=not (cfg.progress and self.info.is_main), leave=False)
        for step in bar:
            batch = self.train_set.get_batch(order[step * per_rank:(step + 1) * per_rank])
            batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
            if self._batch_ok(batch["label"]):
                with autocast(self.device, self.amp):
                    out = self.model(batch)
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(out["loss"]).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
                if self.per_step_schedule:
                    self.scheduler.step()
                self.global_step += 1
                n = len(batch["label"])
                for k, v in out.items():
                    if k != "logits" and torch.is_tensor(v) and v.ndim == 0:
                        sums[k] = sums.get(k, 0) + v.detach().float() * n
                if "logits" in out:
                    correct = correct + (out["logits"].argmax(1) == batch["label"]).sum()
                seen += n
                images += n
            else:
                skipped += 1
            logged = (step + 1) % cfg.log_every == 0 or step + 1 == steps
            if logged and seen:
                self._check_finite(sums, epoch, step, steps)
                bar.set_postfix(loss=f"{float(sums['loss']) / seen:.4f}")
            stop, due = self._decide(logged)
            periodic = bool(self.every_steps) and (step + 1) % self.every_steps == 0
            if stop or ((periodic or due) and step + 1 < steps):
                if seen:
                    self._check_finite(sums, epoch, step, steps)
                acc = {"sums": {k: float(v) for k, v in sums.items()}, "correct": int(correct), "seen": seen,
                       "skipped": skipped}
                # every rank's running sums: each continues its own on resume
                self.epoch_acc = {"ranks": all_gather_objects(acc, self.info)} if self.info.enabled else acc
                self.save(epoch, step + 1)
                if stop:
                    bar.close()
                    raise self._stopped(stop, epoch, step + 1, steps)
        bar.close()
        dt = time.time() - t0
        # sum the per-rank statistics
        stats = all_gather_objects(({k: float(v) for k, v in sums.items()}, int(correct), seen), self.info)
        if self._min_per_class:
            if skipped > 0.01 * steps:
                self.log(f"warning: {skipped} of {steps} batches skipped in epoch {epoch + 1} (fewer than "
                         f"{self._min_per_class} samples of some class; use sampler: stratified)")
        total = sum(s[2] for s in stats)
        row = {k: sum(s[0][k] for s in stats) / max(total, 1) for k in stats[0][0]}
        row["train_acc"] = sum(s[1] for s in stats) / max(total, 1)
        row["time_s"] = dt
        row["images_per_s"] = images * self.info.world_size / max(dt, 1e-9)
        if self._min_per_class:
            row["skipped_batches"] = skipped
        self.epoch_acc = {}
        return row

    def fit(self) -> dict:
        """Train to ``cfg.epochs`` and return the summary, holding the run directory's lock
        (:mod:`.run_lock`) from before the first write into it until the end."""
        self._take_lock()
        try:
            with self.stops:
                try:
                    return self._fit()
                except Exception as e:
                    if self.stops.requested and not isinstance(e, UserError):
                        raise self._stopped_without_checkpoint(e) from e
                    raise
        finally:
            if self.lock is not None:
                self.lock.release()
                self.lock = None

    def _stopped_without_checkpoint(self, error: Exception) -> TrainingStopped:
        """A stop signal arrived and training then failed before it could checkpoint (under torchrun:
        another process of the job is gone, so the collectives of the save fail)."""
        signum = self.stops.signum
        first = (str(error).splitlines() or ["-"])[0][:160]
        saved = (f"{self.ckpt_path} holds the {ckpt.position(*self.last_saved)}; --resume continues from there"
                 if self.last_saved is not None and self.ckpt_path.is_file() else "no checkpoint was written yet")
        return TrainingStopped(f"stopped by {signal_name(signum)} before the current step could be checkpointed "
                               f"({type(error).__name__}: {first}); {saved}", signum, self.ckpt_path,
                               quiet=not self.info.is_main)

    def _take_lock(self) -> None:
        def take():
            self.lock = RunLock(self.run_dir).acquire()
            if self.lock.took_over:
                self.log(f"note: {self.lock.path} was left by {describe(self.lock.took_over)}, which is gone "
                         f"(killed?); taking the run directory over")
            for folder in (self.run_dir, self.ckpt_path.parent):
                for f in ckpt.remove_stale_temp_files(folder):
                    self.log(f"note: removed {f}, a temporary file of a save that was interrupted")
        self._on_rank0(take)

    def _fit(self) -> dict:
        cfg = self.cfg
        if self.resume and self.ckpt_path.is_file():    # first: a checkpoint that does not fit changes no file
            self.load(self.ckpt_path)
        def prepare():
            cfg.save_yaml(self.run_dir / "config.yaml")
            if self.noise_manifest is not None:
                save_manifest(self.noise_manifest, self.run_dir / "noise.json")
            if not self.resume:       # a fresh run: no logs or best.pt of an earlier one
                if self.ckpt_path.is_file():
                    self.log(f"note: {self.run_dir} held an earlier run; starting it over "
                             f"(--resume continues a run, --name picks another directory)")
                try:
                    RunLog.clear(self.run_dir)
                    self.best_path.unlink(missing_ok=True)
                except OSError as e:
                    raise WriteError(f"{e.filename or self.run_dir}: cannot remove it (an earlier run's file): "
                                     f"{e.strerror}", e.errno, e.filename) from e
        self._on_rank0(prepare)      # every rank waits for rank 0 here, and raises its error
        self.last_save_time = self.clock()
        self.log(self.settings())
        run_log = RunLog(self.run_dir, cfg.tensorboard) if self.info.is_main else None
        try:
            for epoch in range(self.start_epoch, cfg.epochs):
                row = {"epoch": epoch + 1, "lr": self.optimizer.param_groups[0]["lr"]}
                row.update(self.train_epoch(epoch))
                row.update(self.method.epoch_stats())
                if not self.per_step_schedule:
                    with warnings.catch_warnings():    # resumed after an epoch's last step: no optimizer step yet here
                        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
                        self.scheduler.step()
                broadcast_buffers(self.method, self.info)
                for split in self.eval_sets:
                    rep = self.evaluate(split)
                    row[f"{split}_acc"], row[f"{split}_mean_class_acc"] = rep["acc"], rep["mean_class_acc"]
                if cfg.train_fit_every and (epoch + 1) % cfg.train_fit_every == 0:
                    row["train_fit"] = self.train_fit()
                self.history.append(row)
                self.start_step = 0
                self.save(epoch + 1, 0, best=self._is_best(row))

                def log_epoch(row=row):
                    run_log.append(row, self.history)
                    self.log(format_epoch_line(row))
                self._on_rank0(log_epoch)
                stop, _ = self.agree(self.stops.signum, False)    # noted during the evaluation
                if stop:
                    raise self._stopped(stop, epoch + 1, 0)
            summary = self.summarize()
            # every rank reaches the teardown together: a rank destroying the gloo group while its peer
            # is still writing the summary aborted at exit once ("terminate called without an active exception")
            barrier(self.info)
        finally:
            if run_log is not None:
                run_log.close()
            cleanup(self.info)
        return summary

    def summarize(self) -> dict:
        """The run's summary, also written to ``summary.json``: ``run``, ``method``, ``dataset``,
        ``classes``, ``protocol`` (:func:`~ferlab.engine.protocol.summarize` of the history),
        ``val`` (last and best validation accuracy, best epoch and checkpoint), ``test_last`` (a
        test report of the final model), ``train_fit`` and ``noise``."""
        summary = {"run": str(self.run_dir), "method": self.cfg.method, "dataset": self.train_set.name,
                   "classes": list(self.train_set.classes),
                   "protocol": summarize(self.history, self.cfg.mean_last_k)}
        val_key = summarize(self.history, self.cfg.mean_last_k, key="val_acc") if "val" in self.eval_sets else {}
        if val_key:
            summary["val"] = {"last": val_key["last"], "best": val_key["best_test"]["value"],
                              "best_epoch": val_key["best_test"]["epoch"], "best_checkpoint": str(self.best_path)}
        if "test" in self.eval_sets:
            rep = self.evaluate("test")
            summary["test_last"] = rep
        summary["train_fit"] = self.train_fit()
        if self.noise_manifest:
            summary["noise"] = {k: self.noise_manifest[k]
                                for k in ("kind", "rate", "seed", "realised_rate", "noisy_sha256")}
        # run_grid's "finished" mark
        self._on_rank0(lambda: ckpt.write_text_atomic(json.dumps(summary, indent=2), self.run_dir / "summary.json"))
        return summary


def read_history(run_dir: str | Path) -> list[dict]:
    """The per-epoch rows of a run (its ``metrics.jsonl``)."""
    text = (Path(run_dir) / "metrics.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def fit(cfg: TrainConfig, resume: bool = False) -> dict:
    """Train ``cfg`` (single process, or one rank under torchrun) and return the run's summary
    (``summary.json``: ``run``, ``method``, ``dataset``, ``classes``, ``protocol`` numbers, ``val``,
    ``test_last`` report, ``train_fit``, ``noise``). ``resume``: continue ``checkpoints/last.pt``."""
    return Trainer(cfg, resume=resume).fit()


def run_precision(cfg, device, amp: str = "run", channels_last: str = "run") -> tuple[str, str]:
    """``(amp, channels_last)`` for running a saved run's network on ``device``: ``run`` takes the values the
    run recorded (fp16 becomes ``off`` on a device other than CUDA, where ferlab has no fp16 autocast)."""
    if amp == "run":
        amp = cfg.amp if not (cfg.amp == "fp16" and torch.device(device).type != "cuda") else "off"
    if channels_last == "run":
        channels_last = cfg.channels_last
    return amp, channels_last


def evaluate_checkpoint(checkpoint: str | Path, split: str = "test", device: str = "auto", batch_size: int = 256,
                        progress: bool = True, dataset_args: dict | None = None, amp: str = "run",
                        channels_last: str = "run") -> dict:
    """Single-process evaluation of a saved run on one of its evaluation splits;
    ``dataset_args`` override the run's evaluation dataset arguments (e.g.
    ``{"exclude_train_duplicates": True}`` for FERPlus).

    ``amp`` / ``channels_last``: ``run`` (default) evaluates in the precision and memory format the run recorded,
    so the result equals the accuracy the run logged on the same device type (an fp16 run evaluated on a CPU runs
    in float32); or any value of :mod:`~ferlab.engine.precision` (``auto``, ``bf16``, ``fp16``, ``off``)."""
    method, cfg, dev = load_run_method(checkpoint, device)
    amp, channels_last = run_precision(cfg, dev, amp, channels_last)
    if split in ("val", "test"):
        if not has_split(cfg, split):
            raise DatasetError(f"{checkpoint}: the run has no {split} split (trained without one"
                               + ("; give it --val-fraction or a val/ folder when training" if split == "val" else "")
                               + ")")
        split_name = f"hold-out {cfg.val_fraction:g} of {cfg.train_split}" if split == "val" and cfg.val_fraction \
            else cfg.val_split if split == "val" else cfg.test_split
        if dataset_args:
            cfg = dataclasses.replace(cfg, eval_dataset_args={**eval_dataset_args(cfg), **dataset_args})
        ds = build_eval_set(cfg, split)
    else:
        split_name = split
        ds = build_dataset(cfg.dataset, cfg.data_root, split, **{**eval_dataset_args(cfg), **(dataset_args or {})})
        if cfg.limit_eval:
            ds = ds.subset(np.arange(min(cfg.limit_eval, len(ds))))
    ds.preload(progress=progress)
    preds = predict_dataset(method, ds, dev, batch_size, amp=amp, channels_last=channels_last, progress=progress,
                            desc=f"eval {split}")
    rep = {"split": split_name, **classification_report(ds.labels, preds, ds.num_classes)}
    if "removed_train_duplicates" in ds.meta:
        rep["removed_train_duplicates"] = ds.meta["removed_train_duplicates"]
    return rep
