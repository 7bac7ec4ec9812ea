"""``ferlab figures``: rebuild the committed figures from run directories.

Each figure names the runs it needs (``<runs>/<method>-<setting>-s<seed>``, the layout of
``benchmarks/run_grid.py``). Figures whose runs are all present are rebuilt; the others are
listed with the command that trains what is missing. ``manifest.json`` in the output folder
records, per figure, the files, the runs used, the command and the git commit.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np


@dataclass
class Figure:
    name: str                        # file stem, prefixed with the runs folder's name
    runs: tuple[str, ...]            # run names the figure needs
    build: Callable                  # (dict name -> run dir) -> matplotlib Figure
    formats: tuple[str, ...] = ("png", "svg")
    optional: tuple[str, ...] = ()   # runs drawn when they exist


def _curves(setting: str):
    def build(runs: dict[str, Path]):
        from .engine.trainer import read_history
        from .viz.plots import memorisation_curves
        return memorisation_curves({name.split("-")[0]: read_history(run) for name, run in runs.items()},
                                   title=f"{setting} training labels")
    return build


def _attention(runs: dict[str, Path]):
    from .data import build_dataset
    from .engine.trainer import eval_dataset_args, load_run_method
    from .viz.cam import attention_figure

    methods, cfg = {}, None
    for name, run in runs.items():
        methods[name.split("-")[0]], cfg, _ = load_run_method(run / "checkpoints" / "last.pt", device="cpu")
    ds = build_dataset(cfg.dataset, cfg.data_root, cfg.test_split, **eval_dataset_args(cfg))
    pick = np.concatenate([np.flatnonzero(ds.labels == c)[:1] for c in range(ds.num_classes)])
    batch = ds.subset(pick).preload(progress=False).get_batch(np.arange(len(pick)))
    return attention_figure(methods, batch["image"], batch["label"], class_names=ds.classes)


# the signal each method's panel shows (label_loss: the small-loss criterion, for methods without their own)
OWN_SIGNAL = {"baseline": "label_loss", "eac": "label_loss", "rul": "uncertainty", "dmue": "1-confidence",
              "lanet": "1-mass", "ldlva": "1-lambda"}


def _signals(runs: dict[str, Path]):
    from .engine.signals import run_signals
    from .viz.plots import noise_signal_histograms
    panels = {}
    for name, run in runs.items():
        method = name.split("-")[0]
        sig = run_signals(run)
        key = OWN_SIGNAL[method]
        panels[f"{method}: {key}"] = (sig[key][sig["known"]], sig["flipped"][sig["known"]])
    return noise_signal_histograms(panels, title="noise signals on the 30%-symmetric training labels")


def _confusion(runs: dict[str, Path]):
    from .engine.config import TrainConfig
    from .viz.plots import confusion_matrices
    mats = {name.split("-")[0]: json.loads((run / "summary.json").read_text())["test_last"]["confusion"]
            for name, run in runs.items()}
    cfg = TrainConfig.from_yaml(next(iter(runs.values())) / "config.yaml")
    from .data import build_dataset
    classes = build_dataset(cfg.dataset, cfg.data_root, cfg.test_split, **{**cfg.dataset_args, "label_mode": "majority"}).classes
    return confusion_matrices(mats, classes, title="FER2013Test (majority labels), last epoch")


def _latent_distributions(runs: dict[str, Path]):
    """DMUE's mined latent distribution for training images whose label was flipped, next to the
    FERPlus annotator votes and the label the run was given."""
    import torch

    from .data import build_dataset
    from .engine.trainer import load_run_method
    from .viz.plots import label_distributions
    run = next(iter(runs.values()))
    method, cfg, _ = load_run_method(run / "checkpoints" / "last.pt", device="cpu")
    noisy = _noisy_train_set(cfg)
    votes = build_dataset(cfg.dataset, cfg.data_root, cfg.train_split, **{**cfg.dataset_args, "label_mode": "votes"})
    flipped = np.flatnonzero(noisy.labels != noisy.clean_labels)
    pick = np.concatenate([flipped[noisy.clean_labels[flipped] == c][:1] for c in range(noisy.num_classes)])[:6]
    b = noisy.subset(pick).preload(progress=False).get_batch(np.arange(len(pick)))
    with torch.no_grad():
        x = method.prepare(b["image"])
        latent = method.latent_distribution(x, b["label"]).numpy()
        pred = method.predict(x).softmax(1).numpy()
    given = np.eye(noisy.num_classes)[noisy.labels[pick]]
    row_of = {str(p): i for i, p in enumerate(votes.paths)}
    vote_rows = np.asarray([votes.soft_labels[row_of[str(noisy.paths[i])]] for i in pick])
    titles = [f"given {noisy.classes[noisy.labels[i]][:4]}, clean {noisy.classes[noisy.clean_labels[i]][:4]}" for i in pick]
    return label_distributions(b["image"], {"FERPlus votes": vote_rows, "given (noisy)": given,
                                            "DMUE latent": latent, "DMUE prediction": pred}, noisy.classes, titles)


def _noisy_train_set(cfg):
    from .engine.trainer import build_train_set
    return build_train_set(cfg)[0]


def _umap(runs: dict[str, Path]):
    """UMAP of the training features of each run, coloured by noisy vs clean label (EAC paper figure)."""
    from .engine.trainer import load_run_method
    from .viz.embedding import embed, extract_features, noisy_vs_clean_grid
    rows, classes = {}, None
    for name, run in runs.items():
        method, cfg, _ = load_run_method(run / "checkpoints" / "last.pt", device="cpu")
        ds = _noisy_train_set(cfg).preload(progress=False)
        data = extract_features(method, ds, cache=run / "features-train.npz", progress=False)
        rows[name.split("-")[0]] = (embed(data["features"], "umap", seed=0), data["labels"], data["clean_labels"])
        classes = ds.classes
    return noisy_vs_clean_grid(rows, classes, title="UMAP of training features, 30% symmetric noise", point_size=2)


def _accuracy_vs_noise(runs: dict[str, Path]):
    from .viz.plots import accuracy_vs_noise
    rows = []
    for name, run in runs.items():
        method, setting, _ = name.split("-")
        rows.append({"method": method, "setting": setting,
                     "protocol": json.loads((run / "summary.json").read_text())["protocol"]})
    return accuracy_vs_noise(rows, title="FERPlus (cpu preset): test accuracy, mean of the last 5 epochs")


def registry(seed: int = 0) -> list[Figure]:
    methods = ("baseline", "eac", "rul", "dmue")
    later = ("lanet", "ldlva")          # drawn when their runs exist
    figs = [Figure(f"curves-{s}", tuple(f"{m}-{s}-s{seed}" for m in methods[:3]), _curves(s),
                   optional=tuple(f"{m}-{s}-s{seed}" for m in (methods[3], *later)))
            for s in ("sym30", "asym30", "fer2013")]
    figs.append(Figure("attention-sym30", (f"baseline-sym30-s{seed}", f"eac-sym30-s{seed}"), _attention, ("png",)))
    figs.append(Figure("umap-sym30", (f"baseline-sym30-s{seed}", f"eac-sym30-s{seed}"), _umap, ("png",)))
    figs.append(Figure("signals-sym30", tuple(f"{m}-sym30-s{seed}" for m in methods), _signals,
                       optional=tuple(f"{m}-sym30-s{seed}" for m in later)))
    figs.append(Figure("confusion-fer2013", tuple(f"{m}-fer2013-s{seed}" for m in methods), _confusion,
                       optional=tuple(f"{m}-fer2013-s{seed}" for m in later)))
    # baseline and EAC on clean / sym30 / real labels at least; RUL, asym30 and more noise rates when trained
    # (DMUE: its faithful cpu rows fail from scratch, README; it is in the tables only)
    settings = ("clean", "sym10", "sym20", "sym30", "asym30", "fer2013")
    need = tuple(f"{m}-{s}-s{seed}" for m in ("baseline", "eac") for s in ("clean", "sym30", "fer2013"))
    figs.append(Figure("accuracy-vs-noise", need, _accuracy_vs_noise,
                       optional=tuple(f"{m}-{s}-s{seed}" for m in ("baseline", "eac", "rul", *later) for s in settings
                                      if f"{m}-{s}-s{seed}" not in need)))
    figs.append(Figure("latent-distributions-sym30", (f"dmue-sym30-s{seed}",), _latent_distributions, ("png",)))
    return figs


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).parent).stdout.strip()
    except Exception:
        return None


def _finished(run: Path) -> bool:
    return (run / "summary.json").is_file() and (run / "checkpoints" / "last.pt").is_file()


def build_figures(runs_dir: str | Path, out: str | Path, only: list[str] | None = None, seed: int = 0) -> dict:
    """Rebuild every figure whose runs exist in ``runs_dir``; returns the manifest
    (``built``: name -> entry, ``missing``: name -> runs still to train)."""
    from .viz.plots import save_figure

    runs_dir, out = Path(runs_dir), Path(out)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"figures": {}}
    missing = {}
    for fig in registry(seed):
        if only and fig.name not in only:
            continue
        absent = [r for r in fig.runs if not _finished(runs_dir / r)]
        if absent:
            missing[fig.name] = absent
            continue
        used = [*fig.runs, *(r for r in fig.optional if _finished(runs_dir / r))]
        figure = fig.build({r: runs_dir / r for r in used})
        stem = f"{runs_dir.name}-{fig.name}"
        files = [str(p) for p in save_figure(figure, out / stem, fig.formats)]
        manifest["figures"][stem] = {"files": files, "runs": [str(runs_dir / r) for r in used],
                                     "command": " ".join(["ferlab", "figures", "--runs", str(runs_dir), "--out", str(out)]),
                                     "commit": _commit()}
    out.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return {"built": manifest["figures"], "missing": missing}


def cmd_figures(args) -> int:
    result = build_figures(args.runs, args.out, args.only)
    for name, absent in result["missing"].items():
        methods = sorted({r.split("-")[0] for r in absent})
        settings = sorted({r.split("-")[1] for r in absent})
        print(f"{name}: missing runs {absent} in {args.runs}; train them with\n"
              f"  python benchmarks/run_grid.py --methods {' '.join(methods)} --settings {' '.join(settings)}",
              file=sys.stderr)
    print(f"wrote {args.out}/manifest.json ({len(result['built'])} figures)")
    return 0 if not result["missing"] else 1
