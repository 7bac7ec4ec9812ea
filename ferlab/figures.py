"""``ferlab figures``: figures from run directories.

Any runs: ``ferlab figures KIND RUN...`` (:data:`KINDS`: ``curves``, ``attention``, ``umap``,
``signals``, ``confusion``; :func:`figure_from_runs`) draws one figure from the runs given, each
labelled by its folder name. The FERPlus grid (:func:`registry`, :func:`build_figures`) is built on
the same builders: each grid figure names the runs it needs (``<runs>/<method>-<setting>-s<seed>``,
the layout of ``benchmarks/run_grid.py``); figures whose runs are all present are rebuilt, the others
are listed with the command that trains what is missing. ``manifest.json`` in the output folder
records, per figure, the files, the runs used, the command and the git commit.
"""
from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import make_dirs
from .errors import UserError


@dataclass
class Figure:
    """One figure of the FERPlus grid (:func:`registry`).

    Attributes:
        name: File stem (prefixed with the runs folder's name when saved).
        runs: Run names the figure needs (all finished, or it is not drawn).
        build: ``build({run name: run directory})`` -> matplotlib Figure.
        formats: File formats written.
        optional: Runs also drawn when they exist.
    """

    name: str                        # file stem, prefixed with the runs folder's name
    runs: tuple[str, ...]            # run names the figure needs
    build: Callable                  # (dict name -> run dir) -> matplotlib Figure
    formats: tuple[str, ...] = ("png", "svg")
    optional: tuple[str, ...] = ()   # runs drawn when they exist


# -- figures of any runs: each builder takes {label: run directory} ------------------------------------
def _checkpoint(run: Path) -> Path:
    return Path(run) / "checkpoints" / "last.pt"


def history_with_final_fit(run: Path) -> list[dict]:
    """A run's per-epoch rows; the end-of-run training fit (``summary.json``, measured on the last
    epoch's model) is added to the last row when that epoch has none (``train_fit_every`` 0 or not
    dividing the epochs)."""
    from .engine.trainer import read_history
    rows = read_history(run)
    summary = Path(run) / "summary.json"
    if rows and not rows[-1].get("train_fit") and summary.is_file():
        fit = json.loads(summary.read_text()).get("train_fit")
        if fit:
            rows[-1] = {**rows[-1], "train_fit": fit}
    return rows


def curves_figure(runs: dict[str, Path], title: str = ""):
    """Test accuracy per epoch and the fit of the flipped / intact training labels, one line per run."""
    from .viz.plots import memorisation_curves
    return memorisation_curves({label: history_with_final_fit(run) for label, run in runs.items()}, title=title)


def first_image_per_class(cfg):
    """The first image of each class of a run's test split (else its validation split, else its training
    split) as a batch dict, and that dataset."""
    from .engine.run_data import build_eval_set, build_train_set
    ds = build_eval_set(cfg, "test") or build_eval_set(cfg, "val") or build_train_set(cfg)[0]
    pick = np.concatenate([np.flatnonzero(ds.labels == c)[:1] for c in range(ds.num_classes)])
    return ds.subset(pick).preload(progress=False).get_batch(np.arange(len(pick))), ds


def attention_runs_figure(runs: dict[str, Path]):
    """EAC's attention figure (classifier CAM on the original / flipped / erased view) for each run, on
    the first test image of each class of the first run's dataset."""
    from .engine.trainer import load_run_method
    from .viz.cam import attention_figure

    methods, cfg = {}, None
    for label, run in runs.items():
        methods[label], run_cfg, _ = load_run_method(_checkpoint(run), device="cpu")
        cfg = cfg or run_cfg
    batch, ds = first_image_per_class(cfg)
    return attention_figure(methods, batch["image"], batch["label"], class_names=ds.classes)


def signals_figure(runs: dict[str, Path], title: str = ""):
    """Per run, its own noise signal (:func:`~ferlab.engine.signals.default_signal`: the method's, else
    ``label_loss``, the small-loss criterion) on intact vs flipped training labels, with AUROC."""
    from .engine.signals import default_signal, run_signals
    from .viz.plots import noise_signal_histograms
    panels = {}
    for label, run in runs.items():
        sig = run_signals(run)
        key = default_signal(sig)
        if not sig["flipped"][sig["known"]].any():
            raise UserError(f"{run}: no training label differs from its clean label (a run without noise): "
                             f"the signals figure needs a noisy run")
        panels[f"{label}: {key}"] = (sig[key][sig["known"]], sig["flipped"][sig["known"]])
    return noise_signal_histograms(panels, title=title)


