"""benchmarks/run_grid.py skips finished runs, resumes interrupted ones, respects live locks."""
import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch

from ferlab.engine.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("run_grid", ROOT / "benchmarks" / "run_grid.py")
run_grid = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_grid)

TINY = ["--set", "dataset=synthetic", "--set", "dataset_args={n: 64, image_size: 32}", "--set", "backbone=resnet10",
        "--set", "backbone_args={widths: [8, 16, 32, 64]}",
        "--set", "input_size=32", "--set", "epochs=2", "--set", "batch_size=16", "--set", "limit_train=null",
        "--set", "limit_eval=32", "--set", "train_fit_every=0"]


def grid(out, *extra):
    return run_grid.main(["--methods", "baseline", "--settings", "sym30", "--out-dir", str(out), "--device", "cpu",
                          "--results", str(out / "res.json"), "--no-progress", *TINY, *extra])


def test_skips_finished_and_resumes_interrupted(tmp_path, capsys):
    full, part = tmp_path / "full", tmp_path / "part"
    grid(full)
    run = full / "ferplus-cpu" / "baseline-sym30-s0"
    assert (run / "summary.json").is_file()
    stamp = (run / "summary.json").stat().st_mtime_ns
    capsys.readouterr()
    grid(full)
    assert "finished, skipped" in capsys.readouterr().out
    assert (run / "summary.json").stat().st_mtime_ns == stamp
    res = json.loads((full / "res.json").read_text())
    assert not list(full.glob(".res.json.*"))            # the atomic write leaves no temporary file
    assert len(res["runs"]) == 1 and res["runs"][0]["protocol"]["epochs"] == 2
    # a worker that trains only some runs keeps the other runs' rows of the results file
    other = {**res["runs"][0], "method": "eac", "protocol": {"last": 0.5}}
    (full / "res.json").write_text(json.dumps({**res, "runs": [*res["runs"], other]}))
    grid(full)
    rows = json.loads((full / "res.json").read_text())["runs"]
    assert [(r["method"], r["protocol"]["last"]) for r in rows] == [("baseline", res["runs"][0]["protocol"]["last"]),
                                                                     ("eac", 0.5)]

    # an interrupted run: one epoch done, checkpoint on disk, no summary
    overrides = {"dataset": "synthetic", "dataset_args": {"n": 64, "image_size": 32}, "backbone": "resnet10",
                 "backbone_args": {"widths": [8, 16, 32, 64]},
                 "input_size": 32, "epochs": 2, "batch_size": 16, "limit_train": None, "limit_eval": 32,
                 "train_fit_every": 0, "device": "cpu", "progress": False}
    cfg = run_grid.run_config("baseline", "sym30", "cpu", 0, str(part), overrides=overrides)
    tr = Trainer(cfg)
    tr.cfg.epochs = 1
    tr.fit()
    (part / "ferplus-cpu" / "baseline-sym30-s0" / "summary.json").unlink()
    assert run_grid.run_state(cfg) == "partial"
    capsys.readouterr()
    grid(part)
    assert "resuming" in capsys.readouterr().out
    a = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(part / "ferplus-cpu" / "baseline-sym30-s0" / "checkpoints" / "last.pt", weights_only=True)
    assert b["epoch"] == 2
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def test_live_lock_is_skipped_and_stale_lock_taken_over(tmp_path, capsys):
    run = tmp_path / "ferplus-cpu" / "baseline-sym30-s0"
    run.mkdir(parents=True)
    (run / ".grid.lock").write_text(str(os.getpid()))        # a live process owns it
    grid(tmp_path)
    assert "another worker" in capsys.readouterr().out and not (run / "summary.json").exists()
    assert not run_grid.acquire_lock(run)
    (run / ".grid.lock").write_text("999999999")             # no such process
    assert run_grid.acquire_lock(run)
    assert (run / ".grid.lock").read_text() == str(os.getpid())


def test_settings_change_only_the_labels():
    a = run_grid.run_config("eac", "sym30", "cpu", 0, "runs")
    b = run_grid.run_config("eac", "fer2013", "cpu", 0, "runs")
    c = run_grid.run_config("eac", "clean", "cpu", 0, "runs")
    assert (a.noise, a.noise_rate, a.dataset_args["label_mode"]) == ("symmetric", 0.3, "majority")
    assert (b.noise, b.dataset_args["label_mode"]) == ("none", "fer2013")
    assert c.method_args["pairing"] == "mirror" and a.method_args["pairing"] == "independent"
    assert a.name != b.name and a.out_dir == b.out_dir


def test_variant_is_its_own_named_run_from_its_own_preset():
    faithful = run_grid.run_config("dmue", "sym30", "cpu", 0, "runs")
    scratch = run_grid.run_config("dmue:scratch", "sym30", "cpu", 0, "runs")
    assert scratch.method == "dmue" and scratch.name == "dmue_scratch-sym30-s0" and scratch.out_dir == faithful.out_dir
    assert scratch.method_args["neck"] == "none" and "neck" not in faithful.method_args
    assert (scratch.noise, scratch.noise_rate) == (faithful.noise, faithful.noise_rate)
    with pytest.raises(ValueError, match="cpu_nope"):
        run_grid.run_config("dmue:nope", "sym30", "cpu", 0, "runs")


def test_ldlva_neighbours_come_from_the_baseline_of_the_same_setting():
    for setting in ("sym30", "fer2013"):
        cfg = run_grid.run_config("ldlva", setting, "cpu", 1, "runs")
        assert cfg.method_args["space"] == "features"
        assert cfg.method_args["space_checkpoint"] == f"runs/ferplus-cpu/baseline-{setting}-s1/checkpoints/last.pt"
