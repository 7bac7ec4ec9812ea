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


def registry(seed: int = 0) -> list[Figure]:
    figs = [Figure(f"curves-{s}", tuple(f"{m}-{s}-s{seed}" for m in ("baseline", "eac", "rul")), _curves(s))
            for s in ("sym30", "fer2013")]
    figs.append(Figure("attention-sym30", (f"baseline-sym30-s{seed}", f"eac-sym30-s{seed}"), _attention, ("png",)))
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
        figure = fig.build({r: runs_dir / r for r in fig.runs})
        stem = f"{runs_dir.name}-{fig.name}"
        files = [str(p) for p in save_figure(figure, out / stem, fig.formats)]
        manifest["figures"][stem] = {"files": files, "runs": [str(runs_dir / r) for r in fig.runs],
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