def run_classes_of(run: Path) -> list[str]:
    """Class names of a run: its ``summary.json``, else its checkpoint, else its dataset."""
    summary = json.loads((Path(run) / "summary.json").read_text())
    if summary.get("classes"):
        return list(summary["classes"])
    from .engine import checkpoint as ckpt
    from .predictor import checkpoint_metadata
    return checkpoint_metadata(ckpt.load(_checkpoint(run)))[0]


def confusion_figure(runs: dict[str, Path], title: str = "test split, last epoch"):
    """Row-normalised test confusion matrices (last epoch, ``summary.json``), one per run."""
    from .viz.plots import confusion_matrices
    mats = {}
    for label, run in runs.items():
        report = json.loads((Path(run) / "summary.json").read_text()).get("test_last")
        if report is None:
            raise UserError(f"{run}: summary.json has no test report (a run without a test split)")
        mats[label] = report["confusion"]
    return confusion_matrices(mats, run_classes_of(next(iter(runs.values()))), title=title)


def _noisy_train_set(cfg):
    from .engine.run_data import build_train_set
    return build_train_set(cfg)[0]


def umap_figure(runs: dict[str, Path], title: str = ""):
    """UMAP of each run's training features, coloured by the noisy and by the clean label (EAC paper
    figure); features are cached in ``<run>/features-train.npz``."""
    from .engine.trainer import load_run_method
    from .viz.embedding import embed, extract_features, noisy_vs_clean_grid
    rows, classes = {}, None
    for label, run in runs.items():
        method, cfg, _ = load_run_method(_checkpoint(run), device="cpu")
        ds = _noisy_train_set(cfg).preload(progress=False)
        data = extract_features(method, ds, cache=Path(run) / "features-train.npz", progress=False)
        rows[label] = (embed(data["features"], "umap", seed=0), data["labels"], data["clean_labels"])
        classes = ds.classes
    return noisy_vs_clean_grid(rows, classes, title=title, point_size=2)


#: ``ferlab figures KIND RUN...``: kind -> (builder, file formats, number of runs it takes (min, max))
KINDS: dict[str, tuple[Callable, tuple[str, ...], tuple[int, int | None]]] = {
    "curves": (curves_figure, ("png", "svg"), (1, None)),
    "attention": (attention_runs_figure, ("png",), (1, None)),
    "umap": (umap_figure, ("png",), (1, None)),
    "signals": (signals_figure, ("png", "svg"), (1, None)),
    "confusion": (confusion_figure, ("png", "svg"), (1, None)),
}


def run_labels(runs) -> dict[str, Path]:
    """Run directories -> {label: dir}: the folder name, with its parent where two names clash."""
    runs = [Path(r) for r in runs]
    names = [r.name for r in runs]
    return {(f"{r.parent.name}/{r.name}" if names.count(r.name) > 1 else r.name): r for r in runs}


def _check_run(run: Path, kind: str) -> None:
    need = ["config.yaml", "checkpoints/last.pt"] + (["summary.json"] if kind in ("confusion",) else [])
    need += ["metrics.jsonl"] if kind == "curves" else []
    missing = [f for f in need if not (run / f).is_file()]
    if missing:
        raise UserError(f"{run}: not a finished ferlab run (missing {', '.join(missing)})")


def figure_from_runs(kind: str, runs, out: str | Path = "figures", name: str | None = None,
                     command: str | None = None) -> dict:
    """Build figure ``kind`` (:data:`KINDS`) from explicit run directories into ``out/<name or kind>.*``
    and record it in ``out/manifest.json``; returns the manifest entry (``files``, ``runs``, ...)."""
    from .viz.plots import save_figure
    build, formats, (lo, hi) = KINDS[kind]
    runs = [Path(r) for r in runs]
    if not lo <= len(runs) <= (hi or len(runs)):
        raise UserError(f"figure {kind} takes {lo}{'-' + str(hi) if hi else ' or more'} runs, got {len(runs)}")
    for run in runs:
        _check_run(run, kind)
    out = Path(out)
    figure = build(run_labels(runs))
    files = [str(p) for p in save_figure(figure, out / (name or kind), formats)]
    entry = {"files": files, "runs": [str(r) for r in runs],
             "command": command or " ".join(["ferlab", "figures", kind, *map(str, runs), "--out", str(out)]),
             "commit": commit_of_checkout()}
    record_figures(out, {name or kind: entry})
    return entry


