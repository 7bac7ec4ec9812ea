"""Neighbour lists for LDLVA: the K nearest training samples of every training sample in an
auxiliary space that never looks at a label.

Spaces (``build_neighbors(dataset, space=...)``):

- ``va``: the dataset's own valence/arousal (AffectNet, synthetic); similarity exp(-L1 / 0.5),
  the official a_ij.
- ``landmarks``: the dataset's landmarks, each face centred and scaled to unit RMS radius.
- ``features``: penultimate features (cosine distance), given as ``coordinates`` (N, D). Those of a
  saved run come from :mod:`ferlab.engine.neighbors` (``build_neighbors(..., checkpoint=...)``,
  ``ferlab neighbors --checkpoint``, LDLVA's ``space_checkpoint``): this module never loads a run.
  For a noisy-label run use a checkpoint that never saw the clean labels (e.g. one trained on the
  same noisy labels).
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
import io
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_atomic
from ..errors import numpy_load_problem
from .errors import DatasetError

SPACES = ("va", "pseudo_va", "landmarks", "features")


def nearest(points: np.ndarray, k: int, metric: str = "l1", chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """K nearest other points of every point: (N, A) -> knn (N, K) int64, distances (N, K).
    The point itself is never its own neighbour (even with duplicates); ties go to the lower index."""
    x = torch.as_tensor(np.asarray(points, dtype=np.float32))
    n = len(x)
    if not 0 < k < n:
        raise DatasetError(f"k must be in [1, {n - 1}] for {n} points, got {k}")
    if metric == "cosine":
        x = torch.nn.functional.normalize(x, dim=1)
    elif metric not in ("l1", "l2"):
        raise DatasetError(f"metric must be 'l1', 'l2' or 'cosine', got {metric!r}")
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


def space_coordinates(dataset, space: str, coordinates=None) -> tuple[np.ndarray, str]:
    """The (N, A) points of ``dataset`` in ``space`` (``coordinates`` when given) and the metric that
    ranks them."""
    if space not in SPACES:
        raise DatasetError(f"space must be one of {SPACES}, got {space!r}")
    if coordinates is not None:
        pts = np.asarray(coordinates, dtype=np.float32)
        if len(pts) != len(dataset):
            raise DatasetError(f"coordinates have {len(pts)} rows, dataset {dataset.name} has {len(dataset)} samples")
        return pts, "cosine" if space == "features" else "l1"
    if space == "va":
        if dataset.va is None:
            raise DatasetError(f"dataset {dataset.name} carries no valence/arousal; use space 'pseudo_va' (a VA "
                             f"regressor's predictions), 'landmarks' or 'features'")
        return dataset.va, "l1"
    if space == "pseudo_va":
        raise DatasetError("space 'pseudo_va' needs coordinates=: the (N, 2) valence/arousal a VA regressor "
                         "predicts for this dataset")
    if space == "landmarks":
        if dataset.landmarks is None:
            raise DatasetError(f"dataset {dataset.name} has no landmarks; compute them with `ferlab landmarks`")
        return _normalised_landmarks(dataset.landmarks), "l1"
    raise DatasetError("space 'features' needs the (N, D) features as coordinates=; those of a ferlab run's "
                       "checkpoint: ferlab.engine.neighbors.build_neighbors(..., checkpoint=), "
                       "`ferlab neighbors --checkpoint`, LDLVA's space_checkpoint")


def build_neighbors(dataset, space: str = "va", k: int = 8, scale: float | None = None, coordinates=None,
                    source: str = "") -> dict:
    """Neighbour lists of ``dataset`` in ``space``: ``knn`` (N, K), ``similarity`` (N, K) =
    exp(-distance / scale), ``space``, ``scale``, ``source`` (where ``coordinates`` came from, e.g. a
    checkpoint path). Uses no label of any kind."""
    pts, metric = space_coordinates(dataset, space, coordinates)
    knn, dist = nearest(pts, k, metric)
    if scale is None:
        scale = 0.5 if space in ("va", "pseudo_va") else float(max(dist.mean(), 1e-6))
    return {"knn": knn, "similarity": np.exp(-dist / scale).astype(np.float32), "space": space,
            "scale": float(scale), "source": source}


def save_neighbors(data: dict, path: str | Path) -> Path:
    """Write a neighbour dict (``knn`` (N, K) int, ``similarity`` (N, K) float, ``space``, and
    optionally ``scale``, ``source``) atomically as ``.npz`` to ``path``; returns ``path``."""
    path = Path(path)
    write_atomic(path, lambda f: np.savez(f, knn=data["knn"], similarity=data["similarity"],
                                          space=np.array(data["space"]), scale=np.array(data.get("scale", 0.5)),
                                          source=np.array(data.get("source", ""))))
    return path


def load_neighbors(path: str | Path, n: int | None = None, k: int | None = None) -> dict:
    """Read a ``.npz`` (ferlab) or ``.csv`` (official ``knn`` column) neighbour file; check that it
    has ``n`` rows and at least ``k`` neighbours each, and keep the first ``k``."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no neighbour file (build one with `ferlab neighbors`)")
    if path.suffix == ".csv":
        knn = read_knn_csv(path)
        data = {"knn": knn, "similarity": np.ones(knn.shape, np.float32), "space": "csv", "scale": 0.0}
    else:
        try:
            with np.load(path, allow_pickle=False) as z:
                missing = [key for key in ("knn", "similarity", "space") if key not in z.files]
                if missing:
                    raise DatasetError(f"{path}: not a ferlab neighbour file (missing {', '.join(missing)}; "
                                       f"it has {', '.join(z.files) or 'nothing'})")
                knn, sim = z["knn"], z["similarity"]
                if knn.dtype.kind not in "iu" or sim.dtype.kind not in "fiu" or knn.ndim != 2 or sim.shape != knn.shape:
                    raise DatasetError(f"{path}: knn must be an (N, K) integer array and similarity an (N, K) "
                                       f"number array, got knn {knn.dtype} {knn.shape}, similarity {sim.dtype} "
                                       f"{sim.shape}")
                data = {"knn": knn.astype(np.int64), "similarity": sim.astype(np.float32),
                        "space": str(z["space"]), "scale": float(z["scale"]) if "scale" in z.files else 0.0}
        except DatasetError:
            raise
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as e:   # object arrays, not npz, truncated
            raise DatasetError(f"{path}: not a readable .npz neighbour file (knn, similarity, space): "
                               f"{numpy_load_problem(e)}") from e
        if not np.isfinite(data["similarity"]).all() or (data["similarity"] < 0).any():
            bad = ~np.isfinite(data["similarity"]).all(1) | (data["similarity"] < 0).any(1)
            raise DatasetError(f"{path}: similarities must be finite and >= 0; row {int(np.flatnonzero(bad)[0])} "
                               f"is not ({int(bad.sum())} rows)")
    if len(data["knn"]) == 0 or data["knn"].shape[1] == 0:
        raise DatasetError(f"{path}: no neighbours in it (knn has shape {data['knn'].shape})")
    if n is not None and len(data["knn"]) != n:
        raise DatasetError(f"{path}: {len(data['knn'])} rows but the training set has {n} samples "
                         f"(built for another dataset, limit_train or split?)")
    if k is not None:
        if data["knn"].shape[1] < k:
            raise DatasetError(f"{path}: {data['knn'].shape[1]} neighbours per sample, {k} requested")
        data["knn"], data["similarity"] = data["knn"][:, :k], data["similarity"][:, :k]
    rows = np.arange(len(data["knn"]))[:, None]
    if (data["knn"] == rows).any() or data["knn"].min() < 0 or data["knn"].max() >= len(data["knn"]):
        raise DatasetError(f"{path}: neighbour indices must be other rows of the same file (0..{len(data['knn']) - 1})")
    return data


