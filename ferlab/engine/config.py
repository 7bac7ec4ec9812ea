"""Training configuration: a flat dataclass that round-trips through YAML."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml


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
    val_split: str | None = "val"
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
    checkpoint_every: int = 0         # also checkpoint every N steps (0: epoch ends only)
    log_every: int = 20
    limit_train: int | None = None    # first N training images (smoke runs)
    limit_eval: int | None = None
    # cross-validation: {k, fold, seed (default 0)} trains on the (noisy) training set minus fold `fold` of a
    # seeded stratified k-fold split (ferlab.data.folds), drawn AFTER the noise, so every fold sees the full
    # run's noisy labels; the held-out fold is predicted by ferlab.audit.cross_val. None: the whole set.
    train_folds: dict | None = None
    train_fit_every: int = 0          # measure memorisation on the training set every N epochs (0: at the end)
    progress: bool = True

    def resolved(self, method_defaults: dict) -> "TrainConfig":
        """Fill every ``None`` hyperparameter from the method's official defaults."""
        cfg = dataclasses.replace(self)
        fallback = {"epochs": 10, "batch_size": 64, "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0,
                    "scheduler": "none", "gamma": 0.1, "augment": {}, "sampler": "uniform", "drop_last": False}
        for key, val in fallback.items():
            if getattr(cfg, key) is None:
                setattr(cfg, key, method_defaults.get(key, val))
        return cfg

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
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; valid keys: {sorted(names)}")
        return cls(**d)

    @classmethod
    def from_yaml(cls, path: str | Path, preset: str | None = None) -> "TrainConfig":
        """Read a config file; recipe files hold named presets under ``presets:``."""
        data = yaml.safe_load(Path(path).read_text()) or {}
        if "presets" in data:
            presets = data["presets"]
            if preset is None:
                raise ValueError(f"{path}: choose a preset with --preset ({sorted(presets)})")
            if preset not in presets:
                raise ValueError(f"{path}: no preset {preset!r}; have {sorted(presets)}")
            base = {k: v for k, v in data.items() if k not in ("presets", "provenance", "command")}
            data = {**base, **presets[preset]}
        return cls.from_dict({k: v for k, v in data.items() if k not in ("provenance", "command")})

    def save_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