def record_figures(out: Path, entries: dict) -> dict:
    """Merge ``entries`` into ``out/manifest.json`` (written atomically); returns the whole manifest."""
    from .engine.checkpoint import write_text_atomic
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"figures": {}}
    manifest["figures"].update(entries)
    write_text_atomic(json.dumps(manifest, indent=2), manifest_path)
    return manifest


# -- the FERPlus grid: figures named by the runs they need ------------------------------------------
def _by_method(build, **kw):
    """A grid builder: runs named ``<method>-<setting>-s<seed>`` are labelled by their method."""
    return lambda runs: build({name.split("-")[0]: run for name, run in runs.items()}, **kw)


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
    titles = [f"given {noisy.classes[noisy.labels[i]][:4]}, clean {noisy.classes[noisy.clean_labels[i]][:4]}"
              for i in pick]
    return label_distributions(b["image"], {"FERPlus votes": vote_rows, "given (noisy)": given,
                                            "DMUE latent": latent, "DMUE prediction": pred}, noisy.classes, titles)


def _accuracy_vs_noise(runs: dict[str, Path]):
    from .viz.plots import accuracy_vs_noise
    rows = []
    for name, run in runs.items():
        method, setting, _ = name.split("-")
        rows.append({"method": method, "setting": setting,
                     "protocol": json.loads((run / "summary.json").read_text())["protocol"]})
    return accuracy_vs_noise(rows, title="FERPlus (cpu preset): test accuracy, mean of the last 5 epochs")


def registry(seed: int = 0) -> list[Figure]:
    """The grid's figures for runs of seed ``seed`` (``<method>-<setting>-s<seed>``): training
    curves per label setting, attention maps, UMAP, noise signals, confusion matrices, accuracy
    against noise and DMUE's latent distributions."""
    methods = ("baseline", "eac", "rul", "dmue")
    later = ("lanet", "ldlva")          # drawn when their runs exist
    figs = [Figure(f"curves-{s}", tuple(f"{m}-{s}-s{seed}" for m in methods[:3]),
                   _by_method(curves_figure, title=f"{s} training labels"),
                   optional=tuple(f"{m}-{s}-s{seed}" for m in (methods[3], *later)))
            for s in ("sym30", "asym30", "fer2013")]
    figs.append(Figure("attention-sym30", (f"baseline-sym30-s{seed}", f"eac-sym30-s{seed}"),
                       _by_method(attention_runs_figure), ("png",)))
    figs.append(Figure("umap-sym30", (f"baseline-sym30-s{seed}", f"eac-sym30-s{seed}"),
                       _by_method(umap_figure, title="UMAP of training features, 30% symmetric noise"), ("png",)))
    figs.append(Figure("signals-sym30", tuple(f"{m}-sym30-s{seed}" for m in methods),
                       _by_method(signals_figure, title="noise signals on the 30%-symmetric training labels"),
                       optional=tuple(f"{m}-sym30-s{seed}" for m in later)))
    figs.append(Figure("confusion-fer2013", tuple(f"{m}-fer2013-s{seed}" for m in methods),
                       _by_method(confusion_figure, title="FER2013Test (majority labels), last epoch"),
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


def commit_of_checkout() -> str | None:
    """The short commit of the ferlab checkout (None outside a git checkout)."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).parent).stdout.strip()
    except Exception:
        return None


def _finished(run: Path) -> bool:
    return (run / "summary.json").is_file() and (run / "checkpoints" / "last.pt").is_file()


def build_figures(runs_dir: str | Path, out: str | Path, only: list[str] | None = None, seed: int = 0) -> dict:
    """Rebuild every grid figure (:func:`registry`) whose runs exist in ``runs_dir``; returns
    ``built`` (the manifest's figures: name -> entry) and ``missing`` (name -> runs still to train)."""
    from .viz.plots import save_figure

    runs_dir, out = Path(runs_dir), Path(out)
    entries, missing = {}, {}
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
        entries[stem] = {"files": files, "runs": [str(runs_dir / r) for r in used],
                         "command": " ".join(["ferlab", "figures", "--runs", str(runs_dir), "--out", str(out)]),
                         "commit": commit_of_checkout()}
    make_dirs(out)
    return {"built": record_figures(out, entries)["figures"], "missing": missing}
