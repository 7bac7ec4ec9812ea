"""Which signal finds the wrong training labels: every method's in-training signal vs cleanlab.

    python benchmarks/label_audit.py --runs runs/ferplus-cpu --settings sym30 fer2013 --folds 5
    python benchmarks/label_audit.py --table                       # markdown table from the results JSON
    python benchmarks/label_audit.py --figure figures/ferplus-cpu-label-audit.png

For each label setting, from the grid's run folders ``<runs>/<method>-<setting>-s<seed>``
(``benchmarks/run_grid.py``), on the training images whose reference label is known
(FERPlus: a majority label exists), target = "the given training label differs from the reference"
(fer2013: the original FER2013 label vs the FERPlus majority; sym30: the label after the planted flips vs
the majority), it scores:

- every signal of every method run (``ferlab.engine.signals``: CE of the given label for all, and each
  method's own: RUL uncertainty, DMUE 1 - confidence, LA-Net 1 - mass, LDLVA 1 - lambda);
- the rank average of the runs' own signals (``ferlab.audit.ranking``);
- cleanlab: ``find_label_issues`` on K-fold out-of-sample probabilities of the baseline's config
  (fold runs ``<runs>/baseline-<setting>-s<seed>-fold<i>of<K>``, trained by
  ``ferlab audit --cleanlab <runs>/baseline-<setting>-s<seed> --folds K``, or by this script with ``--train-folds``),
  ranked flagged-first then by 1 - p(given label); and 1 - p(given label) of those probabilities alone.

Every scored run leaves its per-image signals (and cleanlab its out-of-sample probabilities) in an archive
(``--archive``, default ``benchmarks/results/label-audit-signals/<run>.json``: float32 scores, the run's config,
training time and a digest of its given labels; no images, no labels), so the measurement can be completed in
pieces: a run that is no longer on disk is scored from the archive (its target rebuilt from the config and
checked against the digest), and only the missing runs need training. cleanlab always ranks float32
probabilities, whether fresh or archived, so both give the same flags.

Metrics: AUROC, average precision, precision at k (``--ks``, default 500 1000 2000), the precision /
recall of cleanlab's flagged set, a precision-at-k curve; cost = the training each approach needs
(``train_time_s``: seconds in the training loop summed over ``metrics.jsonl``, one run for an in-training
signal, K fold runs for cleanlab; CPU seconds when each run had one thread), with the CPU it was measured on
(``machine``: times compare only on one machine). Results:
``benchmarks/results/label-audit-<runs folder name>.json`` (settings merged into an existing file).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_grid import git_commit
from throughput import machine_and_versions

from ferlab.audit import cleanlab_audit, cross_val_probs, default_signal, detection_report, rank_average
from ferlab.audit.cross_val import train_time
from ferlab.audit.metrics import precision_at_k, set_precision_recall
from ferlab.audit.report import jsonable
from ferlab.engine.checkpoint import write_text_atomic
from ferlab.engine.config import TrainConfig
from ferlab.engine.run_data import build_train_set
from ferlab.engine.signals import MASKS, run_signals

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = ROOT / "benchmarks" / "results" / "label-audit-signals"
METHODS = ("baseline", "eac", "rul", "dmue", "lanet", "ldlva")
LABEL = {"label_loss": "CE of the given label", "uncertainty": "uncertainty", "1-confidence": "1 - confidence",
         "1-confidence_bank": "1 - confidence at its last training step", "1-mass": "1 - bank mass on the label",
         "1-lambda": "1 - lambda"}
COLORS = {"baseline": "tab:blue", "eac": "tab:green", "rul": "tab:orange", "dmue": "tab:red", "lanet": "tab:purple",
          "ldlva": "tab:brown"}
NAMES = {"baseline": "baseline", "eac": "EAC", "rul": "RUL", "dmue": "DMUE", "lanet": "LA-Net", "ldlva": "LDLVA"}


def curve_ks(n: int) -> list[int]:
    """k values of the precision-at-k curve: 40 log-spaced points from 10 to n."""
    return sorted({int(k) for k in np.round(np.geomspace(min(10, n), n, 40))}) if n else []


def score_entry(name: str, score, wrong, known, ks, **extra) -> dict:
    """Detection metrics of ``score`` (N,) on the ``known`` rows for the target ``wrong``."""
    s, w = np.asarray(score, dtype=np.float64)[known], np.asarray(wrong, dtype=bool)[known]
    rep = detection_report(s, w, ks)
    ok = np.where(np.isfinite(s), s, -np.inf)
    rep["precision_curve"] = {str(k): precision_at_k(ok, w, k) for k in curve_ks(len(w))}
    return {"approach": name, **extra, **rep}


def shown(path: Path) -> str:
    """``path`` relative to the repository when inside it (results files name no machine's checkout)."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def finished(run: Path) -> bool:
    return (run / "summary.json").is_file() and (run / "checkpoints" / "last.pt").is_file()


def cpu_name() -> str:
    """The CPU training times were measured on, for an archive entry: model, widest vector ISA, cores
    (e.g. ``Intel(R) Xeon(R) Processor (AMX), 2 cores``); training times only compare on one machine."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    isa = next((name for flag, name in (("amx_tile", "AMX"), ("avx512f", "AVX-512"), ("avx2", "AVX2"))
                if flag in flags), None)
    return f"{model}{f' ({isa})' if isa else ''}, {os.cpu_count()} cores"


def labels_digest(labels) -> str:
    """sha256 of the given training labels (int64): ties an archived score to the labels it was computed on."""
    return hashlib.sha256(np.ascontiguousarray(np.asarray(labels, dtype=np.int64)).tobytes()).hexdigest()


STAMP_KEYS = ("archived", "archived_by_commit")        # when and by which commit; not what was archived


def archive_file(archive: Path, name: str) -> Path:
    return Path(archive) / f"{name}.json"


def archive_write(archive: Path, name: str, arrays: dict, meta: dict) -> Path:
    """``<archive>/<name>.json``: ``meta`` and ``arrays`` rounded to float32 (9 significant digits, which
    round-trip a float32 exactly), written atomically. An archive that already holds the same scores and
    meta is left as it is (re-scoring a run changes no committed file but its date stamps otherwise)."""
    path = archive_file(archive, name)
    data = {k: [float(f"{x:.9g}") for x in np.asarray(v, dtype=np.float32).ravel().tolist()]
            for k, v in arrays.items()}
    entry = {"meta": jsonable(meta), "shapes": {k: list(np.shape(v)) for k, v in arrays.items()}, "arrays": data}
    if path.is_file():
        old = json.loads(path.read_text())
        unstamped = [json.dumps({**e, "meta": {k: v for k, v in e["meta"].items() if k not in STAMP_KEYS}},
                                sort_keys=True) for e in (old, entry)]            # as text: NaN equals NaN
        if unstamped[0] == unstamped[1]:
            return path
    write_text_atomic(json.dumps(entry), path)
    return path


def archive_read(archive: Path, name: str):
    """(arrays as float64 holding float32 values, meta) of an archived run, or ``None``."""
    path = archive_file(archive, name)
    if not path.is_file():
        return None
    d = json.loads(path.read_text())
    return {k: np.asarray(v, dtype=np.float32).reshape(d["shapes"][k]).astype(np.float64)
            for k, v in d["arrays"].items()}, d["meta"]


def config_of(meta: dict) -> TrainConfig:
    """The archived run's config, for rebuilding its training labels: the local data root, and
    no training-split side files (a landmark file does not change the labels)."""
    cfg = TrainConfig.from_dict(meta["config"])
    args = {k: v for k, v in cfg.dataset_args.items() if k != "landmarks"}
    root = cfg.data_root if cfg.data_root and Path(cfg.data_root).is_dir() else None
    return dataclasses.replace(cfg, dataset_args=args, data_root=root, progress=False)


def train_target(cfg: TrainConfig) -> dict:
    """The noisy training set of ``cfg``: target masks as ``run_signals`` gives them, and the labels' digest."""
    ds = build_train_set(cfg)[0]
    known = ds.clean_labels >= 0 if ds.clean_labels is not None else np.zeros(len(ds), dtype=bool)
    wrong = (ds.labels != ds.clean_labels) & known if ds.clean_labels is not None else known
    return {"wrong": wrong, "known": known, "n_train": len(ds), "digest": labels_digest(ds.labels), "dataset": ds}


def archived_target(archive: Path, name: str, meta: dict) -> dict:
    """``train_target`` of an archived entry's config, refused (naming the file) when its labels are not the
    ones the scores were archived for."""
    target = train_target(config_of(meta))
    if target["digest"] != meta["labels_sha256"]:
        raise SystemExit(f"{archive}/{name}.json: archived for other training labels than its config rebuilds "
                         f"from the local data (sha256 {meta['labels_sha256'][:12]} vs {target['digest'][:12]})")
    return target


def run_scores(run: Path, archive: Path | None, device: str, log=print):
    """(signals, meta, target, source) of a run: computed from the finished run (and archived), or read from
    the archive when the run is not on disk; ``None`` when neither has it."""
    if finished(run):
        t0 = time.time()
        sig = run_signals(run, device=device, progress=False)
        cfg = dataclasses.replace(TrainConfig.from_yaml(run / "config.yaml"), progress=False)
        target = train_target(cfg)
        if not np.array_equal(sig["flipped"], target["wrong"]):
            raise SystemExit(f"{run}: its signals' noisy labels differ from those its config.yaml rebuilds")
        meta = {"run": run.name, "config": cfg.to_dict(), "train_time_s": train_time(run),
                "labels_sha256": target["digest"], "n_train": target["n_train"], "machine": cpu_name(),
                "archived_by_commit": git_commit(),
                "archived": time.strftime("%Y-%m-%d")}
        scores = {k: v for k, v in sig.items() if k not in MASKS}
        if archive is not None:
            archive_write(archive, run.name, scores, meta)
        log(f"[{run.name}] signals ({time.time() - t0:.0f} s)")
        return {k: np.asarray(v, np.float32).astype(np.float64) for k, v in scores.items()}, meta, target, str(run)
    got = archive_read(archive, run.name) if archive is not None else None
    if got is None:
        return None
    scores, meta = got
    target = archived_target(archive, run.name, meta)
    log(f"[{run.name}] signals from the archive ({meta.get('archived', '?')}, commit {meta.get('archived_by_commit')})")
    return scores, meta, target, shown(archive_file(archive, run.name))


def method_entries(runs_dir: Path, setting: str, seed: int, methods, ks, device: str, archive: Path | None = None,
                   log=print):
    """Entries of every signal of every method run (finished, or archived), plus their rank average; and the target.

    The signals are float32, whether fresh or archived, so a result does not depend on where it came from."""
    entries, own, target, missing = [], [], None, []
    for method in methods:
        run = runs_dir / f"{method}-{setting}-s{seed}"
        got = run_scores(run, archive, device, log)
        if got is None:
            missing.append(str(run))
            continue
        sig, meta, tgt, source = got
        if target is None:
            target = {**tgt, "first": run}
        elif tgt["digest"] != target["digest"]:
            log(f"[{setting}] {run.name}: other training rows or labels than {target['first'].name}, skipped")
            continue
        cost, machine = meta["train_time_s"], meta.get("machine")
        key = default_signal(sig)
        own.append((method, sig[key], cost, machine))
        for name, score in sig.items():
            entries.append(score_entry(f"{NAMES.get(method, method)}: {LABEL.get(name, name)}", score, target["wrong"],
                                       target["known"], ks, kind="signal", method=method, signal=name,
                                       own_signal=name == key, run=source, training_runs=1, train_time_s=cost,
                                       machine=machine))
    if len(own) > 1:
        entries.append(score_entry(f"rank average of the own signals ({', '.join(NAMES.get(m, m) for m, *_ in own)})",
                                   rank_average([s for _, s, *_ in own]), target["wrong"], target["known"], ks,
                                   kind="rank_average", methods=[m for m, *_ in own], training_runs=len(own),
                                   train_time_s=sum(c for _, _, c, _ in own),
                                   machine="; ".join(sorted({str(m) for *_, m in own}))))
    return entries, target, missing


def cleanlab_entries(runs_dir: Path, setting: str, seed: int, folds: int, fold_seed: int, target, ks, device: str,
                     train: bool, archive: Path | None = None, log=print):
    """cleanlab's entries, or (``[]``, the command that trains the missing fold runs). Fold runs on disk are
    used (and their probabilities archived); otherwise archived probabilities are."""
    from ferlab.audit.cross_val import fold_run_dirs
    base = runs_dir / f"baseline-{setting}-s{seed}"
    name = f"{base.name}-cv{folds}-seed{fold_seed}"
    got = archive_read(archive, name) if archive is not None else None
    cfg = None
    if (base / "config.yaml").is_file():
        cfg = TrainConfig.from_yaml(base / "config.yaml")
    elif archive is not None and (base_archived := archive_read(archive, base.name)) is not None:
        cfg = config_of(base_archived[1])                          # the baseline is gone: its archived config
    if cfg is not None:
        # folds beside the baseline run, named after it (as `ferlab audit --cleanlab RUN` does)
        cfg = dataclasses.replace(cfg, out_dir=str(runs_dir), name=base.name, progress=False)
    on_disk = cfg is not None and all((r / "summary.json").is_file() for r in fold_run_dirs(cfg, folds, fold_seed))
    if on_disk or (cfg is not None and train):
        cv = cross_val_probs(cfg, folds, fold_seed, device=device, log=lambda m: log(f"[{setting}] {m}"))
        dataset, probs, times, runs = cv["dataset"], cv["probs"], cv["train_time_s"], [str(r) for r in cv["runs"]]
        machine = cpu_name()
        if archive is not None:
            archive_write(archive, name, {"probs": probs}, {
                "run": base.name, "config": cfg.to_dict(), "folds": folds, "fold_seed": fold_seed,
                "train_time_s_per_fold": times, "labels_sha256": labels_digest(dataset.labels),
                "n_train": len(dataset), "machine": machine, "archived_by_commit": git_commit(),
                "archived": time.strftime("%Y-%m-%d")})
    elif got is not None:
        arrays, meta = got
        dataset = archived_target(archive, name, meta)["dataset"]
        probs, times, machine = arrays["probs"], meta["train_time_s_per_fold"], meta.get("machine")
        runs = [shown(archive_file(archive, name))]
        log(f"[{setting}] cleanlab: fold probabilities from the archive ({meta.get('archived', '?')}, "
            f"commit {meta.get('archived_by_commit')})")
    elif cfg is None:
        return [], f"python benchmarks/run_grid.py --methods baseline --settings {setting}  # the baseline run first"
    elif (base / "config.yaml").is_file():
        return [], (f"ferlab audit --cleanlab {base} --folds {folds} --fold-seed {fold_seed} "
                    f"--out audits/{setting}-cleanlab   # or rerun this script with --train-folds")
    else:
        return [], "rerun this script with --train-folds  # the folds of the archived baseline config"
    if target is not None and labels_digest(dataset.labels) != target["digest"]:
        raise SystemExit(f"{setting}: the fold runs' training labels differ from the method runs' "
                         f"({len(dataset)} vs {target['n_train']} rows)")
    audit = cleanlab_audit(dataset, np.asarray(probs, np.float32).astype(np.float64))
    wrong, known = audit.wrong, audit.known
    cost = float(sum(times))
    common = {"training_runs": folds, "folds": folds, "fold_seed": fold_seed, "fold_runs": runs,
              "train_time_s": cost, "train_time_s_per_fold": times, "machine": machine}
    flagged = set_precision_recall(audit.flagged[known], wrong[known])
    return [score_entry(f"cleanlab find_label_issues ({folds}-fold baseline probabilities; flagged first)",
                        audit.suspicion, wrong, known, ks, kind="cleanlab", flagged_set=flagged, **common),
            score_entry(f"1 - p(given label), {folds}-fold cross-validated baseline",
                        audit.signals["cleanlab:1-self_confidence"], wrong, known, ks, kind="cross_val_confidence",
                        **common)], None


def table(results: dict) -> str:
    """Markdown: one block of rows per setting, every approach with its training cost."""
    lines = []
    for setting, res in results["settings"].items():
        ks = res["ks"]
        header = ("| approach | training needed | train time (trained on) | AUROC | average precision | "
                  + " | ".join(f"precision at {k}" for k in ks) + " | cleanlab's flagged set: n, precision, recall |")
        lines += [(f"**{setting}** ({res['n_wrong']} of {res['n_known']} training labels differ from the reference; "
                   f"precision of a random pick {res['base_rate']:.3f})"), "", header,
                  "|---|---|---|---|---|" + "---|" * len(ks) + "---|"]
        for e in res["approaches"]:
            runs = f"{e['training_runs']} run{'s' * (e['training_runs'] > 1)}" + \
                (f" ({e['folds']} folds)" if e.get("folds") else "")
            fl = e.get("flagged_set")
            on = f" ({e['machine']})" if e.get("machine") else ""
            lines.append(f"| {e['approach']} | {runs} | {_duration(e['train_time_s'])}{on} | {_f(e['auroc'])} | "
                         f"{_f(e['average_precision'])} | "
                         + " | ".join(_f(e["precision_at_k"].get(str(k))) for k in ks)
                         + (f" | {fl['flagged']}, {_f(fl['precision'])}, {_f(fl['recall'])} |" if fl else " | |"))
        if res.get("missing"):
            lines.append(f"\nnot measured (missing): {', '.join(res['missing'])}")
        lines.append("")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _f(v) -> str:
    return "-" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.3f}"


