"""The evaluation protocol: no model selection on the test set unless flagged.

From the per-epoch history (dicts with ``epoch``, ``val_acc``, ``test_acc``):
- ``last``: test accuracy at the last epoch,
- ``mean_last_k``: mean test accuracy of the last k epochs (EAC/SCN protocol),
- ``best_val``: test accuracy at the epoch with the best validation accuracy (first on ties),
- ``best_test``: the maximum test accuracy -- optimistic, flagged, only for comparing with
  papers that selected on the test set.
"""
from __future__ import annotations

import numpy as np


def summarize(history: list[dict], k: int = 5, key: str = "test_acc") -> dict:
    """The protocol numbers (module docstring) of the rows of ``history`` that have ``key``.

    Args:
        history: Per-epoch rows with ``epoch``, ``key`` and, for ``best_val``, ``val_acc``.
        k: Epochs averaged by ``mean_last_k``.
        key: The accuracy summarised (``test_acc``; ``val_acc`` for the validation curve).

    Returns:
        ``{}`` when no row has ``key``; else ``epochs``, ``last``, ``last_epoch``,
        ``mean_last_<k>`` and ``mean_last_k`` (the same value), ``k``, ``best_val``,
        ``best_val_epoch`` and ``best_val_val_acc`` (only when every such row has ``val_acc``), and
        ``best_test`` (``{value, epoch, flag}``).
    """
    rows = [h for h in history if h.get(key) is not None]
    if not rows:
        return {}
    test = np.array([h[key] for h in rows], dtype=float)
    out = {"epochs": len(rows), "last": float(test[-1]), "last_epoch": int(rows[-1]["epoch"]),
           f"mean_last_{k}": float(test[-k:].mean()), "mean_last_k": float(test[-k:].mean()), "k": k}
    vals = [h.get("val_acc") for h in rows]
    if all(v is not None for v in vals):
        i = int(np.argmax(vals))
        out.update(best_val=float(test[i]), best_val_epoch=int(rows[i]["epoch"]), best_val_val_acc=float(vals[i]))
    j = int(np.argmax(test))
    out["best_test"] = {"value": float(test[j]), "epoch": int(rows[j]["epoch"]),
                        "flag": "selected on the test set (optimistic); not a protocol number"}
    return out
