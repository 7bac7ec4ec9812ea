"""Plot functions for run histories. Each returns the matplotlib ``Figure``;
:func:`save_figure` writes PNG and SVG side by side."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt

if TYPE_CHECKING:
    import numpy as np

STYLE = {"baseline": "tab:gray", "eac": "tab:blue", "rul": "tab:orange", "dmue": "tab:green", "lanet": "tab:red",
         "ldlva": "tab:purple"}


def save_figure(fig, path: str | Path, formats=("png", "svg"), dpi: int = 150) -> list[Path]:
    """Save ``fig`` as ``path`` with each suffix in ``formats`` (each written atomically: a full disk
    is a :class:`~ferlab.errors.WriteError` naming the file); returns the written paths."""
    from ..atomic import write_atomic
    path = Path(path)
    out = []
    for fmt in formats:
        p = path.with_suffix("." + fmt)
        write_atomic(p, lambda f, fmt=fmt: fig.savefig(f, format=fmt, dpi=dpi, bbox_inches="tight"))
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
    fig, (ax_test, ax_fit) = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
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
            ax_fit.plot([e for e, _ in fit], [f["acc_intact"] for _, f in fit], ls="--", marker="x", ms=4,
                        color=line.get_color(), label=f"{label}: intact, accuracy")
    ax_test.set(xlabel="epoch", ylabel="test accuracy (clean labels)",
                title="test accuracy (circle: best-validation epoch)")
    ax_fit.set(xlabel="epoch", ylabel="share of training samples", title="fit of the training set", ylim=(0, 1))
    ax_test.legend(fontsize=8)
    if ax_fit.lines:     # colours are the left panel's; here only what solid and dashed mean
        from matplotlib.lines import Line2D
        ax_fit.legend([Line2D([], [], color="k", marker="o", ms=3),
                       Line2D([], [], color="k", ls="--", marker="x", ms=4)],
                      ["flipped samples: fit their noisy label", "intact samples: accuracy"], fontsize=8,
                      loc="upper left")
    from matplotlib.ticker import MaxNLocator
    for ax in (ax_test, ax_fit):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))      # epochs
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def noise_signal_histograms(panels: dict[str, tuple], bins: int = 40, title: str = ""):
    """One panel per signal: its distribution on intact vs flipped training labels, AUROC in the title.

    Args:
        panels: panel title -> (scores (N,), flipped (N,) bool); higher score = more suspicious.
    """
    import numpy as np

    from ..engine.metrics import noise_detection_auroc
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.2), squeeze=False)
    for ax, (name, (score, flipped)) in zip(axes[0], panels.items()):
        score, flipped = np.asarray(score, dtype=float), np.asarray(flipped, dtype=bool)
        use = np.isfinite(score)
        score, flipped = score[use], flipped[use]
        lo, hi = np.quantile(score, [0.005, 0.995])
        edges = np.linspace(lo, hi if hi > lo else lo + 1e-6, bins + 1)
        ax.hist(np.clip(score[~flipped], lo, hi), edges, density=True, alpha=0.6, color="tab:blue",
                label=f"intact ({(~flipped).sum()})")
        ax.hist(np.clip(score[flipped], lo, hi), edges, density=True, alpha=0.6, color="tab:red",
                label=f"flipped ({flipped.sum()})")
        ax.set_title(f"{name}\nAUROC {noise_detection_auroc(score, flipped):.3f}", fontsize=9)
        ax.set_xlabel("signal (higher = more suspicious)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("density")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_matrices(matrices: dict[str, np.ndarray], classes, title: str = ""):
    """Row-normalised confusion matrices (rows: true class, columns: prediction), one per run."""
    import numpy as np
    n = len(matrices)
    fig, axes = plt.subplots(1, n, figsize=(3.7 * n + 0.8, 3.9), squeeze=False)
    im = None
    for ax, (name, cm) in zip(axes[0], matrices.items()):
        cm = np.asarray(cm, dtype=float)
        rate = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        im = ax.imshow(rate, vmin=0, vmax=1, cmap="Blues")
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, f"{100 * rate[i, j]:.0f}", ha="center", va="center", fontsize=6,
                        color="white" if rate[i, j] > 0.6 else "black")
        acc = np.trace(cm) / max(cm.sum(), 1)
        ax.set_title(f"{name} (acc {100 * acc:.1f}%)", fontsize=9)
        ax.set_xticks(range(len(classes)), [c[:3] for c in classes], fontsize=7, rotation=45)
        ax.set_yticks(range(len(classes)), [c[:3] for c in classes], fontsize=7)
        ax.set_xlabel("predicted", fontsize=8)
    axes[0][0].set_ylabel("true (clean label)", fontsize=8)
    fig.colorbar(im, ax=list(axes[0]), shrink=0.8, label="share of the true class")
    if title:
        fig.suptitle(title)
    return fig


def label_distributions(images, rows: dict[str, np.ndarray], classes, titles=None):
    """Example images with label distributions side by side (e.g. FERPlus votes vs a method's estimate).

    Args:
        images: uint8 (N, 3, H, W) or (N, H, W, 3); rows: name -> (N, C) distributions (rows sum to 1).
    """
    import numpy as np
    images = np.asarray(images)
    if images.shape[1] == 3:
        images = images.transpose(0, 2, 3, 1)
    n, names = len(images), list(rows)
    fig, axes = plt.subplots(2, n, figsize=(2.3 * n, 4.4), gridspec_kw={"height_ratios": [1, 1.1]}, squeeze=False)
    width = 0.8 / len(names)
    for i in range(n):
        axes[0][i].imshow(images[i].squeeze(), cmap="gray" if images[i].shape[-1] == 1 else None)
        axes[0][i].axis("off")
        if titles is not None:
            axes[0][i].set_title(titles[i], fontsize=8)
        ax = axes[1][i]
        for k, name in enumerate(names):
            ax.bar(np.arange(len(classes)) + (k - (len(names) - 1) / 2) * width, np.asarray(rows[name])[i], width,
                   label=name, color=f"C{k}")
        ax.set_ylim(0, 1)
        ax.set_xticks(range(len(classes)), [c[:3] for c in classes], fontsize=6, rotation=90)
        ax.tick_params(axis="y", labelsize=6)
    axes[1][0].legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    return fig


def labelled_faces(images, labels, clean_labels, classes, cols: int = 8, title: str = ""):
    """A grid of faces, each titled with its training label; where that label differs from the clean one,
    the title is red and names both (``given`` over ``clean``).

    Args:
        images: uint8 (N, 3, H, W) or (N, H, W, 3) (one channel: drawn in grey).
        labels: (N,) the training labels (noisy where noise was injected).
        clean_labels: (N,) the clean labels, or ``None`` (every tile shows its label only); ``-1``: unknown.
        classes: class names, indexed by label.
    Returns:
        a figure with ``ceil(N / cols)`` rows of ``cols`` tiles.
    """
    import numpy as np
    images = np.asarray(images)
    if images.shape[1] in (1, 3) and images.shape[-1] not in (1, 3):
        images = images.transpose(0, 2, 3, 1)
    n = len(images)
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.45 * cols, 1.75 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = images[i]
        ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None)
        given = classes[int(labels[i])]
        clean = None if clean_labels is None or clean_labels[i] < 0 else int(clean_labels[i])
        if clean is not None and clean != int(labels[i]):
            ax.set_title(f"given: {given}\nclean: {classes[clean]}", fontsize=7, color="tab:red")
        else:
            ax.set_title(given, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


SYMMETRIC_RATE = {"clean": 0.0, "sym10": 0.1, "sym20": 0.2, "sym30": 0.3}


def accuracy_vs_noise(rows: list[dict], key: str = "mean_last_k", title: str = ""):
    """Test accuracy against the symmetric noise rate, one line per method; ``asym30`` and
    ``fer2013`` (real noise) runs are drawn as separate points to the right.

    Args:
        rows: grid results (``benchmarks/results/ferplus-grid-*.json`` ``runs``): dicts with
            ``method``, ``setting`` and ``protocol`` (``last``, ``mean_last_k``, ``best_val``).
            Several seeds of one (method, setting) are averaged, with their std as error bars.
        key: which protocol number.
    """
    import numpy as np
    extra = [s for s in ("asym30", "fer2013") if any(r["setting"] == s for r in rows)]
    methods = sorted({r["method"] for r in rows}, key=lambda m: list(STYLE).index(m) if m in STYLE else 99)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    xs_extra = {s: 0.4 + 0.1 * i for i, s in enumerate(extra)}
    for j, m in enumerate(methods):
        def stat(setting):                  # called within this iteration only
            vals = [100 * r["protocol"][key] for r in rows if r["method"] == m and r["setting"] == setting]  # noqa: B023
            return (np.mean(vals), np.std(vals)) if vals else None
        pts = [(SYMMETRIC_RATE[s], *stat(s)) for s in SYMMETRIC_RATE if stat(s)]
        color = STYLE.get(m)
        if pts:
            x, y, e = map(np.array, zip(*pts))
            ax.errorbar(100 * x, y, yerr=e, marker="o", ms=4, capsize=2, label=m, color=color)
        for s in extra:
            st = stat(s)
            if st:
                ax.errorbar(100 * xs_extra[s] + (j - len(methods) / 2) * 0.6, st[0], yerr=st[1], marker="s", ms=5,
                            capsize=2, color=color, ls="none", label=None if pts else m)
    ticks = [0, 10, 20, 30] + [100 * xs_extra[s] for s in extra]
    ax.set_xticks(ticks, ["0", "10", "20", "30"]
                  + [{"asym30": "asym\n30%", "fer2013": "FER2013\nlabels"}[s] for s in extra])
    if extra:
        ax.axvline(35, color="gray", lw=0.8, ls=":")
    ax.set(xlabel="symmetric label noise (%)", ylabel=f"test accuracy (%), {key.replace('_', ' ')}",
           title=title or "accuracy under label noise")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
