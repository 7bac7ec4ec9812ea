"""`ferlab figures` rebuilds a figure from a fixture run directory and names missing runs."""
import json

from ferlab.cli import main
from ferlab.engine.config import TrainConfig
from ferlab.engine.trainer import fit


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
    assert "rul-sym30-s0" in err and "run_grid.py --methods dmue rul --settings sym30" in err
    assert (out / "grid-attention-sym30.png").stat().st_size > 0
    manifest = json.loads((out / "manifest.json").read_text())["figures"]
    entry = manifest["grid-attention-sym30"]
    assert entry["runs"] == [str(runs / "baseline-sym30-s0"), str(runs / "eac-sym30-s0")]
    assert entry["command"].startswith("ferlab figures --runs")
    assert not (out / "grid-curves-sym30.png").exists()
