"""benchmarks/plot_grid.py: the table and the figures come from the results JSON alone."""
import importlib.util
import json
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("plot_grid", ROOT / "benchmarks" / "plot_grid.py")
plot_grid = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plot_grid)


def _row(method, setting, seed=0, last=0.5):
    curve = [{"epoch": e, "val_acc": 0.4 + 0.01 * e, "test_acc": last - 0.01 * (3 - e),
              **({"train_fit": {"memorised_flipped": 0.1 * e, "acc_intact": 0.5}} if e % 2 == 0 else {})}
             for e in (1, 2, 3)]
    return {"method": method, "setting": setting, "seed": seed, "run": f"runs/{method}-{setting}-s{seed}",
            "protocol": {"last": last, "mean_last_k": last - 0.01, "best_val": last, "best_val_epoch": 3,
                         "best_test": {"value": last, "epoch": 3}},
            "train_fit": {"memorised_flipped": 0.3}, "test_dedup_last": {"acc": last - 0.02},
            "curve": curve, "train_time_s": 600.0}


@pytest.mark.slow
def test_figures_from_the_json_name_the_runs_they_show(tmp_path, capsys):
    runs = [_row(m, s) for m in ("baseline", "eac", "dmue", "dmue:scratch") for s in ("clean", "sym30", "fer2013")]
    runs.append(_row("baseline", "sym30", seed=1, last=0.9))            # another seed: not in the seed-0 curves
    results = tmp_path / "grid.json"
    results.write_text(json.dumps({"preset": "cpu", "runs": runs}))
    assert plot_grid.main(["--results", str(results), "--figures", str(tmp_path / "fig")]) == 0
    out = capsys.readouterr().out
    assert "| sym30 | eac | 50.00 | 49.00 | 50.00 (3) | 50.00 (3) | 48.00 | 0.300 | 10 min |" in out
    manifest = json.loads((tmp_path / "fig" / "manifest.json").read_text())["figures"]
    assert sorted(manifest) == ["ferplus-cpu-accuracy-vs-noise", "ferplus-cpu-curves-fer2013",
                                "ferplus-cpu-curves-sym30"]          # no asym30 rows: no asym30 figure
    assert manifest["ferplus-cpu-curves-sym30"]["runs"] == [
        "runs/baseline-sym30-s0", "runs/eac-sym30-s0", "runs/dmue-sym30-s0"]   # no deviation, no seed 1
    assert sorted(manifest["ferplus-cpu-accuracy-vs-noise"]["runs"]) == sorted(
        f"runs/{m}-{s}-s0" for m in ("baseline", "eac") for s in ("clean", "sym30", "fer2013"))
    for entry in manifest.values():
        assert entry["results"] == str(results) and "--figures" in entry["command"]
        assert all(Path(f).stat().st_size > 1000 for f in entry["files"])


def test_cells_without_a_run_are_listed_as_not_yet_run():
    run = {"method": "baseline", "setting": "sym30", "seed": 0, "train_time_s": 60.0,
           "protocol": {"last": 0.5, "mean_last_k": 0.5, "best_val": 0.5, "best_val_epoch": 1,
                        "best_test": {"value": 0.5, "epoch": 1}}}
    lines = plot_grid.table([run], [("baseline", "sym30"), ("eac", "sym30"), ("eac", "fer2013")]).splitlines()
    assert len(lines) == 5
    assert lines[2].startswith("| fer2013 | eac | not yet run |") and lines[2].count("|") == lines[0].count("|")
    assert lines[3].startswith("| sym30 | baseline | 50.00 |") and lines[4].startswith("| sym30 | eac | not yet run")
