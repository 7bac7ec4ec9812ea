"""Markdown table from a ``run_grid.py`` results JSON.

    python benchmarks/plot_grid.py --results benchmarks/results/ferplus-grid-cpu.json

Prints last / mean of last 5 / test at best-val epoch / flagged best test, the last epoch on
the test set without train pixel-duplicates, and the memorisation of the flipped training labels. The curves are drawn by ``ferlab figures``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ORDER = {"baseline": 0, "eac": 1, "rul": 2, "dmue": 3, "lanet": 4, "ldlva": 5}


def table(runs: list[dict]) -> str:
    lines = ["| label setting | method | last | mean last 5 | test @ best val (epoch) | best test (flagged) "
             "| last, dedup test | flipped labels memorised | train time |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(runs, key=lambda r: (r["setting"], ORDER.get(r["method"], 9), r["seed"])):
        p, fit = r["protocol"], r.get("train_fit") or {}
        m = fit.get("memorised_flipped")
        mem = f"{m:.3f}" if m is not None and not math.isnan(m) else "- (no flipped labels)"
        dedup = f"{100 * r['test_dedup_last']['acc']:.2f}" if r.get("test_dedup_last") else "-"
        lines.append(f"| {r['setting']} | {r['method']} | {100 * p['last']:.2f} | {100 * p['mean_last_k']:.2f} "
                     f"| {100 * p['best_val']:.2f} ({p['best_val_epoch']}) | {100 * p['best_test']['value']:.2f} "
                     f"({p['best_test']['epoch']}) | {dedup} | {mem} | {r['train_time_s'] / 60:.0f} min |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", required=True)
    args = ap.parse_args(argv)
    print(table(json.loads(Path(args.results).read_text())["runs"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
