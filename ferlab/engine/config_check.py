"""Validation of :class:`~ferlab.engine.config.TrainConfig` values, in one place.

:func:`check_types` (on the raw dict: unknown keys, value types) and :func:`check_values` (on the
config: ranges, choices, registered names, the keys of ``method_args`` / ``dataset_args``) raise
:class:`~ferlab.errors.ConfigError`. Each message starts with where the value came from, when the
caller knows it (``where``: key -> ``"recipe.yaml:12"``, ``"--epochs"``, ``"--set lr=x"``).
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import re

from ..errors import ConfigError, did_you_mean
from .optim_names import OPTIMIZER_IMPLS, OPTIMIZER_NAMES, SCHEDULERS, unknown_scheduler

_PY = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "dict": (dict,), "list": (list,)}
_EXPECT = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
           "dict": "a mapping (key: value)", "list": "a list"}

#: key -> (lowest, highest, lowest excluded): numeric ranges (None: unbounded)
RANGES = {
    "epochs": (1, None, False), "batch_size": (1, None, False), "lr": (0, None, True),
    "weight_decay": (0, None, False), "momentum": (0, None, False), "gamma": (0, None, True),
    "noise_rate": (0, 1, False), "noise_seed": (0, 2**32 - 1, False), "seed": (0, 2**32 - 1, False),
    "input_size": (8, None, False), "min_weight_match": (0, 1, False), "eval_batch_size": (1, None, False),
    "mean_last_k": (1, None, False), "log_every": (1, None, False),
    "limit_train": (1, None, False), "limit_eval": (1, None, False), "train_fit_every": (0, None, False),
    "val_fraction": (0, 0.95, False),
}
CHOICES = {"amp": ("auto", "bf16", "fp16", "off"), "channels_last": ("auto", "on", "off"), "cache": ("ram", "gpu")}
#: keys that take several forms: what the messages say they accept
FORMS = {"checkpoint_every": "a number of steps (an integer >= 0; 0: at epoch ends only) or a time such as "
                             "30s, 10min, 1.5h"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hr|hrs|hours?)\s*$",
                       re.IGNORECASE)


def checkpoint_interval(value) -> tuple[int, float]:
    """``checkpoint_every`` -> ``(steps, seconds)``, one of them 0: an integer N is every N steps,
    a time (``30s``, ``10min``, ``1h``, ``1.5 hours``) every that many seconds; 0 is neither (epoch
    ends only). A :class:`~ferlab.errors.ConfigError` for anything else (the message has no key)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"expected {FORMS['checkpoint_every']}, got {_show(value)}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"expected {FORMS['checkpoint_every']}, got {value}")
        return value, 0.0
    if value.strip().isdigit():
        return int(value), 0.0
    m = _DURATION.match(value)
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(f"expected {FORMS['checkpoint_every']}, got {_show(value)}")
    return 0, float(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)[0].lower()]


#: method constructor arguments the trainer sets itself
TRAINER_SET = ("backbone", "num_classes", "input_size", "mean", "std")


def _where(key: str, where: dict | None) -> str:
    where = where or {}
    loc = where.get(key) or where.get(key.split(".")[0])
    if loc is None:
        return key
    return loc if loc.startswith("--") else f"{loc}: {key}"


def _show(value) -> str:
    kind = {str: "a string", bool: "a boolean", int: "an integer", float: "a number", list: "a list",
            dict: "a mapping", type(None): "null"}.get(type(value), type(value).__name__)
    text = repr(value)
    return f"{text[:60]}{'...' if len(text) > 60 else ''} ({kind})"


def field_types(cls) -> dict[str, tuple[tuple[str, ...], bool]]:
    """field -> (type names, None allowed), from the dataclass annotations."""
    out = {}
    for f in dataclasses.fields(cls):
        parts = [p.strip() for p in str(f.type).split("|")]
        out[f.name] = (tuple(p for p in parts if p != "None"), "None" in parts)
    return out


