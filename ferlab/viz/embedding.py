"""Penultimate-feature extraction (cached as ``.npz``), UMAP / t-SNE, and the paper figure
that colours one embedding by the noisy training label and by the latent clean label.

    feats = extract_features(method, dataset, cache="runs/x/features-train.npz")
    xy = embed(feats["features"], how="umap", seed=0)
    fig = noisy_vs_clean_figure(xy, feats["labels"], feats["clean_labels"], classes=dataset.classes)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..atomic import write_atomic
from ..engine.inference import dataset_features
from .cam import unwrap

CACHE_KEYS = ("features", "labels", "clean_labels", "noisy", "indices")


@torch.no_grad()
def extract_features(method, dataset, device: str | torch.device = "cpu", batch_size: int = 256,
                     cache: str | Path | None = None, progress: bool = True) -> dict[str, np.ndarray]:
    """Penultimate features of every sample (``method.features``, eval mode, eval transform).

    Returns (and, with ``cache``, saves / reuses) a dict: ``features`` (N, D) float32,
    ``labels`` (N,) training labels (maybe noisy), ``clean_labels`` (N,) (-1 when unknown),
    ``noisy`` (N,) bool label != clean label, ``indices`` (N,) dataset indices.
    A cache whose sample count or labels differ from ``dataset`` is refused, not silently reused.
    """
    labels = np.asarray(dataset.labels, dtype=np.int64)
    clean = np.asarray(dataset.clean_labels if dataset.clean_labels is not None else np.full(len(labels), -1),
                       dtype=np.int64)
    if cache is not None and Path(cache).is_file():
        data = load_features(cache)
        if len(data["labels"]) != len(labels) or not np.array_equal(data["labels"], labels):
            raise ValueError(f"{cache}: cached features belong to another dataset or label set "
                             f"({len(data['labels'])} samples vs {len(labels)}); delete it or choose another path")
        return data
    feats = dataset_features(unwrap(method), dataset, device, batch_size, progress)
    data = {"features": feats, "labels": labels, "clean_labels": clean,
            "noisy": (clean >= 0) & (labels != clean), "indices": np.arange(len(labels))}
    if cache is not None:
        save_features(data, cache)
    return data


def save_features(data: dict, path: str | Path) -> Path:
    """Write the :data:`CACHE_KEYS` arrays of an :func:`extract_features` dict as a compressed
    ``.npz`` to ``path`` atomically; returns ``path``."""
    path = Path(path)
    write_atomic(path, lambda f: np.savez_compressed(f, **{k: data[k] for k in CACHE_KEYS}))
    return path


def load_features(path: str | Path) -> dict[str, np.ndarray]:
    """Read a feature cache written by :func:`save_features`.

    Raises:
        ValueError: The file lacks one of :data:`CACHE_KEYS`.
    """
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in CACHE_KEYS if k not in z.files]
        if missing:
            raise ValueError(f"{path}: not a ferlab feature cache (missing {missing})")
        return {k: z[k] for k in CACHE_KEYS}


def embed(features: np.ndarray, how: str = "umap", seed: int = 0, **kw) -> np.ndarray:
    """(N, D) -> (N, 2) with UMAP (umap-learn, seeded) or t-SNE (scikit-learn)."""
    if how == "umap":
        import umap
        return umap.UMAP(n_components=2, random_state=seed, **kw).fit_transform(features)
    if how == "tsne":
        from sklearn.manifold import TSNE
        perplexity = kw.pop("perplexity", min(30.0, (len(features) - 1) / 3))
        return TSNE(n_components=2, random_state=seed, perplexity=perplexity, init="pca", **kw).fit_transform(features)
    raise ValueError(f"how must be 'umap' or 'tsne', got {how!r}")


def _draw_noisy_vs_clean(axes, xy, labels, clean_labels, names, point_size, row_label=""):
    import matplotlib.pyplot as plt
    cmap = plt.get_cmap("tab10")
    for ax, lab, name in ((axes[0], labels, "training label (noisy)"), (axes[1], clean_labels, "clean label")):
        for c in range(len(names)):
            sel = lab == c
            ax.scatter(xy[sel, 0], xy[sel, 1], s=point_size, color=cmap(c % 10), label=names[c], linewidths=0)
        ax.set_title(f"{row_label}: {name}" if row_label else name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    flipped = (clean_labels >= 0) & (labels != clean_labels)
    axes[1].scatter(xy[flipped, 0], xy[flipped, 1], s=point_size * 2, facecolors="none", edgecolors="k",
                    linewidths=0.3, label="label flipped")


def noisy_vs_clean_figure(xy: np.ndarray, labels: np.ndarray, clean_labels: np.ndarray, classes=None,
                          title: str = "", point_size: float = 3.0):
    """Two panels over the same 2-D embedding (N, 2): coloured by the (noisy) training label, and by
    the latent clean label, flipped samples outlined in black on the right."""
    return noisy_vs_clean_grid({"": (xy, labels, clean_labels)}, classes, title, point_size)


def noisy_vs_clean_grid(rows: dict[str, tuple], classes=None, title: str = "", point_size: float = 3.0):
    """One row per run: ``name -> (xy (N, 2), labels (N,), clean_labels (N,))``, each drawn as the
    noisy-label / clean-label panel pair of :func:`noisy_vs_clean_figure`."""
    import matplotlib.pyplot as plt

    k = int(max(max(r[1].max(), r[2].max()) for r in rows.values())) + 1
    names = list(classes) if classes is not None else [str(i) for i in range(k)]
    fig, axes = plt.subplots(len(rows), 2, figsize=(11, 5 * len(rows)), squeeze=False)
    for ax_pair, (name, (xy, labels, clean)) in zip(axes, rows.items()):
        _draw_noisy_vs_clean(ax_pair, xy, labels, clean, names, point_size, name)
    axes[0][1].legend(markerscale=3, fontsize=8, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
