"""Write a LabelAudit: the ranked CSV, a contact sheet of the top-k images, a summary JSON.

``write_report(audit, out)`` writes ``out/label-audit.csv`` (one row per training image, most
suspicious first), ``out/label-audit-top<k>.png`` and ``out/label-audit-summary.json``; every file is
written atomically (temp file + rename).
"""
from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import numpy as np

from ..atomic import make_dirs, write_atomic, write_text_atomic
from .metrics import detection_report, set_precision_recall
from .result import LabelAudit


def write_csv(audit: LabelAudit, path: str | Path) -> Path:
    """The audit table (:meth:`LabelAudit.rows`) as CSV with LF line ends (as ``metrics.csv`` and
    ``ferlab predict``'s)."""
    header, rows = audit.rows()
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    write_text_atomic(buf.getvalue(), path)
    return Path(path)


def contact_sheet(audit: LabelAudit, k: int = 48, cols: int = 8, tile_in: float = 1.45, dpi: int = 110):
    """Matplotlib figure of the ``k`` most suspicious images: rank, given and predicted label (with
    its probability) above each, red where they differ. Each tile is ``tile_in`` inches at ``dpi`` (~160 px:
    a 48 px face is drawn at 3.3x, smoothed) with 7.5 pt captions, so small sources stay legible."""
    import matplotlib.pyplot as plt

    order = audit.order[:k]
    ds, classes = audit.dataset, audit.dataset.classes
    images = ds.get_batch(order)["image"].cpu().numpy().transpose(0, 2, 3, 1) if len(order) else []
    pred = audit.predicted()
    rows = max(1, -(-len(order) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * tile_in, rows * (tile_in + 0.42)), dpi=dpi, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for j, i in enumerate(order):
        ax = axes.ravel()[j]
        img = images[j]
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", interpolation="bilinear")
        y = int(ds.labels[i])
        text = f"#{j + 1} given {classes[y] if y >= 0 else '-'}"
        if pred is not None:
            text += f"\npred {classes[pred[i]]} {audit.probs[i, pred[i]]:.2f}"
        if audit.flagged is not None and audit.flagged[i]:
            text += " *"
        disagree = pred is not None and pred[i] != y
        ax.set_title(text, fontsize=7.5, loc="left", pad=2, color="firebrick" if disagree else "black")
    src = audit.source
    how = ", ".join(f"{Path(r['run']).name}: {r['signal']}" for r in src.get("runs", [])) or src.get("kind", "")
    if src.get("kind") == "cleanlab":
        how = f"cleanlab on {src.get('folds', '?')}-fold out-of-sample probabilities"
    fig.suptitle(f"{len(order)} most suspicious labels ({how}; * = flagged)" if audit.flagged is not None
                 else f"{len(order)} most suspicious labels ({how})", fontsize=9)
    fig.tight_layout()
    return fig


def save_png_atomic(fig, path: str | Path) -> Path:
    """``fig`` as a PNG at its own dpi, written atomically; the figure is closed."""
    import matplotlib.pyplot as plt
    write_atomic(path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)
    return Path(path)


def summary(audit: LabelAudit, k: int = 48, ks=(500, 1000, 2000)) -> dict:
    """What was ranked and how; the given -> predicted pairs among the top ``k``; and, where the
    dataset has reference labels that some given labels differ from (synthetic noise, FERPlus
    majority vs FER2013 label), how well the ranking finds those (AUROC, AP, precision at ``ks``)."""
    ds, classes = audit.dataset, audit.dataset.classes
    order = audit.order
    pred = audit.predicted()
    pairs: dict[str, int] = {}
    if pred is not None:
        for i in order[:k]:
            if ds.labels[i] >= 0:
                key = f"{classes[ds.labels[i]]} -> {classes[pred[i]]}"
                pairs[key] = pairs.get(key, 0) + 1
    out = {"created": time.strftime("%Y-%m-%d %H:%M:%S"), "source": audit.source, "n": len(audit),
           "dataset": ds.name, "classes": list(classes), "top_k": int(min(k, len(audit))),
           "top_k_given_to_predicted": dict(sorted(pairs.items(), key=lambda kv: -kv[1])),
           "top": [{"rank": r + 1, "index": int(i), "image": audit.image_names()[i]} for r, i in enumerate(order[:10])]}
    if audit.flagged is not None:
        out["flagged"] = int(audit.flagged.sum())
    known, wrong = audit.known, audit.wrong
    if wrong.any():
        out["against_reference_labels"] = {
            "target": "given label != reference label (clean_label: before synthetic noise / FERPlus majority)",
            **detection_report(audit.suspicion[known], wrong[known], ks)}
        if audit.flagged is not None:
            out["against_reference_labels"]["flagged_set"] = set_precision_recall(audit.flagged[known], wrong[known])
    return out


def write_report(audit: LabelAudit, out: str | Path, top_k: int = 48, command: str | None = None) -> dict:
    """Write the CSV, the contact sheet and the summary JSON into ``out``; returns the summary."""
    out = Path(out)
    make_dirs(out)
    files = {"csv": str(write_csv(audit, out / "label-audit.csv"))}
    k = int(min(top_k, len(audit)))
    files["contact_sheet"] = str(save_png_atomic(contact_sheet(audit, k), out / f"label-audit-top{k}.png"))
    info = summary(audit, k)
    info["files"] = files
    if command:
        info["command"] = command
    files["summary"] = str(out / "label-audit-summary.json")
    write_text_atomic(json.dumps(jsonable(info), indent=2), files["summary"])
    return info


def jsonable(obj):
    """NaN -> null, numpy scalars and bools -> Python (strict JSON)."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj
