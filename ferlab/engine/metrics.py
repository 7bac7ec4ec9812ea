"""Accuracy, mean class accuracy, confusion matrix, noise-detection AUROC."""
from __future__ import annotations

import numpy as np


def confusion_matrix(labels, preds, num_classes: int) -> np.ndarray:
    """(C, C) counts, rows = true label, columns = prediction; labels < 0 are ignored."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    ok = labels >= 0
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (labels[ok], preds[ok]), 1)
    return cm


def accuracy(labels, preds) -> float:
    """Share of ``preds`` equal to ``labels`` over the rows with a label (``labels >= 0``); NaN when none.

    Args:
        labels: (N,) int class indices, ``-1`` for no label.
        preds: (N,) int predicted class indices.
    """
    labels, preds = np.asarray(labels), np.asarray(preds)
    ok = labels >= 0
    return float((labels[ok] == preds[ok]).mean()) if ok.any() else float("nan")


def mean_class_accuracy(cm: np.ndarray) -> float:
    """Mean over classes present in the labels of per-class recall."""
    support = cm.sum(1)
    present = support > 0
    return float((np.diag(cm)[present] / support[present]).mean()) if present.any() else float("nan")


def noise_detection_auroc(score, flipped) -> float:
    """AUROC of ``score`` (higher = more likely noisy) for the binary target ``flipped``."""
    from sklearn.metrics import roc_auc_score
    flipped = np.asarray(flipped, dtype=bool)
    if flipped.all() or not flipped.any():
        return float("nan")
    return float(roc_auc_score(flipped, np.asarray(score, dtype=np.float64)))


def classification_report(labels, preds, num_classes: int) -> dict:
    """Accuracy numbers of ``preds`` against ``labels`` (rows with ``labels < 0`` ignored).

    Args:
        labels: (N,) int true classes.
        preds: (N,) int predicted classes.
        num_classes: C.

    Returns:
        ``{"acc", "mean_class_acc", "confusion": (C, C) counts as nested lists, rows = true label,
        "n": labelled rows}``.
    """
    cm = confusion_matrix(labels, preds, num_classes)
    return {"acc": accuracy(labels, preds), "mean_class_acc": mean_class_accuracy(cm), "confusion": cm.tolist(),
            "n": int((np.asarray(labels) >= 0).sum())}


def train_fit_report(preds, labels, clean_labels) -> dict:
    """How a model fits its (noisy) training set: accuracy on intact samples, and on
    flipped samples the share predicted as the noisy label (memorised) or the clean one."""
    preds, labels, clean = np.asarray(preds), np.asarray(labels), np.asarray(clean_labels)
    ok = (labels >= 0) & (clean >= 0)
    flipped = ok & (labels != clean)
    intact = ok & (labels == clean)

    def share(mask, target):
        return float((preds[mask] == target[mask]).mean()) if mask.any() else float("nan")

    return {"acc_noisy_labels": share(ok, labels), "acc_intact": share(intact, labels),
            "memorised_flipped": share(flipped, labels), "recovered_flipped": share(flipped, clean),
            "acc_clean_labels": share(ok, clean), "n_flipped": int(flipped.sum()), "n_intact": int(intact.sum())}
