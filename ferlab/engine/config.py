"""Training configuration: a flat dataclass that round-trips through YAML."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml


#: what a recipe says about its dataset (rather than the method); dropped when a run uses another dataset
DATASET_KEYS = ("data_root", "dataset_args", "eval_dataset_args", "train_split", "val_split", "test_split",
                "noise_file", "limit_train", "limit_eval")
#: used where neither the config nor the method's ``defaults`` set a value
FALLBACK = {"epochs": 10, "batch_size": 64, "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0,
            "scheduler": "none", "gamma": 0.1, "augment": {}, "sampler": "uniform", "drop_last": False}


@dataclass
class TrainConfig:
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
    backbone_args: dict = field(default_factory=dict)      # constructor options, e.g. dlib_resnet29 {out_stage: 3, norm: batchnorm}
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
    checkpoint_every: int | str = 0   # also checkpoint every N steps, or every TIME (30s, 10min, 1h); 0: epoch ends only
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

    def resolved(self, method_defaults: dict) -> "TrainConfig":
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
        if self.name:
            return self.name
        noise = "clean" if self.noise == "none" else f"{self.noise}{self.noise_rate:g}"
        return f"{self.method}-{self.dataset}-{noise}-s{self.seed}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, where: dict | None = None) -> "TrainConfig":
        """A validated config (:mod:`.config_check`: key names, types, ranges, choices, option keys;
        :class:`~ferlab.errors.ConfigError` otherwise). ``where`` maps keys to where their values
        came from (``"recipe.yaml:12"``, ``"--epochs"``) for the messages."""
        from .config_check import check_types, check_values
        cfg = cls(**check_types(cls, d, where))
        check_values(cfg, where)
        return cfg

    def validate(self) -> "TrainConfig":
        """Check a config built in Python as :meth:`from_dict` checks a file (numbers given as
        strings, e.g. ``"1e-3"``, are converted in place); returns ``self``."""
        from .config_check import check_types, check_values
        for key, val in check_types(type(self), self.to_dict()).items():
            setattr(self, key, val)
        check_values(self)
        return self

    @classmethod
    def from_yaml(cls, path: str | Path, preset: str | None = None, dataset: str | None = None) -> "TrainConfig":
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
        from .checkpoint import write_text_atomic
        write_text_atomic(yaml.safe_dump(self.to_dict(), sort_keys=False), path)