def check_types(cls, d, where: dict | None = None) -> dict:
    """A copy of ``d`` with every key known and every value of its field's type (ints accepted for
    floats, numeric strings such as YAML's ``1e-3`` read as floats, numbers as strings for string
    fields)."""
    if not isinstance(d, dict):
        raise ConfigError(f"a config must be a mapping of keys to values, got {_show(d)}")
    types = field_types(cls)
    unknown = [k for k in d if k not in types]
    if unknown:
        loc = (where or {}).get(unknown[0])
        raise ConfigError(f"{loc + ': ' if loc else ''}unknown config key{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(map(str, unknown))}{did_you_mean(unknown[0], types)}; accepted keys: "
                          f"{', '.join(sorted(types))}")
    out = {}
    for key, val in d.items():
        names, optional = types[key]
        if val is None:
            if not optional:
                raise ConfigError(f"{_where(key, where)}: expected {_EXPECT.get(names[0], names[0])}, got null")
            out[key] = None
            continue
        if names == ("float",) and isinstance(val, str):
            try:
                val = float(val)
            except ValueError:
                pass
        if names == ("str",) and isinstance(val, (int, float)) and not isinstance(val, bool):
            val = str(val)
        if names == ("str",) and isinstance(val, bool) and {"on", "off"} & set(CHOICES.get(key, ())):
            val = "on" if val else "off"      # YAML 1.1 reads on/off/yes/no as booleans
        if key in FORMS:
            try:
                steps, seconds = checkpoint_interval(val)
            except ConfigError as e:
                raise ConfigError(f"{_where(key, where)}: {e}") from None
            out[key] = steps if not seconds else val.strip()     # "100" -> 100
            continue
        ok = any(n not in _PY for n in names) or (      # an annotation this check does not know: accepted
            any(isinstance(val, _PY[n]) for n in names) and not (isinstance(val, bool) and "bool" not in names))
        if not ok:
            expect = " or ".join(_EXPECT.get(n, n) for n in names) + (" (or null)" if optional else "")
            raise ConfigError(f"{_where(key, where)}: expected {expect}, got {_show(val)}")
        if names == ("float",):
            val = float(val)
        out[key] = val
    return out


def _check_range(key, val, where) -> None:
    lo, hi, open_lo = RANGES[key]
    bad = (lo is not None and (val <= lo if open_lo else val < lo)) or (hi is not None and val > hi)
    if bad or not math.isfinite(val):
        if hi is None:
            rule = f"{'>' if open_lo else '>='} {lo}"
        else:
            rule = f"in [{lo}, {hi}]"
        raise ConfigError(f"{_where(key, where)}: must be {rule}, got {val}")


