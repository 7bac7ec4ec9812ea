"""Train a grid of methods x label settings on FERPlus under one protocol, resumably.

    python benchmarks/run_grid.py --methods baseline eac rul --settings sym30 fer2013 --preset cpu

Each run uses ``recipes/<method>/ferplus.yaml`` at ``--preset`` (identical data, backbone,
input size, epochs, batch and seed across methods) plus the label setting:

    clean    FERPlus majority labels (EAC: pairing=mirror, as in the official clean run)
    sym10/sym20/sym30  majority + 10/20/30% symmetric noise (noise seed = --noise-seed)
    asym30   majority + 30% asymmetric class-pair noise
    fer2013  the original FER2013 labels (real annotator noise, ~34% disagree with the majority)

A method written ``METHOD:VARIANT`` (e.g. ``dmue:scratch``) is a named deviation: recipe preset
``<preset>_<VARIANT>``, run ``<method>_<variant>-<setting>-s<seed>``, its own row next to the
faithful one.

Runs live in ``<out-dir>/ferplus-<preset>/<method>-<setting>-s<seed>``. A run with a
``summary.json`` is skipped; a run with a checkpoint is resumed; others start fresh, so the
grid can be completed in pieces (kill it any time). Several workers may run at once (e.g.
one per setting, ``OMP_NUM_THREADS=1`` each on a small CPU): a live worker's run is locked
(``.grid.lock``) and skipped by the others. ``--collect`` only writes the results
JSON (``benchmarks/results/ferplus-grid-<preset>.json``) from what is finished.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch

from ferlab.engine.checkpoint import write_text_atomic
from ferlab.engine.config import TrainConfig
from ferlab.engine.run_lock import pid_alive
from ferlab.engine.trainer import read_history

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {
    "clean": {},
    "sym10": {"noise": "symmetric", "noise_rate": 0.1},
    "sym20": {"noise": "symmetric", "noise_rate": 0.2},
    "sym30": {"noise": "symmetric", "noise_rate": 0.3},
    "asym30": {"noise": "asymmetric", "noise_rate": 0.3},
    "fer2013": {"dataset_args": {"label_mode": "fer2013"}},
}


def run_config(method: str, setting: str, preset: str, seed: int, out_dir: str, noise_seed: int = 0,
               recipes: Path = ROOT / "recipes", overrides: dict | None = None) -> TrainConfig:
    if setting not in SETTINGS:
        raise ValueError(f"unknown setting {setting!r}; choose from {sorted(SETTINGS)}")
    base, _, variant = method.partition(":")
    recipe = recipes / base / "ferplus.yaml"
    if not recipe.is_file():
        raise FileNotFoundError(f"{recipe}: no FERPlus recipe for method {base!r}")
    cfg = TrainConfig.from_yaml(recipe, f"{preset}_{variant}" if variant else preset)
    d = cfg.to_dict()
    extra = SETTINGS[setting]
    d["dataset_args"] = {**d["dataset_args"], **extra.get("dataset_args", {})}
    d.update({k: v for k, v in extra.items() if k != "dataset_args"})
    if base == "eac" and setting == "clean":
        d["method_args"] = {**d["method_args"], "pairing": "mirror"}
    # a method argument may name a sibling run of the same setting (LDLVA's feature-space neighbours)
    runs = str(Path(out_dir) / f"ferplus-{preset}")
    d["method_args"] = {k: v.format(setting=setting, seed=seed, runs=runs) if isinstance(v, str) else v
                        for k, v in (d.get("method_args") or {}).items()}
    d.update(seed=seed, noise_seed=noise_seed, out_dir=str(Path(out_dir) / f"ferplus-{preset}"),
             name=f"{method.replace(':', '_')}-{setting}-s{seed}")
    d.update(overrides or {})
    return TrainConfig.from_dict(d)


def run_state(cfg: TrainConfig) -> str:
    run = Path(cfg.out_dir) / cfg.run_name()
    if (run / "summary.json").is_file():
        return "finished"
    if (run / "checkpoints" / "last.pt").is_file():
        return "partial"
    return "new"


def acquire_lock(run: Path) -> bool:
    """Claim ``run`` for this process (several grid workers may share one run folder tree);
    a lock left by a dead process is taken over."""
    run.mkdir(parents=True, exist_ok=True)
    lock = run / ".grid.lock"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                holder = lock.read_text().strip() or 0
            except FileNotFoundError:             # released meanwhile
                holder = None
            if holder is not None and pid_alive(holder):
                return False                      # alive: someone else trains this run
            lock.unlink(missing_ok=True)          # stale
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True
    return False


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except Exception:
        return None


def dedup_test(run: Path) -> dict:
    """Last-epoch accuracy on FER2013Test without the images whose pixels occur in FER2013Train
    (cached in ``<run>/test-dedup.json``)."""
    from ferlab.engine.trainer import evaluate_checkpoint
    path = run / "test-dedup.json"
    ck = run / "checkpoints" / "last.pt"
    if path.is_file() and path.stat().st_mtime >= ck.stat().st_mtime:
        return json.loads(path.read_text())
    rep = evaluate_checkpoint(ck, "test", device="cpu", progress=False, dataset_args={"exclude_train_duplicates": True})
    out = {"acc": rep["acc"], "mean_class_acc": rep["mean_class_acc"], "n": rep["n"],
           "removed_train_duplicates": rep["removed_train_duplicates"]}
    path.write_text(json.dumps(out, indent=2))
    return out


def collect(cfgs: list[tuple[str, str, int, TrainConfig]], preset: str, previous: dict | None = None) -> dict:
    """Rows of the finished runs among ``cfgs``; rows of ``previous`` for other runs are kept."""
    rows = []
    for method, setting, seed, cfg in cfgs:
        run = Path(cfg.out_dir) / cfg.run_name()
        if run_state(cfg) != "finished":
            continue
        summary = json.loads((run / "summary.json").read_text())
        history = read_history(run)
        rows.append({
            "method": method, "setting": setting, "seed": seed, "run": str(run),
            "protocol": summary["protocol"], "val": summary.get("val"), "train_fit": summary.get("train_fit"),
            "noise": summary.get("noise"),
            "test_dedup_last": dedup_test(run) if cfg.dataset == "ferplus" else None,
            "train_images": summary["train_fit"]["n_flipped"] + summary["train_fit"]["n_intact"]
            if summary.get("train_fit") else None,
            "curve": [{k: h.get(k) for k in ("epoch", "lr", "loss", "train_acc", "val_acc", "test_acc", "time_s")}
                      | ({"train_fit": h["train_fit"]} if h.get("train_fit") else {}) for h in history],
            "train_time_s": sum(h.get("time_s", 0.0) for h in history),
            "config": TrainConfig.from_yaml(run / "config.yaml").to_dict(),
        })
    have = {(r["method"], r["setting"], r["seed"]) for r in rows}
    rows += [r for r in (previous or {}).get("runs", []) if (r["method"], r["setting"], r["seed"]) not in have]
    rows.sort(key=lambda r: (r["setting"], r["method"], r["seed"]))
    return {"benchmark": "ferplus-label-noise-grid", "preset": preset, "commit": git_commit(),
            "command": " ".join(["python", *sys.argv]),
            "machine": {"host": socket.gethostname(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
                        "torch": torch.__version__,
                        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
            "protocol": "test = FER2013Test majority labels (7 classes); val = FER2013Valid majority; "
                        "last / mean of last 5 epochs / test at best-val epoch; best_test is flagged (test selection); "
                        "test_dedup_last = last epoch on FER2013Test minus images whose pixels occur in FER2013Train",
            "runs": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=["baseline", "eac", "rul"])
    ap.add_argument("--settings", nargs="+", default=["sym30", "fer2013"], choices=sorted(SETTINGS))
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--noise-seed", type=int, default=0)
    ap.add_argument("--out-dir", default="runs")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--results", default=None,
                    help="results JSON (default benchmarks/results/ferplus-grid-<preset>.json)")
    ap.add_argument("--collect", action="store_true", help="only write the results JSON from finished runs")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config key in every run")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    import yaml
    overrides = {}
    for item in args.set:
        key, _, val = item.partition("=")
        overrides[key] = yaml.safe_load(val)
    overrides.update(device=args.device, progress=not args.no_progress)
    cfgs = [(m, s, seed, run_config(m, s, args.preset, seed, args.out_dir, args.noise_seed, overrides=overrides))
            for seed in args.seeds for s in args.settings for m in args.methods]
    if not args.collect:
        from ferlab.engine.trainer import fit
        for method, setting, seed, cfg in cfgs:
            state = run_state(cfg)
            tag = f"{method}/{setting}/s{seed}"
            if state == "finished":
                print(f"[grid] {tag}: finished, skipped", flush=True)
                continue
            run = Path(cfg.out_dir) / cfg.run_name()
            if not acquire_lock(run):
                print(f"[grid] {tag}: being trained by another worker, skipped", flush=True)
                continue
            try:
                state = run_state(cfg)
                print(f"[grid] {tag}: {'resuming' if state == 'partial' else 'starting'} ({run})", flush=True)
                t0 = time.time()
                fit(cfg, resume=state == "partial")
                print(f"[grid] {tag}: done in {time.time() - t0:.0f} s", flush=True)
            finally:
                (run / ".grid.lock").unlink(missing_ok=True)
    out = Path(args.results or ROOT / "benchmarks" / "results" / f"ferplus-grid-{args.preset}.json")
    result = collect(cfgs, args.preset, json.loads(out.read_text()) if out.is_file() else None)
    write_text_atomic(json.dumps(result, indent=2), out)
    done = sum(run_state(cfg) == "finished" for *_, cfg in cfgs)
    print(f"[grid] {done} of the {len(cfgs)} requested runs finished; {out} holds {len(result['runs'])} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
