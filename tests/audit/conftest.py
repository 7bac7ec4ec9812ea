"""A tiny image-folder dataset with planted label flips, and runs trained on it (shared by the audit tests).

The classes differ by colour (plus pixel noise and brightness jitter), so a ResNet-10 learns them in
two epochs from 120 images: its loss then tells the planted (30% symmetric) flips from the intact
labels, which is what the audit has to carry through to its table without mixing rows up.
"""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferlab.engine.config import TrainConfig
from ferlab.engine.trainer import fit

CLASSES = ("anger", "happiness", "sadness", "surprise")
COLOURS = np.array([[220, 40, 40], [40, 200, 40], [40, 60, 220], [210, 200, 40]])
N = 120


def write_colour_faces(root: Path, n: int = N, size: int = 32, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(n):
        c = i % len(CLASSES)
        folder = root / "train" / CLASSES[c]
        folder.mkdir(parents=True, exist_ok=True)
        img = COLOURS[c] * rng.uniform(0.6, 1.0) + rng.normal(0, 40, (size, size, 3))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"img{i:03d}.png")
    return root


def planted_config(root: Path, out_dir: Path, name: str, method: str = "baseline", noise_seed: int = 0) -> TrainConfig:
    return TrainConfig(name=name, out_dir=str(out_dir), method=method, dataset="folder", data_root=str(root),
                       dataset_args={"image_size": 32}, backbone="resnet10", backbone_args={"widths": [8, 16, 32, 64]},
                       input_size=32, epochs=2, lr=1e-3,
                       batch_size=16, noise="symmetric", noise_rate=0.3, noise_seed=noise_seed, seed=0,
                       val_split=None, test_split=None, progress=False)


@pytest.fixture(scope="session")
def make_planted_config():
    """``(root, out_dir, name, method="baseline", noise_seed=0) -> TrainConfig`` of a tiny run on the folder."""
    return planted_config


@pytest.fixture(scope="session")
def planted_root(tmp_path_factory) -> Path:
    return write_colour_faces(tmp_path_factory.mktemp("colour-faces"))


@pytest.fixture(scope="session")
def planted_runs(planted_root, tmp_path_factory) -> Path:
    """``baseline`` and ``rul`` runs on the planted-flip folder (same noisy labels)."""
    out = tmp_path_factory.mktemp("audit-runs")
    for method in ("baseline", "rul"):
        fit(planted_config(planted_root, out, method, method))
    return out


@pytest.fixture(scope="session")
def planted_folds(planted_runs):
    """K = 2 fold runs of the planted baseline's own config, beside it (where ``ferlab audit --cleanlab RUN``
    puts them): (config, ``cross_val_probs`` result, its log lines)."""
    from ferlab.audit import cross_val_probs
    cfg = TrainConfig.from_yaml(planted_runs / "baseline" / "config.yaml")
    logs = []
    out = cross_val_probs(cfg, k=2, log=logs.append)
    return cfg, out, logs
