"""Training configuration: a flat dataclass that round-trips through YAML."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

#: what a recipe says about its dataset (rather than the method); dropped when a run uses another dataset
DATASET_KEYS = ("data_root", "dataset_args", "eval_dataset_args", "train_split", "val_split", "test_split",
                "noise_file", "limit_train", "limit_eval")
#: used where neither the config nor the method's ``defaults`` set a value
FALLBACK = {"epochs": 10, "batch_size": 64, "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0,
            "scheduler": "none", "gamma": 0.1, "augment": {}, "sampler": "uniform", "drop_last": False}


@dataclass
class TrainConfig:
    """Everything a training run needs, as one flat dataclass that round-trips through YAML.

    Build it in Python (``TrainConfig(method="eac", dataset="ferplus", ...)``), read it from a
    config or recipe file (:meth:`from_yaml`) or a dict (:meth:`from_dict`); both check every key,
    type, range and choice (:mod:`.config_check`) and raise :class:`~ferlab.errors.ConfigError`.
    Hyperparameters left ``None`` take the method's official default (:meth:`resolved`, done by
    the :class:`~ferlab.engine.trainer.Trainer`), else :data:`FALLBACK`. The trainer writes the
    resolved config to ``<out_dir>/<run name>/config.yaml``.

    Attributes:
        name: Run name: the run directory is ``<out_dir>/<name>``. ``None``: :meth:`run_name`
            builds ``<method>-<dataset>-<noise>-s<seed>``.
        out_dir: Folder that holds the run directories.
        method: Registered method name (``baseline``, ``eac``, ``rul``, ``dmue``, ``lanet``,
            ``ldlva``; :func:`ferlab.methods.list_methods`).
        method_args: Keyword arguments of the method's constructor (its documented options);
            ``backbone``, ``num_classes``, ``input_size``, ``mean``, ``std`` and ``augment`` are set
            by the trainer and refused here.
        dataset: Registered dataset name (``ferplus``, ``rafdb``, ``fer2013``, ``affectnet``,
            ``folder``, ``synthetic``, ...).
        data_root: The dataset's folder; ``None``: found from ``FERLAB_DATA`` (or not needed, as
            for ``synthetic``).
        dataset_args: Options of the dataset loader for the training split, e.g. FERPlus
            ``label_mode``, ``num_classes``; ``synthetic`` ``n``, ``image_size``.
        eval_dataset_args: Options of the validation and test splits, applied over
            ``dataset_args`` minus the training-only files (``noise_file``, ``landmarks``).
            ``None``: the same options with clean labels (``label_mode: majority``).
        train_split: Split the model trains on.
        val_split: Validation split (best checkpoint, ``best_val`` protocol number). ``None``, or
            a validation split the dataset does not have (RAF-DB, a ``folder`` without ``val/``),
            means no validation.
        val_fraction: In ``[0, 0.95]``. Above 0, a seeded (``seed``), stratified hold-out of this
            fraction of the training split is the validation set, with clean labels, and replaces
            ``val_split``.
        test_split: Test split, evaluated every epoch; ``None``: none.
        noise: Injected label noise: ``none``, ``symmetric`` (a flip with probability
            ``noise_rate`` to a uniformly drawn other class), ``asymmetric`` (a flip with
            probability ``noise_rate`` along a fixed confusion map,
            :data:`ferlab.data.noise.DEFAULT_ASYMMETRIC`) or ``from_file`` (``noise_file``).
        noise_rate: Flip probability in ``[0, 1]`` of ``symmetric`` / ``asymmetric`` noise.
        noise_seed: Seed of the noise draw (independent of ``seed``).
        noise_file: ``<image name> <1-based label>`` lines giving the noisy training labels
            (``noise: from_file``).
        backbone: Registered backbone name (:func:`ferlab.models.list_backbones`).
        backbone_args: Keyword arguments of the backbone's constructor, e.g. ``dlib_resnet29``
            ``{out_stage: 3, norm: batchnorm}``.
        weights: Initial backbone weights: ``None`` (random initialisation), a named entry of the
            backbone (``dlib_resnet29``: ``dlib``) or a weight / checkpoint file. The classifier
            ``fc`` is never loaded from a file.
        min_weight_match: In ``[0, 1]``: a weight file must fill at least this fraction of the
            backbone's tensors (file tensors with no place count against it), else
            :class:`~ferlab.errors.WeightsError`.
        mean: Per-channel input normalisation mean on ``[0, 1]`` RGB; ``None``: the backbone's
            ``pretrained_cfg``.
        std: Per-channel normalisation standard deviation, as ``mean``.
        input_size: Side in pixels of the square network input (>= 8 and at least the
            backbone's minimum input).
        epochs: Training epochs; ``None``: the method's default.
        batch_size: Global batch size, split evenly over the processes of a torchrun job;
            ``None``: the method's default.
        drop_last: Skip each epoch's last partial batch (the lr schedule's step count too);
            ``None``: the method's default.
        optimizer: ``adam``, ``adamw``, ``sgd`` or ``adam_keras`` (Adam as Keras computes it,
            :class:`~ferlab.engine.optim.KerasAdam`); ``None``: the method's default.
        lr: Base learning rate (> 0); a method may scale it per parameter group
            (:meth:`~ferlab.methods.base.Method.param_groups`). ``None``: the method's default
            (per backbone where the method gives one).
        weight_decay: L2 weight decay (>= 0) of the optimizer; ``None``: the method's default.
        momentum: SGD momentum (``optimizer: sgd`` only).
        optimizer_impl: Optimizer kernel: ``auto`` (fused where torch has one for the device,
            else foreach), ``fused``, ``foreach`` or ``loop``; all compute the same update.
        scheduler: Learning-rate schedule: ``none``, ``exponential`` (``gamma`` per epoch),
            ``cosine`` (to 0 over ``epochs``), ``step`` (``gamma`` at each of ``milestones``),
            ``piecewise`` (per parameter group ``schedule``) or ``linear`` (1 -> 0 over every
            step of the run, stepped per optimizer step); ``None``: the method's default.
        gamma: Decay factor (> 0) of ``exponential`` and ``step``; ``None``: the method's default.
        milestones: Epochs (integers >= 0) at which ``step`` multiplies the lr by ``gamma``.
        augment: Training augmentation options of the method's transform
            (:mod:`ferlab.data.transforms`); ``None``: the method's default augmentation.
        sampler: Per-epoch sample order: ``uniform``, ``balanced``, ``stratified`` or
            ``progressive`` (:mod:`ferlab.data.samplers`); ``None``: the method's default.
        seed: Seed of the global random generators (model initialisation, augmentation), of the
            per-epoch sample order and of the ``val_fraction`` hold-out.
        deterministic: Use PyTorch's deterministic algorithms (and cuDNN deterministic mode).
        device: ``auto`` (CUDA when available, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``.
        amp: Autocast precision: ``auto`` (bf16 where the device computes it natively, fp16 on a
            CUDA GPU without bf16, else off), ``bf16``, ``fp16`` (CUDA only) or ``off`` (float32).
            The trainer records what ``auto`` resolved to (:mod:`~ferlab.engine.precision`).
        channels_last: Memory format of inputs and weights: ``auto`` (on on CUDA and on a CPU
            under bf16 autocast), ``on`` or ``off``; recorded as resolved, like ``amp``.
        cache: Where the decoded image cache lives: ``ram``, or ``gpu`` (copied to the CUDA
            device; on the CPU it stays in RAM).
        eval_batch_size: Batch size of evaluation and prediction passes.
        mean_last_k: ``k`` of the protocol's ``mean_last_k`` (mean test accuracy of the last k
            epochs, :func:`~ferlab.engine.protocol.summarize`).
        checkpoint_every: Besides every epoch end, also write ``checkpoints/last.pt`` every N
            optimizer steps (an integer) or every interval of time (``30s``, ``10min``, ``1.5h``);
            ``0``: at epoch ends only.
        log_every: Steps between updates of the progress bar's running loss (and the NaN/inf
            check of the loss).
        limit_train: Train on the first N images of the training split only (smoke runs);
            ``None``: all.
        limit_eval: Evaluate on the first N images of each evaluation split; ``None``: all.
        train_folds: Cross-validation: ``{k, fold, seed}`` (``seed`` optional, 0) trains on the
            noisy training set minus fold ``fold`` of a seeded stratified k-fold split
            (:mod:`ferlab.data.folds`), drawn after the noise, so every fold run sees the full
            run's noisy labels; :mod:`ferlab.audit.cross_val` predicts the held-out fold.
            ``None``: the whole set.
        train_fit_every: Measure how the model fits its noisy training set (accuracy on intact
            samples, share of flipped samples predicted as their noisy or their clean label,
            :func:`~ferlab.engine.metrics.train_fit_report`) every N epochs; ``0``: only in the
            final summary.
        progress: Show progress bars.
        tensorboard: Also log every epoch's numbers to ``<run>/tensorboard`` (needs the
            ``tensorboard`` package).
    """

    name: str | None = None           # run name (runs/<name>); default: method-dataset-noise-seed
    out_dir: str = "runs"
    method: str = "baseline"
    method_args: dict = field(default_factory=dict)
    dataset: str = "synthetic"
    data_root: str | None = None
    dataset_args: dict = field(default_factory=dict)       # e.g. label_mode, num_classes, image_size
    eval_dataset_args: dict | None = None                  # default: clean labels (majority, no noise file)
    train_split: str = "train"
    val_split: str | None = "val"       # a split that the dataset lacks (folder without val/) -> no validation
    val_fraction: float = 0.0         # > 0: a seeded, stratified hold-out of the training split replaces val_split
    test_split: str | None = "test"
    noise: str = "none"               # none | symmetric | asymmetric | from_file
    noise_rate: float = 0.0
    noise_seed: int = 0
    noise_file: str | None = None
    backbone: str = "resnet18"
    # constructor options, e.g. dlib_resnet29 {out_stage: 3, norm: batchnorm}
    backbone_args: dict = field(default_factory=dict)
    weights: str | None = None        # None (random init) | a named entry (dlib_resnet29: dlib) | a checkpoint file
    min_weight_match: float = 0.9
    mean: list | None = None          # input normalisation on [0, 1] RGB; None -> the backbone's pretrained_cfg
    std: list | None = None
    input_size: int = 112
    epochs: int | None = None         # None -> the method's official default
    batch_size: int | None = None     # global, independent of the number of processes
    drop_last: bool | None = None     # skip each epoch's last partial batch (lr horizon too); None -> the method's
    optimizer: str | None = None      # adam | adamw | sgd | adam_keras (Adam as Keras computes it)
    lr: float | None = None
    weight_decay: float | None = None
    momentum: float = 0.9
    optimizer_impl: str = "auto"      # auto (fused kernel when torch has one, else foreach) | fused | foreach | loop
    scheduler: str | None = None      # exponential | cosine | step | piecewise (per group) | linear (per step) | none
    gamma: float | None = None
    milestones: list | None = None
    augment: dict | None = None       # None -> the method's default augmentation
    sampler: str | None = None        # uniform | balanced | stratified | progressive (ferlab.data.samplers)
    seed: int = 0
    deterministic: bool = True
    device: str = "auto"
    amp: str = "auto"                 # auto | bf16 | fp16 | off
    channels_last: str = "auto"       # auto | on | off
    cache: str = "ram"                # ram | gpu
    eval_batch_size: int = 256
    mean_last_k: int = 5
    # also checkpoint every N steps, or every TIME (30s, 10min, 1h); 0: epoch ends only
    checkpoint_every: int | str = 0
    log_every: int = 20
    limit_train: int | None = None    # first N training images (smoke runs)
    limit_eval: int | None = None
    # cross-validation: {k, fold, seed (default 0)} trains on the (noisy) training set minus fold `fold` of a
    # seeded stratified k-fold split (ferlab.data.folds), drawn AFTER the noise, so every fold sees the full
    # run's noisy labels; the held-out fold is predicted by ferlab.audit.cross_val. None: the whole set.
    train_folds: dict | None = None
    train_fit_every: int = 0          # measure memorisation on the training set every N epochs (0: at the end)
    progress: bool = True
    tensorboard: bool = False         # also log every epoch's numbers to <run>/tensorboard (needs `tensorboard`)

    def resolved(self, method_defaults: dict) -> TrainConfig:
        """Fill every ``None`` hyperparameter from the method's official defaults; a method's
        ``by_backbone[<backbone>]`` entries (e.g. EAC's lr 2e-4 for ``resnet18``) take precedence."""
        cfg = dataclasses.replace(self)
        defaults = {**method_defaults, **method_defaults.get("by_backbone", {}).get(self.backbone, {})}
        for key, val in FALLBACK.items():
            if getattr(cfg, key) is None:
                setattr(cfg, key, defaults.get(key, val))
        return cfg

    def default_sources(self, method_defaults: dict) -> dict[str, str]:
        """For each hyperparameter :meth:`resolved` would fill: where its value comes from
        (``"method"``, ``"method, <backbone>"`` or ``"ferlab fallback"``)."""
        per_backbone = method_defaults.get("by_backbone", {}).get(self.backbone, {})
        return {key: (f"method, {self.backbone}" if key in per_backbone else "method" if key in method_defaults
                      else "ferlab fallback")
                for key in FALLBACK if getattr(self, key) is None}

    def normalisation(self, pretrained_cfg: dict) -> tuple[tuple, tuple]:
        """(mean, std) of the run: the config's where set, else the backbone's ``pretrained_cfg``."""
        return (tuple(self.mean if self.mean is not None else pretrained_cfg["mean"]),
                tuple(self.std if self.std is not None else pretrained_cfg["std"]))

    def run_name(self) -> str:
        """The run directory's name: ``name``, or ``<method>-<dataset>-<noise>-s<seed>`` with noise
        ``clean`` or kind and rate (``eac-ferplus-symmetric0.3-s0``)."""
        if self.name:
            return self.name
        noise = "clean" if self.noise == "none" else f"{self.noise}{self.noise_rate:g}"
        return f"{self.method}-{self.dataset}-{noise}-s{self.seed}"

    def to_dict(self) -> dict:
        """Every field as a plain dict (what ``config.yaml`` and checkpoints store)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, where: dict | None = None) -> TrainConfig:
        """A validated config (:mod:`.config_check`: key names, types, ranges, choices, option keys;
        :class:`~ferlab.errors.ConfigError` otherwise). ``where`` maps keys to where their values
        came from (``"recipe.yaml:12"``, ``"--epochs"``) for the messages."""
        from .config_check import check_types, check_values
        cfg = cls(**check_types(cls, d, where))
        check_values(cfg, where)
        return cfg

    def validate(self) -> TrainConfig:
        """Check a config built in Python as :meth:`from_dict` checks a file (numbers given as
        strings, e.g. ``"1e-3"``, are converted in place); returns ``self``."""
        from .config_check import check_types, check_values
        for key, val in check_types(type(self), self.to_dict()).items():
            setattr(self, key, val)
        check_values(self)
        return self

    @classmethod
    def from_yaml(cls, path: str | Path, preset: str | None = None, dataset: str | None = None) -> TrainConfig:
        """Read a config file; recipe files hold named presets under ``presets:``.

        ``dataset``: the dataset the run will use. When it differs from the file's ``dataset``, what the
        file says about its own dataset (:data:`DATASET_KEYS`: dataset options, splits, limits) does
        not apply and is dropped with a one-line notice; the method part (method, method_args,
        optimizer, lr, schedule, epochs, batch, backbone, input size) is kept.
        """
        from ..errors import ConfigError
        from .config_check import read_yaml
        data, where, preset_lines = read_yaml(path)
        if "presets" in data:
            presets = data["presets"]
            if not isinstance(presets, dict) or not all(isinstance(p, dict) for p in presets.values()):
                raise ConfigError(f"{where['presets']}: presets must map preset names to mappings of config keys")
            if preset is None:
                raise ConfigError(f"{path}: choose a preset with --preset ({', '.join(map(str, presets))})")
            if preset not in presets:
                raise ConfigError(f"{path}: no preset {preset!r}; have {', '.join(map(str, presets))}")
            base = {k: v for k, v in data.items() if k not in ("presets", "provenance", "command")}
            data = {**base, **presets[preset]}
            where = {**where, **preset_lines.get(preset, {})}
        elif preset is not None:
            raise ConfigError(f"{path}: has no presets (a plain config), but --preset {preset} was given")
        if dataset is not None and dataset != data.get("dataset", cls.dataset):
            dropped = {k: data.pop(k) for k in DATASET_KEYS if k in data}
            if dropped:
                import sys
                items = ", ".join(f"{k}={v}" for k, v in dropped.items())
                print(f"note: {path} is written for dataset {data.get('dataset', cls.dataset)}; its dataset settings "
                      f"({items}) do not apply to dataset {dataset} and are ignored", file=sys.stderr)
            data["dataset"] = dataset
        return cls.from_dict({k: v for k, v in data.items() if k not in ("provenance", "command")}, where)

    def save_yaml(self, path: str | Path) -> None:
        """Write :meth:`to_dict` as YAML to ``path`` atomically (a
        :class:`~ferlab.errors.WriteError` when it cannot be written)."""
        from .checkpoint import write_text_atomic
        write_text_atomic(yaml.safe_dump(self.to_dict(), sort_keys=False), path)


def with_overrides(cfg: TrainConfig, items: Iterable[tuple[str, Any, str]], where: dict | None = None) -> TrainConfig:
    """A new validated config: ``cfg`` with each ``(key, value, label)`` of ``items`` applied in order.

    ``KEY`` replaces a value; ``KEY.SUBKEY`` sets one entry of a mapping (``method_args.lam``,
    ``dataset_args.image_size``; the mapping is created when it is None). ``label`` names where the
    item came from (``--epochs``, ``--set lr=x``) in the messages of the errors found here; ``where``
    (key -> label) does so for the checks of :meth:`TrainConfig.from_dict`, which validates the result
    once. ``ferlab train`` and :func:`ferlab.train` build their configs through here."""
    from ..errors import ConfigError
    d = cfg.to_dict()
    for key, val, label in items:
        target, *rest = key.split(".")
        if len(rest) > 1:
            raise ConfigError(f"{label}: keys go one level deep (KEY or KEY.SUBKEY), got {key!r}")
        if not rest:
            d[key] = val
            continue
        if d.get(target) is None:
            d[target] = {}
        if not isinstance(d[target], dict):
            raise ConfigError(f"{label}: {target} is not a mapping (it is {d[target]!r}); set it as a whole "
                              f"({target}=VALUE)")
        d[target] = {**d[target], rest[0]: val}
    return TrainConfig.from_dict(d, where)