def read_knn_csv(path: str | Path, column: str = "knn") -> np.ndarray:
    """The official CSV's ``knn`` column (``;``-separated row indices into the same CSV) -> (N, K)."""
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.DictReader(f)
        if column not in (reader.fieldnames or []):
            raise DatasetError(f"{path}: no {column!r} column (have {reader.fieldnames})")
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                rows.append([int(v) for v in (row[column] or "").split(";") if v.strip()])
            except ValueError:
                raise DatasetError(f"{path}:{line}: {column} must be ';'-separated integers, "
                                 f"got {row[column]!r}") from None
    if not rows:
        raise DatasetError(f"{path}: no rows below the header")
    k = min(map(len, rows))
    if k == 0:
        raise DatasetError(f"{path}: a row has an empty {column} column")
    return np.array([r[:k] for r in rows], dtype=np.int64)


def write_knn_csv(path: str | Path, knn: np.ndarray, columns: dict | None = None) -> Path:
    """Write the official CSV layout: the given ``columns`` (e.g. ``subDirectory_filePath``,
    ``expression``, ``valence``, ``arousal``: lists of N values) then ``knn``."""
    columns = dict(columns or {})
    path = Path(path)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([*columns, "knn"])
    for i, row in enumerate(knn):
        w.writerow([*(columns[c][i] for c in columns), ";".join(str(int(j)) for j in row)])
    write_atomic(path, lambda f: f.write(buf.getvalue().encode("utf-8")))
    return path


def load_coordinates(path: str | Path) -> np.ndarray:
    """An ``.npy`` file of (N, 2) predicted valence/arousal (``ferlab neighbors --coordinates``)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: coordinates file not found")
    try:
        pts = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DatasetError(f"{path}: not a readable .npy array ({numpy_load_problem(e)})") from e
    if not isinstance(pts, np.ndarray) or pts.ndim != 2 or pts.dtype.kind not in "fiu":
        raise DatasetError(f"{path}: expected an (N, A) number array, got {getattr(pts, 'dtype', type(pts))} "
                           f"{getattr(pts, 'shape', '')}")
    if not np.isfinite(pts).all():
        raise DatasetError(f"{path}: coordinates hold NaN/inf")
    return pts.astype(np.float32)
