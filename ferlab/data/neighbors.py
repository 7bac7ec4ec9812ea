"""Neighbour lists for LDLVA: the K nearest training samples of every training sample in an
auxiliary space that never looks at a label.

Spaces (``build_neighbors(dataset, space=...)``):

- ``va``: the dataset's own valence/arousal (AffectNet, synthetic); similarity exp(-L1 / 0.5),
  the official a_ij.
- ``landmarks``: the dataset's landmarks, each face centred and scaled to unit RMS radius.
- ``features``: penultimate features of a ferlab checkpoint (cosine distance). For a noisy-label
  run use a checkpoint that never saw the clean labels (e.g. one trained on the same noisy labels).
- ``pseudo_va``: a ferlab VA regressor applied to this dataset (the paper's pipeline): pass the
  regressor's (N, 2) predictions as ``coordinates``.

Neighbours are ranked by L1 distance in ``va``/``pseudo_va``/``landmarks`` and by cosine distance
in ``features``. For the non-VA spaces the official scale 0.5 of a_ij = exp(-d / scale) has no
meaning, so ``scale`` defaults to the mean K-NN distance there (a_ij ~ e^-1 on average).

Files: ``.npz`` with ``knn`` (N, K) int64, ``similarity`` (N, K) float32, ``space``, ``scale``, ``source``;
the official CSV ``knn`` column (``;``-separated row indices) is read and written by
:func:`read_knn_csv` / :func:`write_knn_csv`.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

SPACES = ("va", "pseudo_va", "landmarks", "features")


def nearest(points: np.ndarray, k: int, metric: str = "l1", chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """K nearest other points of every point: (N, A) -> knn (N, K) int64, distances (N, K).
    The point itself is never its own neighbour (even with duplicates); ties go to the lower index."""
    x = torch.as_tensor(np.asarray(points, dtype=np.float32))
    n = len(x)
    if not 0 < k < n:
        raise ValueError(f"k must be in [1, {n - 1}] for {n} points, got {k}")
    if metric == "cosine":
        x = torch.nn.functional.normalize(x, dim=1)
    elif metric not in ("l1", "l2"):
        raise ValueError(f"metric must be 'l1', 'l2' or 'cosine', got {metric!r}")
    knn, dist = [], []
    for lo in range(0, n, chunk):
        q = x[lo:lo + chunk]
        if metric == "cosine":
            d = 1 - q @ x.T
        else:
            d = torch.cdist(q, x, p=1 if metric == "l1" else 2)
        d[torch.arange(len(q)), torch.arange(lo, lo + len(q))] = float("inf")
        # stable sort: equal distances keep index order
        v, i = torch.sort(d, dim=1, stable=True)
        knn.append(i[:, :k])
        dist.append(v[:, :k])
    return torch.cat(knn).numpy().astype(np.int64), torch.cat(dist).numpy().astype(np.float32)


def _normalised_landmarks(lm: np.ndarray) -> np.ndarray:
    lm = np.asarray(lm, dtype=np.float32)
    c = lm - lm.mean(1, keepdims=True)
    r = np.sqrt((c ** 2).sum(-1).mean(1, keepdims=True))[..., None]
    return (c / np.maximum(r, 1e-6)).reshape(len(lm), -1)


def space_coordinates(dataset, space: str, checkpoint: str | Path | None = None, coordinates=None,
                      device: str = "cpu", progress: bool = True) -> tuple[np.ndarray, str]:
    """The (N, A) points of ``dataset`` in ``space`` and the metric that ranks them."""
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}")
    if coordinates is not None:
        pts = np.asarray(coordinates, dtype=np.float32)
        if len(pts) != len(dataset):
            raise ValueError(f"coordinates have {len(pts)} rows, dataset {dataset.name} has {len(dataset)} samples")
        return pts, "cosine" if space == "features" else "l1"
    if space == "va":
        if dataset.va is None:
            raise ValueError(f"dataset {dataset.name} carries no valence/arousal; use space 'pseudo_va' (a VA "
                             f"regressor's predictions), 'landmarks' or 'features'")
        return dataset.va, "l1"
    if space == "pseudo_va":
        raise ValueError("space 'pseudo_va' needs coordinates=: the (N, 2) valence/arousal a VA regressor "
                         "predicts for this dataset")
    if space == "landmarks":
        if dataset.landmarks is None:
            raise ValueError(f"dataset {dataset.name} has no landmarks; compute them with `ferlab landmarks`")
        return _normalised_landmarks(dataset.landmarks), "l1"
    if checkpoint is None:
        raise ValueError("space 'features' needs checkpoint= (a ferlab run's checkpoint)")
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"{checkpoint}: no checkpoint for the feature space (train that run first)")
    from ..engine.trainer import load_run_method
    from ..viz.embedding import extract_features
    method, _, dev = load_run_method(checkpoint, device=device)
    return extract_features(method, dataset, dev, progress=progress)["features"], "cosine"


def build_neighbors(dataset, space: str = "va", k: int = 8, scale: float | None = None,
                    checkpoint: str | Path | None = None, coordinates=None, device: str = "cpu",
                    progress: bool = True) -> dict:
    """Neighbour lists of ``dataset`` in ``space``: ``knn`` (N, K), ``similarity`` (N, K) =
    exp(-distance / scale), ``space``, ``scale``, ``source``. Uses no label of any kind."""
    pts, metric = space_coordinates(dataset, space, checkpoint, coordinates, device, progress)
    knn, dist = nearest(pts, k, metric)
    if scale is None:
        scale = 0.5 if space in ("va", "pseudo_va") else float(max(dist.mean(), 1e-6))
    return {"knn": knn, "similarity": np.exp(-dist / scale).astype(np.float32), "space": space,
            "scale": float(scale), "source": str(checkpoint) if checkpoint else ""}


def save_neighbors(data: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, knn=data["knn"], similarity=data["similarity"], space=np.array(data["space"]),
             scale=np.array(data.get("scale", 0.5)), source=np.array(data.get("source", "")))
    tmp.replace(path)
    return path


def load_neighbors(path: str | Path, n: int | None = None, k: int | None = None) -> dict:
    """Read a ``.npz`` (ferlab) or ``.csv`` (official ``knn`` column) neighbour file; check that it
    has ``n`` rows and at least ``k`` neighbours each, and keep the first ``k``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no neighbour file (build one with `ferlab neighbors`)")
    if path.suffix == ".csv":
        knn = read_knn_csv(path)
        data = {"knn": knn, "similarity": np.ones(knn.shape, np.float32), "space": "csv", "scale": 0.0}
    else:
        with np.load(path, allow_pickle=False) as z:
            missing = [key for key in ("knn", "similarity", "space") if key not in z.files]
            if missing:
                raise ValueError(f"{path}: not a ferlab neighbour file (missing {missing})")
            data = {"knn": z["knn"].astype(np.int64), "similarity": z["similarity"].astype(np.float32),
                    "space": str(z["space"]), "scale": float(z["scale"]) if "scale" in z.files else 0.0}
    if n is not None and len(data["knn"]) != n:
        raise ValueError(f"{path}: {len(data['knn'])} rows but the training set has {n} samples "
                         f"(built for another dataset, limit_train or split?)")
    if k is not None:
        if data["knn"].shape[1] < k:
            raise ValueError(f"{path}: {data['knn'].shape[1]} neighbours per sample, {k} requested")
        data["knn"], data["similarity"] = data["knn"][:, :k], data["similarity"][:, :k]
    rows = np.arange(len(data["knn"]))[:, None]
    if (data["knn"] == rows).any() or data["knn"].min() < 0 or data["knn"].max() >= len(data["knn"]):
        raise ValueError(f"{path}: neighbour indices must be other rows of the same file (0..{len(data['knn']) - 1})")
    return data


def read_knn_csv(path: str | Path, column: str = "knn") -> np.ndarray:
    """The official CSV's ``knn`` column (``;``-separated row indices into the same CSV) -> (N, K)."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if column not in (reader.fieldnames or []):
            raise ValueError(f"{path}: no {column!r} column (have {reader.fieldnames})")
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                rows.append([int(v) for v in row[column].split(";") if v.strip()])
            except ValueError:
                raise ValueError(f"{path}:{line}: {column} must be ';'-separated integers, "
                                 f"got {row[column]!r}") from None
    k = min(map(len, rows))
    if k == 0:
        raise ValueError(f"{path}: a row has an empty {column} column")
    return np.array([r[:k] for r in rows], dtype=np.int64)


def write_knn_csv(path: str | Path, knn: np.ndarray, columns: dict | None = None) -> Path:
    """Write the official CSV layout: the given ``columns`` (e.g. ``subDirectory_filePath``,
    ``expression``, ``valence``, ``arousal``: lists of N values) then ``knn``."""
    columns = dict(columns or {})
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*columns, "knn"])
        for i, row in enumerate(knn):
            w.writerow([*(columns[c][i] for c in columns), ";".join(str(int(j)) for j in row)])
    tmp.replace(path)
    return path
