"""The Python entry point: train a method and get its run back, as ``ferlab train`` does.

    import ferlab
    run = ferlab.train(method="eac", dataset="ferplus", epochs=2)     # or config="recipes/eac/ferplus.yaml"
    run.protocol["mean_last_k"]            # the protocol numbers (ferlab.engine.protocol)
    run.history[-1]["test_acc"]            # one dict per epoch (metrics.jsonl)
    run.evaluate("test")                   # accuracy, mean class accuracy, confusion matrix
    run.predictor()(["face.jpg"]).labels   # inference on image files (ferlab.Predictor)
    run = ferlab.load_run("runs/eac-ferplus-clean-s0")

:func:`train` builds the :class:`~ferlab.engine.config.TrainConfig` the way ``ferlab train`` does
(recipe and preset, then the options, validated once by
:func:`~ferlab.engine.config.with_overrides`) and runs the same
:func:`ferlab.engine.trainer.fit`; :func:`fit` runs a ready config.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .engine.config import TrainConfig, with_overrides
from .errors import CheckpointError, ConfigError


@dataclass
class Run:
    """A training run, read from its folder (:func:`load_run`).

    Attributes:
        path: the run folder, ``<out_dir>/<name>``.
        config: the run's resolved :class:`~ferlab.engine.config.TrainConfig` (``config.yaml``: every
            default filled in, ``amp`` / ``channels_last`` as they resolved).
        history: one dict per finished epoch (``metrics.jsonl``): ``epoch``, ``lr``, ``loss``,
            ``train_acc``, ``val_acc`` / ``test_acc`` where the run has those splits, the method's own
            numbers.
        summary: ``summary.json`` (``protocol``, ``val``, ``test_last``, ``train_fit``, ``noise``,
            ``classes``); empty for a run that has not reached its last epoch.
    """
    path: Path
    config: TrainConfig
    history: list[dict]
    summary: dict

    @property
    def finished(self) -> bool:
        """Whether the run reached its last epoch (it wrote ``summary.json``)."""
        return bool(self.summary)

    @property
    def protocol(self) -> dict:
        """The evaluation protocol's test numbers (:func:`ferlab.engine.protocol.summarize`): ``last``,
        ``mean_last_k`` over ``k`` epochs, ``best_val`` at ``best_val_epoch`` (runs with a validation
        split) and the flagged ``best_test``; from the epochs logged so far when the run has not
        finished; empty without a test split."""
        if "protocol" in self.summary:
            return self.summary["protocol"]
        from .engine.protocol import summarize
        return summarize(self.history, self.config.mean_last_k)

    @property
    def checkpoint(self) -> Path:
        """``checkpoints/last.pt``: the full state at the last checkpoint."""
        return self.path / "checkpoints" / "last.pt"

    @property
    def best_checkpoint(self) -> Path | None:
        """``checkpoints/best.pt`` (the epoch of best validation accuracy); None when the run has none."""
        best = self.path / "checkpoints" / "best.pt"
        return best if best.is_file() else None

    def evaluate(self, split: str = "test", checkpoint: str = "last", device: str = "auto",
                 batch_size: int = 256, progress: bool = False, **dataset_args) -> dict:
        """Evaluate the ``last`` (or ``best``) checkpoint on ``split`` as ``ferlab eval`` does:
        ``{"split", "acc", "mean_class_acc", "per_class_acc", "confusion", ...}``; ``dataset_args``
        override the run's evaluation dataset options."""
        from .engine.trainer import evaluate_checkpoint
        return evaluate_checkpoint(self._checkpoint(checkpoint), split, device=device, batch_size=batch_size,
                                   progress=progress, dataset_args=dataset_args or None)

    def predictor(self, checkpoint: str = "last", device: str = "cpu", **precision):
        """A :class:`~ferlab.predictor.Predictor` of the ``last`` (or ``best``) checkpoint: class
        probabilities of image files, PIL images, uint8 arrays or tensors with the run's own eval
        transform; ``precision``: its ``amp`` / ``channels_last``."""
        from .predictor import Predictor
        return Predictor.load(self._checkpoint(checkpoint), device=device, **precision)

    def _checkpoint(self, which: str) -> Path:
        if which == "last":
            return self.checkpoint
        if which == "best":
            if self.best_checkpoint is None:
                raise CheckpointError(f"{self.path}: the run has no checkpoints/best.pt (it has no validation "
                                      f"split); use checkpoint='last'")
            return self.best_checkpoint
        raise ValueError(f"checkpoint must be 'last' or 'best', got {which!r}")

    def __repr__(self) -> str:
        numbers = self.protocol
        test = f", test last {numbers['last']:.4f}, mean of last {min(numbers['k'], numbers['epochs'])} " \
               f"{numbers['mean_last_k']:.4f}" if numbers else ""
        state = "" if self.finished else ", not finished"
        return (f"Run({str(self.path)!r}: {self.config.method} on {self.config.dataset}, "
                f"{len(self.history)}/{self.config.epochs} epochs{test}{state})")


