"""cleanlab's confident learning on out-of-sample probabilities (the optional ``ferlab[audit]`` extra).

``cleanlab_audit(dataset, probs)`` calls ``cleanlab.filter.find_label_issues(labels, probs)`` with
cleanlab's defaults (``filter_by="prune_by_noise_rate"``) for the flagged set, and ranks every row by
cleanlab's own label-quality score, ``self_confidence`` = the probability of the given label:
suspicion = flagged + (1 - self_confidence), i.e. the flagged rows first, each group ordered by
self-confidence -- the order ``find_label_issues(..., return_indices_ranked_by="self_confidence")``
gives the flagged rows, continued over the rest. ``probs`` must be out-of-sample
(:func:`ferlab.audit.cross_val.cross_val_probs`); probabilities of a model that trained on the rows
mostly reproduce the given labels.
"""
from __future__ import annotations

import numpy as np

from .errors import MissingExtraError
from .result import LabelAudit

INSTALL = "cleanlab is not installed; install the audit extra: pip install 'ferlab[audit]' (or pip install cleanlab)"


def require_cleanlab():
    """The ``cleanlab.filter`` module, or :class:`MissingExtraError` with the install command."""
    try:
        import cleanlab.filter
    except ImportError:
        raise MissingExtraError(INSTALL) from None
    return cleanlab.filter


def cleanlab_audit(dataset, probs: np.ndarray, filter_by: str = "prune_by_noise_rate",
                   source: dict | None = None) -> LabelAudit:
    """Rank ``dataset``'s rows with cleanlab from (N, C) out-of-sample ``probs``.

    Rows without a given label (``-1``) are left out of cleanlab's estimate and ranked last.
    """
    flt = require_cleanlab()
    labels = np.asarray(dataset.labels)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (len(labels), dataset.num_classes) or not np.isfinite(probs).all():
        raise ValueError(f"probs must be a finite ({len(labels)}, {dataset.num_classes}) array, got {probs.shape}")
    has = labels >= 0
    flagged = np.zeros(len(labels), dtype=bool)
    flagged[has] = flt.find_label_issues(labels[has], probs[has], filter_by=filter_by)
    self_conf = np.where(has, probs[np.arange(len(labels)), np.maximum(labels, 0)], np.nan)
    suspicion = np.where(has, flagged + (1.0 - self_conf), -1.0)
    import cleanlab
    info = {"kind": "cleanlab", "cleanlab": cleanlab.__version__, "filter_by": filter_by,
            "rank": "flagged first, then 1 - self_confidence (probability of the given label)", **(source or {})}
    return LabelAudit(dataset=dataset, suspicion=suspicion, signals={"cleanlab:1-self_confidence": 1.0 - self_conf},
                      probs=probs, source=info, flagged=flagged)