def figure(results: dict, path: Path) -> Path:
    """Precision at k (log k) per setting: each method's own signal, the baseline's CE, the rank
    average, cleanlab (its flagged set as a star); the base rate dashed."""
    import matplotlib.pyplot as plt

    from ferlab.viz.plots import save_figure
    settings = results["settings"]
    fig, axes = plt.subplots(1, len(settings), figsize=(6.2 * len(settings), 5.6), squeeze=False)
    legend = {}
    for ax, (setting, res) in zip(axes[0], settings.items()):
        for e in res["approaches"]:
            if e["kind"] == "signal" and not (e["own_signal"] or e["method"] == "baseline"):
                continue
            if e["kind"] == "cross_val_confidence":
                continue
            curve = {int(k): v for k, v in e["precision_curve"].items() if v is not None}
            style = {"cleanlab": {"color": "black", "lw": 2.2},
                     "rank_average": {"color": "gray", "lw": 1.6, "ls": "-."},
                     "signal": {"color": COLORS.get(e.get("method"), "tab:cyan"), "lw": 1.3}}
            ax.plot(list(curve), list(curve.values()), label=e["approach"], **style.get(e["kind"], {"lw": 1.3}))
            if e.get("flagged_set") and e["flagged_set"]["flagged"]:
                fl = e["flagged_set"]
                ax.plot([fl["flagged"]], [fl["precision"]], "k*", ms=12, label="cleanlab's flagged set")
        ax.axhline(res["base_rate"], color="gray", ls="--", lw=1, label="random pick (base rate)")
        for k in res["ks"]:
            ax.axvline(k, color="lightgray", lw=0.8, zorder=0)
        ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("k (most suspicious training labels)")
        ax.set_ylabel("precision at k (share of them that are wrong)")
        ax.set_title(f"{setting}: {res['n_wrong']} of {res['n_known']} labels differ from the reference", fontsize=10)
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    # one legend for all panels (a method has one colour everywhere), below them
    rows = -(-len(legend) // 3)
    fig.legend(list(legend.values()), list(legend), fontsize=8, loc="lower center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0.045 * rows + 0.02, 1, 1))
    return save_figure(fig, path.with_suffix(""), ("png",))[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs/ferplus-cpu", help="folder of the grid's runs")
    ap.add_argument("--settings", nargs="+", default=["sym30", "fer2013"],
                    help="label settings of the grid to score (run folders <method>-<setting>-s<seed>)")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS, metavar="METHOD",
                    help=f"methods whose runs are scored (default: all of {', '.join(METHODS)})")
    ap.add_argument("--seed", type=int, default=0, help="training seed of the runs (the -s<seed> suffix)")
    ap.add_argument("--folds", type=int, default=5, help="K of cleanlab's cross-validation")
    ap.add_argument("--fold-seed", type=int, default=0, help="seed of the stratified fold split")
    ap.add_argument("--train-folds", action="store_true", help="train the missing fold runs (resumable)")
    ap.add_argument("--ks", type=int, nargs="+", default=[500, 1000, 2000], help="k of precision at k")
    ap.add_argument("--device", default="cpu", help="device for scoring runs and training folds (cpu, cuda, ...)")
    ap.add_argument("--archive", default=str(ARCHIVE),
                    help=f"folder of archived per-image scores (default {ARCHIVE.relative_to(ROOT)}); "
                         f"'none': no archive")
    ap.add_argument("--results", help="results JSON (default benchmarks/results/label-audit-<runs folder>.json)")
    ap.add_argument("--table", action="store_true", help="print the markdown table of the results JSON and stop")
    ap.add_argument("--figure", help="draw the precision-at-k figure of the results JSON to this PNG and stop")
    args = ap.parse_args(argv)
    runs_dir = Path(args.runs)
    out = Path(args.results or ROOT / "benchmarks" / "results" / f"label-audit-{runs_dir.name}.json")
    if args.table or args.figure:
        results = json.loads(out.read_text())
        if args.table:
            print(table(results))
        if args.figure:
            print(f"wrote {figure(results, Path(args.figure))}")
        return 0
    results = json.loads(out.read_text()) if out.is_file() else {"settings": {}}
    archive = None if args.archive == "none" else Path(args.archive)
    # a setting's numbers keep the invocation and commit that scored them: a later run of this script for
    # another setting rewrites the top-level command, not theirs
    command = shlex.join(["python", "benchmarks/label_audit.py", *(sys.argv[1:] if argv is None else argv)])
    commit = git_commit()
    for setting in args.settings:
        entries, target, missing = method_entries(runs_dir, setting, args.seed, args.methods, args.ks, args.device,
                                                  archive)
        cl, todo = cleanlab_entries(runs_dir, setting, args.seed, args.folds, args.fold_seed, target, args.ks,
                                    args.device, args.train_folds, archive)
        if todo:
            missing.append(f"cleanlab ({todo})")
        if target is None and not cl:
            print(f"[{setting}] nothing to score: no finished run in {runs_dir}", file=sys.stderr)
            continue
        ref = entries[0] if entries else cl[0]
        results["settings"][setting] = {
            "n_train": target["n_train"] if target else ref["n"], "n_known": ref["n"], "n_wrong": ref["n_wrong"],
            "base_rate": ref["base_rate"], "ks": args.ks, "approaches": entries + cl, "missing": missing,
            "command": command, "commit": commit}
        for e in entries + cl:
            print(f"[{setting}] {e['approach']}: AUROC {_f(e['auroc'])}, AP {_f(e['average_precision'])}, "
                  + ", ".join(f"P@{k} {_f(v)}" for k, v in e["precision_at_k"].items())
                  + (f", flagged {e['flagged_set']['flagged']} (precision {_f(e['flagged_set']['precision'])}, "
                     f"recall {_f(e['flagged_set']['recall'])})" if e.get("flagged_set") else ""), flush=True)
        for m in missing:
            print(f"[{setting}] missing: {m}", flush=True)
    results.update({"benchmark": "label-audit", "runs_dir": str(runs_dir), "commit": commit, "command": command,
                    "target": "given training label != reference label (FERPlus majority), on the rows that have one",
                    "cost": "train_time_s = seconds in the training loop (sum of metrics.jsonl time_s) of the runs "
                            "an approach needs: 1 run per in-training signal, K fold runs for cleanlab; an entry's "
                            "machine is the CPU its runs were trained and archived on (times compare only on one "
                            "machine)",
                    **machine_and_versions(torch.device(args.device))})
    write_text_atomic(json.dumps(jsonable(results), indent=2), out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
