"""``ferlab train``: build a TrainConfig from a recipe, flags and ``--set``, then fit."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from .common import DATASET_FLAGS, add_command, add_dataset_flags, dataset_names, device_arg, parse_key_value

#: the commands this module adds (name -> the one-line help ``ferlab --help`` lists), in order
COMMANDS = {"train": "train a method (works under torchrun)"}


if TYPE_CHECKING:
    from ..engine.config import TrainConfig

# flag -> TrainConfig field, for `ferlab train`
TRAIN_FLAGS = {
    "method": str, "dataset": str, "data_root": str, "backbone": str, "weights": str, "input_size": int,
    "epochs": int, "batch_size": int, "optimizer": str, "lr": float, "weight_decay": float, "scheduler": str,
    "gamma": float, "noise": str, "noise_rate": float, "noise_seed": int, "noise_file": str, "seed": int,
    "device": str, "amp": str, "channels_last": str, "cache": str, "name": str, "out_dir": str,
    "limit_train": int, "limit_eval": int, "checkpoint_every": str, "log_every": int, "mean_last_k": int,
    "train_fit_every": int, "sampler": str, "optimizer_impl": str, "val_fraction": float, "tensorboard": bool,
}

#: flag -> (help, choices or None); the TrainConfig default is appended where it is a value (None means:
#: from the recipe, else the method's official value, as each help says)
TRAIN_HELP = {
    "method": ("training method", "methods"),
    "dataset": ("registered dataset; folder: your own DIR/{train,val,test}/<class>/*.jpg",
                "datasets"),
    "data_root": ("dataset root folder (default: $FERLAB_DATA/<dataset> or ../shared/data/<dataset>)", None),
    "backbone": ("network: a registered backbone ({backbones}), timm:<model> for any timm model (extra "
                 "ferlab[timm]) or tv:<model> for a torchvision CNN; `ferlab backbones` lists them", "backbones"),
    "weights": ("pretrained weights: a named entry shipped by an installed package (dlib: dlib_resnet29's face "
                "weights, extra ferlab[landmarks]); with timm:<model>, 'timm' = timm's published weights and with "
                "tv:<model> a name of its weights enum (IMAGENET1K_V2, DEFAULT, ...), both DOWNLOADED by timm / "
                "torchvision on first use (the only downloads ferlab makes, and only when asked); or a checkpoint "
                "file in a format ferlab.models.weights knows, .safetensors included (never downloads) "
                "(default: none, random init)", None),
    "input_size": ("side of the network input in pixels", None),
    "epochs": ("training epochs (default: the method's official value)", None),
    "batch_size": ("global batch size, split over torchrun processes (default: the method's)", None),
    "optimizer": ("optimizer (default: the method's)", "optimizers"),
    "lr": ("base learning rate (default: the method's, per backbone where the paper gives one, e.g. EAC "
           "2e-4 for resnet18 and 1e-4 otherwise); methods with several groups scale it per group", None),
    "weight_decay": ("weight decay (default: the method's)", None),
    "scheduler": ("learning-rate schedule: exponential | cosine | step | piecewise | linear | none "
                  "(default: the method's)", None),
    "gamma": ("decay factor of the exponential / step schedules (default: the method's)", None),
    "noise": ("synthetic label noise on the training labels", "noise"),
    "noise_rate": ("share of training labels to flip", None),
    "noise_seed": ("seed of the noise draw", None),
    "noise_file": ("--noise from_file: '<image name> <1-based label>' lines (`ferlab noise --out`)", None),
    "seed": ("seed of initialisation, data order, augmentation and the --val-fraction hold-out", None),
    "device": ("auto | cpu | cuda | cuda:N | mps (auto: CUDA when available)", None),
    "amp": ("mixed precision (autocast): auto = bf16 where the device computes it natively (a CUDA GPU "
            "with bf16, else fp16 with a gradient scaler; a CPU with AVX512-BF16 or AMX), float32 elsewhere; "
            "fp16 is CUDA only; off = float32", ("auto", "bf16", "fp16", "off")),
    "channels_last": ("channels_last memory format (auto: on CUDA and with bf16 autocast on a CPU)",
                      ("auto", "on", "off")),
    "cache": ("where decoded images live", ("ram", "gpu")),
    "name": ("run name: the run folder is OUT_DIR/NAME (default: <method>-<dataset>-<noise>-s<seed>)", None),
    "out_dir": ("folder of run folders", None),
    "limit_train": ("use only the first N training images (smoke runs; default: all)", None),
    "limit_eval": ("use only the first N images of each evaluation split (default: all)", None),
    "checkpoint_every": ("also checkpoint inside an epoch: every N optimizer steps, or every TIME (30s, 10min, "
                         "1h); 0: at epoch ends only. SIGTERM, SIGUSR1 and a first Ctrl-C always checkpoint the "
                         "current step and stop (exit 143, 138, 130; --resume continues)", None),
    "log_every": ("update the progress bar's loss every N steps", None),
    "mean_last_k": ("protocol: mean test accuracy of the last K epochs", None),
    "train_fit_every": ("measure the fit of the (noisy) training labels every N epochs (0: at the end only)",
                        None),
    "sampler": ("per-epoch sample order (default: the method's, else uniform)", "samplers"),
    "optimizer_impl": ("optimizer kernel, same update (auto: fused where torch has one)", "optimizer_impls"),
    "val_fraction": ("hold out this share of the training split (seeded, stratified by class) as the "
                     "validation split (0: the dataset's val split; none for a folder without val/)",
                     None),
    "tensorboard": ("also log every epoch to RUN/tensorboard (needs the tensorboard package, ferlab[dev])", None),
}

METAVARS = {"data_root": "DIR", "weights": "NAME|FILE", "noise_file": "FILE", "out_dir": "DIR", "input_size": "PX",
            "epochs": "N", "batch_size": "N", "limit_train": "N", "limit_eval": "N", "checkpoint_every": "N|TIME",
            "log_every": "N", "mean_last_k": "K", "train_fit_every": "N", "noise_rate": "RATE", "val_fraction": "F"}

EXAMPLES = """examples:
  ferlab train --config recipes/eac/ferplus.yaml --preset cpu --noise symmetric --noise-rate 0.3
  ferlab train --config recipes/eac/ferplus.yaml --preset cpu --dataset folder --data-root faces \\
               --val-fraction 0.1 --noise symmetric --noise-rate 0.3   # a recipe's method part on your data
  ferlab train --method baseline --dataset ferplus --label-mode fer2013 --epochs 1
  ferlab train --config recipes/rul/ferplus.yaml --preset cpu --set method_args.relabel=true --tensorboard
  torchrun --nproc_per_node=2 -m ferlab.cli train --config ...   # DDP; --batch-size stays the global batch