def load_run(path: str | Path) -> Run:
    """The :class:`Run` in the folder ``path`` (``<out_dir>/<name>``, as ``ferlab train`` prints it);
    a :class:`~ferlab.errors.CheckpointError` when the folder holds no run."""
    import json

    from .engine.trainer import read_history
    path = Path(path)
    if not (path / "config.yaml").is_file():
        what = "no config.yaml in it" if path.is_dir() else "no such folder"
        raise CheckpointError(f"{path}: not a ferlab run folder ({what})")
    history = read_history(path) if (path / "metrics.jsonl").is_file() else []
    summary_file = path / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    return Run(path, TrainConfig.from_yaml(path / "config.yaml"), history, summary)


def fit(config: TrainConfig, resume: bool = False, reuse: bool = False) -> Run:
    """Train ``config`` (single process, or one rank under torchrun) and return its :class:`Run`;
    ``resume``: continue the run folder's ``checkpoints/last.pt``. ``reuse``: when the run folder holds
    a finished run of the same config (:mod:`ferlab.engine.run_reuse`), return it without training;
    when it holds an unfinished one, continue it; otherwise train. The trainer is
    :func:`ferlab.engine.trainer.fit`, which returns the summary dict instead."""
    from .engine.trainer import fit as fit_summary
    if not isinstance(config, TrainConfig):
        raise TypeError(f"fit takes a TrainConfig, got {type(config).__name__} (ferlab.train takes options)")
    if reuse and not resume:
        from .engine.run_reuse import run_state
        state = run_state(config)
        path = Path(config.out_dir) / config.run_name()
        if state == "finished":
            print(f"reused {path}: a finished run of this config (reuse=False trains it again)")
            return load_run(path)
        resume = state == "partial"
    return load_run(fit_summary(config, resume=resume)["run"])


def train(method: str | None = None, dataset: str | None = None, *, config: str | Path | TrainConfig | None = None,
          preset: str | None = None, resume: bool = False, reuse: bool = False, **options) -> Run:
    """Train ``method`` on ``dataset`` and return the :class:`Run`, as ``ferlab train`` does.

    ``method``, ``dataset``, ``config`` (a recipe file or a ``TrainConfig`` to start from), ``preset``
    and ``**options`` (any ``TrainConfig`` key: ``epochs=2``, ``noise="symmetric"``, ``noise_rate=0.3``,
    ``out_dir``, ``name``, ``device``...) make the config as :func:`build_config` says; ``resume``
    continues the run folder's ``checkpoints/last.pt``; ``reuse`` returns a finished run of the same
    config without training it again (:func:`fit`). The run is trained by :func:`fit`."""
    return fit(build_config(method, dataset, config=config, preset=preset, **options), resume=resume, reuse=reuse)


def build_config(method: str | None = None, dataset: str | None = None, *,
                 config: str | Path | TrainConfig | None = None, preset: str | None = None,
                 **options) -> TrainConfig:
    """The validated :class:`~ferlab.engine.config.TrainConfig` that :func:`train` trains, built as
    ``ferlab train`` builds its own (recipe, then the options).

    Args:
        method: a registered method (``baseline``, ``eac``, ``rul``, ``dmue``, ``lanet``, ``ldlva``);
            None keeps the config's.
        dataset: a registered dataset (``ferplus``, ``rafdb``, ``folder`` with ``data_root``,
            ``synthetic``, ...); None keeps the config's. A recipe written for another dataset
            keeps its method part only, as with ``--dataset``.
        config: a recipe or config file (``recipes/<method>/<dataset>.yaml``), or a ``TrainConfig``
            to start from; None: the defaults (the method's official values).
        preset: the recipe's preset (``paper``, ``cpu``, ...), required when the recipe has presets.
        **options: any :class:`~ferlab.engine.config.TrainConfig` key (``epochs=2``, ``noise="symmetric"``,
            ``noise_rate=0.3``, ``backbone``, ``out_dir``, ``name``, ``device``, ``progress=False``...).
            A mapping given for a mapping key (``method_args``, ``dataset_args``, ``augment``, ...)
            updates the config's mapping entry by entry, as ``--set method_args.KEY=VALUE`` does.

    Bad values raise :class:`~ferlab.errors.ConfigError` naming the key, before any data is read.
    """
    if isinstance(config, TrainConfig):
        if preset is not None:
            raise ConfigError(f"preset={preset!r} needs config to be a recipe file, not a TrainConfig")
        base = config
    elif config is not None:
        base = TrainConfig.from_yaml(config, preset, dataset=dataset)
    elif preset is not None:
        raise ConfigError(f"preset={preset!r} needs config (a recipe that has presets)")
    else:
        base = TrainConfig()
    given = {"method": method, "dataset": dataset, **options}
    current = base.to_dict()
    items = []
    for key, val in given.items():
        if val is None and key in ("method", "dataset"):
            continue
        if isinstance(val, dict) and isinstance(current.get(key), dict):
            items += [(f"{key}.{sub}", v, f"{key}[{sub!r}]") for sub, v in val.items()]
        else:
            items.append((key, val, key))
    return with_overrides(base, items)
