"""Rank a run's training set by its noise signal, and combine several runs by rank averaging.

Each run contributes one signal from ``ferlab.engine.signals`` (higher = more suspicious): by default
the method's own (RUL ``uncertainty``, DMUE ``1-confidence``, LA-Net ``1-mass``, LDLVA ``1-lambda``)
and, for methods without one (baseline, EAC), ``label_loss`` = the CE of the given label.

**Rank averaging.** Signals of different methods live on different scales, so they are combined
through their ranks: within each run, the N training rows get ranks 1..N by ascending signal
(ties share the mean of their ranks; a NaN signal -- e.g. DMUE's bank for a sample never drawn --
gets the middle rank (N + 1) / 2, no evidence either way), each rank is divided by N, and a row's
suspicion is the mean of these normalised ranks over the runs. A single run's suspicion is its raw
signal (NaN rows last).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..engine.signals import MASKS, default_signal
from .errors import AuditError
from .result import LabelAudit


def normalised_ranks(score) -> np.ndarray:
    """(N,) -> (N,) ranks / N in (0, 1], ascending in ``score`` (ties: mean rank; NaN: (N + 1) / 2N)."""
    from scipy.stats import rankdata
    score = np.asarray(score, dtype=np.float64)
    n = len(score)
    out = np.full(n, (n + 1) / 2.0)
    ok = np.isfinite(score)
    if ok.any():
        # the finite values take ranks 1..m; shift them so NaNs sit in the middle of the full 1..N scale
        m = int(ok.sum())
        out[ok] = rankdata(score[ok], method="average") + (n - m) / 2.0
    return out / max(n, 1)


def rank_average(scores: Sequence[np.ndarray]) -> np.ndarray:
    """(N,) mean over ``scores`` (each (N,), higher = more suspicious) of their normalised ranks."""
    scores = [np.asarray(s, dtype=np.float64) for s in scores]
    if not scores:
        raise ValueError("rank_average needs at least one score")
    if len({len(s) for s in scores}) != 1:
        raise ValueError(f"scores of different lengths {[len(s) for s in scores]}")
    return np.mean([normalised_ranks(s) for s in scores], axis=0)


def _load_run(run: Path, device: str, progress: bool):
    from ..engine.config import TrainConfig
    from ..engine.run_data import build_train_set
    from ..engine.signals import run_signals
    from .probs import run_train_probs

    if not (run / "checkpoints" / "last.pt").is_file() or not (run / "config.yaml").is_file():
        raise AuditError(f"{run}: not a finished run directory (needs config.yaml and checkpoints/last.pt)")
    cfg = TrainConfig.from_yaml(run / "config.yaml")
    ds = build_train_set(cfg)[0]
    sig = run_signals(run, device=device, progress=progress)
    probs = run_train_probs(run, device=device, progress=progress)
    return cfg, ds, sig, probs


def audit_runs(runs: Sequence[str | Path], signal: str | None = None, device: str = "cpu",
               progress: bool = True) -> LabelAudit:
    """Rank the training set of one run, or of several runs trained on the same images and labels.

    ``signal``: the signal to rank by in every run (e.g. ``label_loss``); default: each run's own
    (:func:`default_signal`). Several runs are combined by :func:`rank_average`; the table's
    probabilities are the mean of the runs' softmax outputs. Raises :class:`AuditError` when a run
    is not finished, lacks the signal, or trained on other images or labels than the first run.
    """
    runs = [Path(r) for r in runs]
    if not runs:
        raise AuditError("give at least one run directory")
    dataset, scores, columns, probs, used = None, [], {}, [], []
    for run in runs:
        cfg, ds, sig, p = _load_run(run, device, progress)
        if dataset is None:
            dataset, first = ds, run
        elif len(ds) != len(dataset) or not np.array_equal(ds.labels, dataset.labels) or ds.paths != dataset.paths:
            raise AuditError(f"{run} trained on other images or labels than {first} ({len(ds)} vs {len(dataset)} "
                             f"rows, {int((ds.labels != dataset.labels).sum()) if len(ds) == len(dataset) else '-'} "
                             f"labels differ); audit runs of the same training set together")
        key = signal or default_signal(sig)
        if key not in sig or key in MASKS:
            have = [k for k in sig if k not in MASKS]
            raise AuditError(f"{run} ({cfg.method}) has no signal {key!r}; it has {have}")
        scores.append(sig[key])
        used.append({"run": str(run), "method": cfg.method, "signal": key})
        columns.update({f"{run.name}:{k}": v for k, v in sig.items() if k not in MASKS})
        probs.append(p)
    suspicion = rank_average(scores) if len(runs) > 1 else np.asarray(scores[0], dtype=np.float64)
    combine = "rank average (mean over runs of rank/N, ascending signal, ties = mean rank, NaN = middle rank)" \
        if len(runs) > 1 else "the run's signal"
    return LabelAudit(dataset=dataset, suspicion=suspicion, signals=columns, probs=np.mean(probs, axis=0),
                      source={"kind": "signals", "runs": used, "combine": combine})