A recipe (recipes/<method>/<dataset>.yaml) sets the method and, per --preset, backbone, input size,
epochs and batch; with --dataset naming another dataset its dataset settings are ignored (a notice
says which). Flags override the recipe, --set KEY=VALUE overrides anything. Options left unset take
the method's official values; the run prints every resolved setting when it starts."""


def recipe_presets() -> list[str]:
    """Every preset name the repository's ``recipes/*/*.yaml`` define (none in an installed copy
    without them), in first-seen order."""
    import yaml
    root = Path(__file__).resolve().parents[2] / "recipes"
    names: dict[str, None] = {}
    for path in sorted(root.glob("*/*.yaml")):
        try:
            names.update(dict.fromkeys((yaml.safe_load(path.read_text()) or {}).get("presets") or {}))
        except (yaml.YAMLError, AttributeError):
            continue
    return list(names)


def _choices(spec):
    if spec == "methods":
        from ..methods import list_methods
        return [m for m in list_methods() if not m.startswith("_")]
    if spec == "datasets":
        return dataset_names()
    if spec in ("optimizers", "optimizer_impls"):
        from ..engine import optim
        return list(optim.OPTIMIZERS) if spec == "optimizers" else list(optim.OPTIMIZER_IMPLS)
    if spec == "noise":
        from ..data.noise import KINDS
        return list(KINDS)
    if spec == "samplers":
        from ..data.samplers import SAMPLERS
        return list(SAMPLERS)
    return spec


