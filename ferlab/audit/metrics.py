"""How well a suspicion score finds the wrong labels: AUROC, average precision, precision at k,
and the precision / recall of a flagged set. ``wrong`` is the (N,) bool target (given label !=
reference label); every function takes only the rows where the reference is known."""
from __future__ import annotations

import numpy as np

from ..engine.metrics import noise_detection_auroc


def average_precision(score, wrong) -> float:
    """Area under the precision-recall curve of ``score`` (higher = more suspicious), sklearn's
    step-wise sum over thresholds: sum_n (R_n - R_{n-1}) P_n. NaN when no row is wrong."""
    from sklearn.metrics import average_precision_score
    wrong = np.asarray(wrong, dtype=bool)
    if not wrong.any():
        return float("nan")
    return float(average_precision_score(wrong, np.asarray(score, dtype=np.float64)))


def top_k(score, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores (ties in index order, as the audit table ranks them)."""
    return np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")[:k]


def precision_at_k(score, wrong, k: int) -> float:
    """Share of wrong labels among the ``k`` most suspicious rows (NaN when ``k`` exceeds N)."""
    wrong = np.asarray(wrong, dtype=bool)
    if k > len(wrong) or k < 1:
        return float("nan")
    return float(wrong[top_k(score, k)].mean())


def set_precision_recall(flagged, wrong) -> dict:
    """Precision and recall of a flagged set (e.g. cleanlab's ``find_label_issues`` mask)."""
    flagged, wrong = np.asarray(flagged, dtype=bool), np.asarray(wrong, dtype=bool)
    hits = int((flagged & wrong).sum())
    return {"flagged": int(flagged.sum()), "correct": hits,
            "precision": float(hits / flagged.sum()) if flagged.any() else float("nan"),
            "recall": float(hits / wrong.sum()) if wrong.any() else float("nan")}


def detection_report(score, wrong, ks=(500, 1000, 2000)) -> dict:
    """AUROC, average precision and precision at each k of ``score`` for the target ``wrong``."""
    score, wrong = np.asarray(score, dtype=np.float64), np.asarray(wrong, dtype=bool)
    ok = np.isfinite(score)
    return {"n": len(wrong), "n_wrong": int(wrong.sum()),
            "base_rate": float(wrong.mean()) if len(wrong) else float("nan"),
            "n_nan_score": int((~ok).sum()),
            "auroc": noise_detection_auroc(score[ok], wrong[ok]),
            "average_precision": average_precision(score[ok], wrong[ok]),
            "precision_at_k": {str(k): precision_at_k(np.where(ok, score, -np.inf), wrong, k) for k in ks}}
