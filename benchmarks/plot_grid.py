"""Markdown table and figures from a ``run_grid.py`` results JSON.

    python benchmarks/plot_grid.py --results benchmarks/results/ferplus-grid-cpu.json
    python benchmarks/plot_grid.py --results benchmarks/results/ferplus-grid-cpu.json --figures figures

Prints last / mean of last 5 / test at best-val epoch / flagged best test, the last epoch on
the test set without train pixel-duplicates, and the memorisation of the flipped training labels.
``--figures OUT`` draws the figures the JSON holds everything for, so that they and the table come
from one file: ``<grid>-curves-<setting>`` (test accuracy per epoch and the fit of the flipped /
intact training labels, the six methods; the same drawing as ``ferlab figures curves``) and
``<grid>-accuracy-vs-noise`` (mean of the last 5 epochs per label setting; DMUE, which fails
from scratch in the cpu preset, and named deviations are in the table only), recorded in
``OUT/manifest.json``. Figures that need the runs' checkpoints or per-sample files (attention,
UMAP, noise signals, confusion) are drawn by ``ferlab figures`` from the run directories.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ORDER = {"baseline": 0, "eac": 1, "rul": 2, "dmue": 3, "lanet": 4, "ldlva": 5}


def table(runs: list[dict], expected: list[tuple[str, str]] = ()) -> str:
    """The markdown table of ``runs``; ``expected`` (method, setting) cells without a run get a
    "not yet run" row."""
    have = {(r["method"], r["setting"]) for r in runs}
    missing = [{"method": m, "setting": s, "seed": 0, "missing": True} for m, s in expected if (m, s) not in have]
    lines = ["| label setting | method | last | mean last 5 | test @ best val (epoch) | best test (flagged) "
             "| last, dedup test | flipped labels memorised | train time |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted([*runs, *missing], key=lambda r: (r["setting"], ORDER.get(r["method"], 9), r["seed"])):
        if r.get("missing"):
            lines.append(f"| {r['setting']} | {r['method']} | not yet run |" + " |" * 6)
            continue
        p, fit = r["protocol"], r.get("train_fit") or {}
        m = fit.get("memorised_flipped")
        mem = f"{m:.3f}" if m is not None and not math.isnan(m) else "- (no flipped labels)"
        dedup = f"{100 * r['test_dedup_last']['acc']:.2f}" if r.get("test_dedup_last") else "-"
        lines.append(f"| {r['setting']} | {r['method']} | {100 * p['last']:.2f} | {100 * p['mean_last_k']:.2f} "
                     f"| {100 * p['best_val']:.2f} ({p['best_val_epoch']}) | {100 * p['best_test']['value']:.2f} "
                     f"({p['best_test']['epoch']}) | {dedup} | {mem} | {r['train_time_s'] / 60:.0f} min |")
    return "\n".join(lines)


CURVE_METHODS = ("baseline", "eac", "rul", "dmue", "lanet", "ldlva")
NOISE_METHODS = ("baseline", "eac", "rul", "lanet", "ldlva")


def draw_figures(grid: dict, out: Path, seed: int = 0, command: str | None = None) -> dict:
    """The curves per noisy label setting and accuracy vs noise of ``grid`` (a results JSON) into
    ``out``; returns the manifest entries written (name -> files, runs, command)."""
    from ferlab.figures import commit_of_checkout, record_figures
    from ferlab.viz.plots import accuracy_vs_noise, memorisation_curves, save_figure

    rows = [r for r in grid["runs"] if r["seed"] == seed]
    prefix = f"ferplus-{grid['preset']}"
    command = command or " ".join(["python", *sys.argv])
    entries = {}

    def save(name, figure, used):
        stem = f"{prefix}-{name}"
        files = [str(p) for p in save_figure(figure, out / stem)]
        entries[stem] = {"files": files, "runs": [r["run"] for r in used], "command": command,
                         "results": grid.get("results_file"), "commit": commit_of_checkout()}

    for setting in ("sym30", "asym30", "fer2013"):
        used = sorted((r for r in rows if r["setting"] == setting and r["method"] in CURVE_METHODS),
                      key=lambda r: CURVE_METHODS.index(r["method"]))
        if used:
            save(f"curves-{setting}", memorisation_curves({r["method"]: r["curve"] for r in used},
                                                          title=f"{setting} training labels"), used)
    used = [r for r in rows if r["method"] in NOISE_METHODS]
    if used:
        save("accuracy-vs-noise", accuracy_vs_noise(
            used, title=f"FERPlus ({grid['preset']} preset): test accuracy, mean of the last 5 epochs"), used)
    out.mkdir(parents=True, exist_ok=True)
    record_figures(out, entries)
    return entries


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", required=True, help="a run_grid.py results JSON")
    ap.add_argument("--figures", metavar="OUT", help="also draw the curves and accuracy-vs-noise figures into OUT")
    ap.add_argument("--seed", type=int, default=0, help="the seed whose runs the curves show (default 0)")
    ap.add_argument("--cells", nargs=2, metavar=("METHODS", "SETTINGS"),
                    help="comma-separated methods and settings the table should have: cells without a run are "
                         "listed as not yet run (e.g. baseline,eac,rul sym30,fer2013)")
    args = ap.parse_args(argv)
    grid = json.loads(Path(args.results).read_text())
    expected = [(m, s) for s in args.cells[1].split(",") for m in args.cells[0].split(",")] if args.cells else []
    print(table(grid["runs"], expected))
    if args.figures:
        grid["results_file"] = args.results
        command = " ".join(["python", "benchmarks/plot_grid.py", *(sys.argv[1:] if argv is None else argv)])
        for stem, entry in draw_figures(grid, Path(args.figures), args.seed, command).items():
            print(f"{stem}: {', '.join(entry['files'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
