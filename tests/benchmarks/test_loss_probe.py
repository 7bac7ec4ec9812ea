"""benchmarks/loss_probe.py trains a few steps and reports every loss term per window."""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("loss_probe", ROOT / "benchmarks" / "loss_probe.py")
loss_probe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(loss_probe)


@pytest.mark.slow
def test_probe_reports_dmue_terms_per_window(tmp_path, capsys):
    out = tmp_path / "probe.json"
    code = loss_probe.main(["--config", str(ROOT / "recipes" / "dmue" / "ferplus.yaml"), "--preset", "cpu",
                            "--steps", "4", "--window", "2", "--epoch", "6", "--out", str(out),
                            "--set", "dataset=synthetic", "--set", "dataset_args={n: 128, image_size: 32}",
                            "--set", "backbone=resnet10", "--set", "input_size=32", "--set", "limit_train=null",
                            "--set", "device=cpu", "--set", "method_args.sp_weight=0.0"])
    assert code == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["step"] for r in rows] == [2, 4] and rows[0]["skipped"] == 0
    assert {"loss", "wce", "soft", "sp", "aux_ce", "confidence", "train_acc"} <= set(rows[0])
    # sp_weight=0 at full ramp: loss = wce + 0.5 soft + aux_ce * ramp_down(6) (= 1 at epoch a)
    r = rows[0]
    assert abs(r["loss"] - (r["wce"] + 0.5 * r["soft"] + r["aux_ce"])) < 1e-4
    assert "aux_ce" in capsys.readouterr().out