def accepted_arguments(cls) -> list[str] | None:
    """Keyword arguments ``cls(...)`` accepts, following ``**kwargs`` up the class hierarchy;
    ``None`` when some constructor takes arbitrary keywords it does not pass on."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = list(inspect.signature(init).parameters.values())[1:]
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return sorted(names)
        if klass is object:
            break
    return None


def _check_keys(what: str, given: dict, accepted, where, owner: str) -> None:
    unknown = [k for k in given if k not in accepted]
    if unknown:
        key = f"{what}.{unknown[0]}"
        raise ConfigError(f"{_where(key, where)}: {owner} has no option {', '.join(map(str, unknown))}"
                          f"{did_you_mean(unknown[0], accepted)}; accepted: {', '.join(accepted) or 'none'}")


def check_values(cfg, where: dict | None = None) -> None:
    """Ranges, choices, registered names and nested option keys of a typed config."""
    for key in RANGES:
        val = getattr(cfg, key, None)
        if val is not None:
            _check_range(key, val, where)
    from ..data.noise import KINDS
    from ..data.samplers import SAMPLERS
    choices = {**CHOICES, "noise": KINDS, "sampler": SAMPLERS, "optimizer": OPTIMIZER_NAMES,
               "optimizer_impl": OPTIMIZER_IMPLS}
    for key, allowed in choices.items():
        val = getattr(cfg, key)     # None: a field the method fills (sampler, optimizer)
        if val is not None and val not in allowed:
            raise ConfigError(f"{_where(key, where)}: must be one of {', '.join(allowed)}, got {val!r}")
    if cfg.noise == "from_file" and not cfg.noise_file:
        raise ConfigError(f"{_where('noise', where)}: noise from_file needs noise_file (--noise-file FILE: "
                          f"'<image name> <1-based label>' lines)")
    if cfg.milestones is not None and not all(isinstance(m, int) and not isinstance(m, bool) and m >= 0
                                              for m in cfg.milestones):
        raise ConfigError(f"{_where('milestones', where)}: expected a list of epoch numbers >= 0, "
                          f"got {cfg.milestones!r}")
    if cfg.scheduler is not None and cfg.scheduler not in SCHEDULERS:
        raise ConfigError(f"{_where('scheduler', where)}: {unknown_scheduler(cfg.scheduler)}")
    if cfg.device != "auto":
        import torch
        try:
            torch.device(cfg.device)
        except RuntimeError:
            raise ConfigError(f"{_where('device', where)}: expected auto, cpu, cuda or cuda:N, "
                              f"got {cfg.device!r}") from None
    _check_names(cfg, where)


def _check_names(cfg, where) -> None:
    from ..data import DATASETS
    from ..methods import list_methods, method_class
    from ..models.registry import backbone_problem
    if cfg.method not in list_methods():
        raise ConfigError(f"{_where('method', where)}: unknown method {cfg.method!r}; available: "
                          f"{', '.join(m for m in list_methods() if not m.startswith('_'))}")
    problem = backbone_problem(cfg.backbone)
    if problem:
        raise ConfigError(f"{_where('backbone', where)}: {problem}")
    if cfg.dataset not in DATASETS:
        raise ConfigError(f"{_where('dataset', where)}: unknown dataset {cfg.dataset!r}; available: "
                          f"{', '.join(sorted(DATASETS))}")
    clash = [k for k in cfg.method_args if k in TRAINER_SET or k == "augment"]
    if clash:
        raise ConfigError(f"{_where('method_args.' + clash[0], where)}: set by the trainer (use the top-level key "
                          f"{'augment' if clash[0] == 'augment' else 'input_size / backbone'} instead)")
    accepted = accepted_arguments(method_class(cfg.method))
    if accepted is not None:
        accepted = [a for a in accepted if a not in TRAINER_SET and a != "augment"]
        _check_keys("method_args", cfg.method_args, accepted, where, f"method {cfg.method}")
    from ..data.registry import _LOADERS, dataset_options
    if cfg.dataset not in _LOADERS:   # a dataset registered by the user: its loader checks its options
        return
    options = dataset_options(cfg.dataset)
    for what in ("dataset_args", "eval_dataset_args"):
        _check_keys(what, getattr(cfg, what) or {}, options, where, f"dataset {cfg.dataset}")


def _key_lines(node, path: str, prefix: str = "") -> dict[str, str]:
    """``key`` (and ``key.sub`` one level down) -> ``"path:line"`` of a YAML mapping node."""
    import yaml
    out = {}
    if not isinstance(node, yaml.MappingNode):
        return out
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode):
            out[prefix + k.value] = f"{path}:{k.start_mark.line + 1}"
            if not prefix and k.value != "presets":
                out.update(_key_lines(v, path, k.value + "."))
    return out


def read_yaml(path) -> tuple[dict, dict[str, str], dict[str, dict[str, str]]]:
    """A config / recipe file -> (its mapping, key -> "path:line", preset -> {key -> "path:line"}).
    Unreadable files, YAML syntax errors and a top level that is not a mapping are ConfigErrors
    naming the file (and line)."""
    from pathlib import Path

    import yaml
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a YAML config file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text (UTF-8) file, expected a YAML config") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file ({e.strerror})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        loc = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        context, cmark = getattr(e, "context", None), getattr(e, "context_mark", None)
        if context and cmark is not None and mark is not None and cmark.line != mark.line:
            context = f"{context} (from line {cmark.line + 1})"
        problem = ", ".join(str(p) for p in (context, getattr(e, "problem", None)) if p) or str(e)
        raise ConfigError(f"{loc}: YAML syntax error: {problem}") from None
    if data is None:
        return {}, {}, {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of config keys (key: value), "
                          f"got {_show(data)}")
    lines = _key_lines(node, str(path))
    presets = {}
    for k, v in (node.value if node is not None else []):
        if isinstance(k, yaml.ScalarNode) and k.value == "presets" and isinstance(v, yaml.MappingNode):
            for pk, pv in v.value:
                presets[pk.value] = {**_key_lines(pv, str(path))}
    return data, lines, presets