def config_from_args(args) -> TrainConfig:
    """Recipe (``--config``/``--preset``), then flags, then ``--set``; validated once by
    ``TrainConfig.from_dict`` (:func:`~ferlab.engine.config.with_overrides`), whose errors name the flag
    or ``--set`` item a bad value came from."""
    from ..engine.config import TrainConfig, with_overrides
    from ..errors import ConfigError
    if args.preset and not args.config:
        raise ConfigError(f"--preset {args.preset} needs --config (a recipe that has presets)")
    cfg = TrainConfig.from_yaml(args.config, args.preset, dataset=args.dataset) if args.config else TrainConfig()
    items, where = [], {}
    flags = [(key, key) for key in TRAIN_FLAGS] + [("dataset_args." + key, key) for key in DATASET_FLAGS]
    for key, flag in flags:
        val = getattr(args, flag)
        if val is not None:
            where[key] = "--" + flag.replace("_", "-")
            items.append((key, val, where[key]))
    for item in args.set or []:
        key, val = parse_key_value(item, "--set")
        label = f"--set {item}"
        items.append((key, val, label))
        where[key] = where[key.split(".")[0]] = label
    if args.no_progress:
        items.append(("progress", False, "--no-progress"))
    return with_overrides(cfg, items, where)


def cmd_train(args) -> int:
    """Run ``ferlab train``: build the config (:func:`config_from_args`), train it (``--resume``
    continues), print the protocol numbers and the run directory. Returns the exit status 0."""
    from ..engine.trainer import fit
    cfg = config_from_args(args)
    summary = fit(cfg, resume=args.resume)
    print(protocol_line(summary))
    print(f"run directory: {summary['run']}")
    return 0


def protocol_line(summary: dict) -> str:
    """The run's test numbers, saying over how many epochs the mean runs and only naming
    the best-validation epoch when the run had a validation split."""
    p = summary["protocol"]
    if not p:
        return "no test split: no test accuracy"
    k = min(p["k"], p["epochs"])
    mean = (f"mean of last {k} epochs {p['mean_last_k']:.4f}" if k < p["epochs"]
            else f"mean of all {k} epoch{'s' if k > 1 else ''} {p['mean_last_k']:.4f}")
    line = f"test accuracy: last {p['last']:.4f} | {mean}"
    if "best_val" in p:
        line += f" | at best val (epoch {p['best_val_epoch']}) {p['best_val']:.4f}"
    else:
        line += " | no validation split"
    return line


def add_train_flags(tr) -> None:
    """Every TrainConfig flag with its help, choices and default, the dataset flags and ``--set``
    (``ferlab train`` and ``ferlab audit --cleanlab``, which trains folds with the same options)."""
    from ..engine.config import TrainConfig
    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for key, typ in TRAIN_FLAGS.items():
        text, spec = TRAIN_HELP[key]
        if spec == "backbones":       # not a choice: timm:<model> / tv:<model> are checked with the config
            from ..models import list_backbones
            text, spec = text.format(backbones=", ".join(list_backbones())), None
        if not any(fields.get(key) is v for v in (None, False, dataclasses.MISSING)) and "(default" not in text:
            text += f" (default: {fields[key]})"
        flag = "--" + key.replace("_", "-")
        if typ is bool:
            tr.add_argument(flag, dest=key, action="store_true", default=None, help=text)
        elif key == "device":
            tr.add_argument(flag, dest=key, type=device_arg, help=text)
        else:
            tr.add_argument(flag, dest=key, type=typ, choices=_choices(spec), help=text, metavar=METAVARS.get(key))
    add_dataset_flags(tr)
    tr.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="any config key, also nested: method_args.lam=3, dataset_args.image_size=64")


def add_parser(sub) -> None:
    """Register ``ferlab train`` and its options on the subparsers ``sub``."""
    tr = add_command(sub, "train", COMMANDS["train"], EXAMPLES)
    tr.add_argument("--config", metavar="YAML", help="config file or recipe (recipes/<method>/<dataset>.yaml)")
    tr.add_argument("--preset", help="preset inside the --config recipe, required when it has presets; the "
                                     "recipes here define: " + (", ".join(recipe_presets()) or "-"))
    add_train_flags(tr)
    tr.add_argument("--resume", action="store_true",
                    help="continue OUT_DIR/NAME/checkpoints/last.pt (an error if there is none)")
    tr.add_argument("--no-progress", action="store_true", help="no progress bars")
    tr.set_defaults(func=cmd_train)
