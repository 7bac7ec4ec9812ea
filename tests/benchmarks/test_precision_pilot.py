"""benchmarks/precision_pilot.py: the verdict compares the precisions' difference with the seed spread."""
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
spec = importlib.util.spec_from_file_location("precision_pilot", ROOT / "benchmarks" / "precision_pilot.py")
pilot = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pilot)


def test_summary_by_hand():
    curves = {"fp32": [[0.5, 0.6, 0.7, 0.8], [0.5, 0.6, 0.6, 0.7]],      # last-3 means 0.7, 0.6333
              "auto": [[0.5, 0.7, 0.7, 0.7], [0.4, 0.6, 0.7, 0.8]]}      # 0.7, 0.7
    s = pilot.summarise(curves)
    assert s["fp32"]["mean_val_acc"] == pytest.approx([0.5, 0.6, 0.65, 0.75])
    assert s["fp32"]["mean_last_3"] == pytest.approx((0.7 + 1.9 / 3) / 2)
    assert s["fp32"]["seed_spread_last_3"] == pytest.approx(0.7 - 1.9 / 3)
    assert s["auto"]["seed_spread_last_3"] == pytest.approx(0.0, abs=1e-12)
    assert s["auto"]["seed_spread_per_epoch_max"] == pytest.approx(0.1)
    d = s["difference"]
    assert d["auto_minus_fp32_last_3"] == pytest.approx(0.7 - (0.7 + 1.9 / 3) / 2)
    assert d["within_seed_spread"]                   # 0.033 <= 0.067
    curves["auto"] = [[0.5, 0.7, 0.9, 0.9], [0.4, 0.6, 0.9, 0.9]]
    assert not pilot.summarise(curves)["difference"]["within_seed_spread"]


def test_pilot_runs_are_the_baseline_recipe_without_a_test_split(tmp_path):
    cfg = pilot.pilot_config("cpu_pretrained", 1, "fp32", 5, str(tmp_path))
    assert (cfg.method, cfg.epochs, cfg.test_split, cfg.seed, cfg.amp, cfg.channels_last) == \
        ("baseline", 5, None, 1, "off", "off")
    assert cfg.backbone == "dlib_resnet29" and cfg.noise == "none"
    assert pilot.pilot_config("cpu", 0, "auto", 5, str(tmp_path)).amp == "auto"
