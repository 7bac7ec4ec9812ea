"""`ferlab figures` rebuilds a figure from a fixture run directory and names missing runs."""
import json

import pytest

from ferlab.cli import main
from ferlab.engine.config import TrainConfig
from ferlab.engine.trainer import fit


@pytest.mark.slow
def test_figures_from_fixture_runs(tmp_path, capsys):
    runs = tmp_path / "grid"
    for method in ("baseline", "eac"):
        fit(TrainConfig(name=f"{method}-sym30-s0", out_dir=str(runs), method=method, dataset="synthetic",
                        dataset_args={"n": 48, "image_size": 32}, eval_dataset_args={"n": 70}, backbone="resnet10",
                        input_size=32, epochs=1, batch_size=16, noise="symmetric", noise_rate=0.3, progress=False))
    out = tmp_path / "figs"
    code = main(["figures", "--runs", str(runs), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1                                       # curves need the rul runs, which are missing
    assert "rul-sym30-s0" in err and "run_grid.py --methods rul --settings sym30" in err
    assert (out / "grid-attention-sym30.png").stat().st_size > 0
    manifest = json.loads((out / "manifest.json").read_text())["figures"]
    entry = manifest["grid-attention-sym30"]
    assert entry["runs"] == [str(runs / "baseline-sym30-s0"), str(runs / "eac-sym30-s0")]
    assert entry["command"].startswith("ferlab figures --runs")
    assert not (out / "grid-curves-sym30.png").exists()


@pytest.mark.slow
def test_accuracy_vs_noise_uses_optional_runs_when_they_exist(tmp_path):
    from ferlab.figures import build_figures
    runs = tmp_path / "grid"

    def train(name, rate):
        fit(TrainConfig(name=name, out_dir=str(runs), method=name.split("-")[0], dataset="synthetic",
                        dataset_args={"n": 32, "image_size": 32}, eval_dataset_args={"n": 32}, backbone="resnet10",
                        input_size=32, epochs=1, batch_size=16, noise="symmetric" if rate else "none",
                        noise_rate=rate, progress=False, val_split=None))
    for m in ("baseline", "eac"):
        for s, rate in (("clean", 0.0), ("sym30", 0.3)):
            train(f"{m}-{s}-s0", rate)
    assert build_figures(runs, tmp_path / "figs", ["accuracy-vs-noise"])["missing"]["accuracy-vs-noise"] == \
        ["baseline-fer2013-s0", "eac-fer2013-s0"]
    for m in ("baseline", "eac"):
        train(f"{m}-fer2013-s0", 0.2)
    train("rul-sym30-s0", 0.3)                          # optional: drawn, listed in the manifest
    result = build_figures(runs, tmp_path / "figs", ["accuracy-vs-noise"])
    assert not result["missing"]
    used = result["built"]["grid-accuracy-vs-noise"]["runs"]
    assert len(used) == 7 and used[-1] == str(runs / "rul-sym30-s0")
    assert (tmp_path / "figs" / "grid-accuracy-vs-noise.png").stat().st_size > 0
