"""Plot functions for run histories. Each returns the matplotlib ``Figure``;
:func:`save_figure` writes PNG and SVG side by side."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

STYLE = {"baseline": "tab:gray", "eac": "tab:blue", "rul": "tab:orange", "dmue": "tab:green", "lanet": "tab:red",
         "ldlva": "tab:purple"}


def save_figure(fig, path: str | Path, formats=("png", "svg"), dpi: int = 150) -> list[Path]:
    """Save ``fig`` as ``path`` with each suffix in ``formats``; returns the written paths."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for fmt in formats:
        p = path.with_suffix("." + fmt)
        fig.savefig(p, dpi=dpi, bbox_inches="tight")
        out.append(p)
    return out


def memorisation_curves(histories: dict[str, list[dict]], title: str = ""):
    """Test accuracy per epoch, and how much of the flipped training labels each run fits.

    Args:
        histories: run label -> per-epoch rows (``metrics.jsonl``) with ``epoch``, ``test_acc``
            and, on some epochs, ``train_fit`` (``memorised_flipped``, ``acc_intact``).
    Returns:
        a 1x2 figure: left, test accuracy (clean labels) vs epoch, the best-validation epoch marked;
        right, share of flipped training samples predicted as their *noisy* label (solid)
        and accuracy on intact samples (dashed).
    """
    fig, (ax_test, ax_fit) = plt.subplots(1, 2, figsize=(11, 4))
    for label, rows in histories.items():
        color = STYLE.get(label.split("-")[0].split(" ")[0])
        ep = [r["epoch"] for r in rows if r.get("test_acc") is not None]
        acc = [r["test_acc"] for r in rows if r.get("test_acc") is not None]
        line, = ax_test.plot(ep, acc, marker="o", ms=3, label=label, color=color)
        val = [r.get("val_acc") for r in rows if r.get("test_acc") is not None]
        if acc and all(v is not None for v in val):      # mark the epoch a validation-based selection picks
            i = max(range(len(val)), key=val.__getitem__)
            ax_test.scatter([ep[i]], [acc[i]], s=60, facecolors="none", edgecolors=line.get_color())
        fit = [(r["epoch"], r["train_fit"]) for r in rows if r.get("train_fit")]
        if fit:
            ax_fit.plot([e for e, _ in fit], [f["memorised_flipped"] for _, f in fit], marker="o", ms=3,
                        color=line.get_color(), label=f"{label}: flipped, fits noisy label")
            ax_fit.plot([e for e, _ in fit], [f["acc_intact"] for _, f in fit], ls="--", color=line.get_color(),
                        label=f"{label}: intact, accuracy")
    ax_test.set(xlabel="epoch", ylabel="test accuracy (clean labels)", title="test accuracy (circle: best-validation epoch)")
    ax_fit.set(xlabel="epoch", ylabel="share of training samples", title="fit of the training set", ylim=(0, 1))
    ax_test.legend(fontsize=8)
    ax_fit.legend(fontsize=7)
    for ax in (ax_test, ax_fit):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
