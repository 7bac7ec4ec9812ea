"""What a run leaves behind: best-validation checkpoint, metrics.csv, TensorBoard events, the start echo;
the per-backbone official defaults and the validation hold-out."""
import csv
import json
import shutil

import numpy as np
import pytest
import torch

from ferlab.data.holdout import holdout_split
from ferlab.engine.config import TrainConfig
from ferlab.engine.run_log import flatten_row
from ferlab.engine.trainer import evaluate_checkpoint, fit
from ferlab.methods import method_class


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    cfg = TrainConfig(name="r", out_dir=str(out), dataset_args={"n": 64, "image_size": 32},
                      eval_dataset_args={"n": 48}, backbone="resnet10", input_size=32, epochs=3, batch_size=16,
                      lr=1e-2, noise="symmetric", noise_rate=0.3, progress=False, train_fit_every=2,
                      # float32: the curve does not depend on the thread count
                      tensorboard=True, amp="off", channels_last="off")
    summary = fit(cfg)
    rows = [json.loads(x) for x in (out / "r" / "metrics.jsonl").read_text().splitlines()]
    yield out / "r", summary, rows
    shutil.rmtree(out, ignore_errors=True)              # module-scoped: free the disk before the session ends


def test_best_checkpoint_evaluates_to_the_logged_best_validation(run):
    path, summary, rows = run
    i = int(np.argmax([r["val_acc"] for r in rows]))           # first best, as the protocol's best_val
    assert i < len(rows) - 1, "precondition: this seed/lr should peak before the last epoch, else best == last"
    best = path / "checkpoints" / "best.pt"
    assert torch.load(best, weights_only=True)["epoch"] == rows[i]["epoch"] == summary["val"]["best_epoch"]
    assert evaluate_checkpoint(best, "val", "cpu", progress=False)["acc"] == rows[i]["val_acc"]
    assert evaluate_checkpoint(best, "test", "cpu", progress=False)["acc"] == summary["protocol"]["best_val"]
    assert evaluate_checkpoint(path / "checkpoints" / "last.pt", "test", "cpu", progress=False)["acc"] == \
        summary["protocol"]["last"]


def test_metrics_csv_holds_the_jsonl_rows(run):
    path, _, rows = run
    with open(path / "metrics.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(rows) == 3
    for got, want in zip(table, rows):
        flat = flatten_row(want)
        assert {k for k, v in got.items() if v != ""} == set(flat)          # train_fit.* only where measured
        for key, val in flat.items():
            assert type(val)(got[key]) == val if not isinstance(val, bool) else got[key] == str(val), key
    assert "train_fit.memorised_flipped" in table[0] and table[0]["train_fit.memorised_flipped"] == ""
    assert float(table[1]["train_fit.memorised_flipped"]) == rows[1]["train_fit"]["memorised_flipped"]


def test_tensorboard_events_hold_each_epoch(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    path, _, rows = run
    assert list((path / "tensorboard").glob("events.out.tfevents.*"))
    acc = EventAccumulator(str(path / "tensorboard"))
    acc.Reload()
    for key in ("val_acc", "test_acc", "loss", "train_fit.memorised_flipped"):
        events = acc.Scalars(key)
        want = [(r["epoch"], flatten_row(r)[key]) for r in rows if key in flatten_row(r)]
        assert [(e.step, pytest.approx(e.value, rel=1e-6)) for e in events] == want, key


def test_a_run_prints_its_resolved_settings(tmp_path, capsys):
    fit(TrainConfig(name="echo", out_dir=str(tmp_path), method="eac", dataset_args={"n": 16, "image_size": 32},
                    eval_dataset_args={"n": 8}, backbone="resnet18", input_size=32, epochs=1, batch_size=8,
                    progress=False, val_split=None))
    out = capsys.readouterr().out
    for text in ("method      eac", "backbone    resnet18, weights none (random init), input 32 px",
                 "epochs 1, batch 8, adam lr per group 0.0002 (11.18M params)", "noise       none",
                 f"run         {tmp_path / 'echo'}", "lr 0.0002 (method, resnet18 default)", "val none"):
        assert text in out, text


def test_eac_uses_its_resnet18_learning_rate_unless_told_otherwise():
    eac = method_class("eac").defaults
    assert TrainConfig(method="eac", backbone="resnet18").resolved(eac).lr == 2e-4      # EAC FAQ, issues #3/#5
    assert TrainConfig(method="eac", backbone="resnet50_caffe").resolved(eac).lr == 1e-4
    assert TrainConfig(method="eac", backbone="resnet18", lr=5e-4).resolved(eac).lr == 5e-4
    assert TrainConfig(method="eac", backbone="resnet18").default_sources(eac)["lr"] == "method, resnet18"
    assert TrainConfig(method="eac", backbone="resnet50").default_sources(eac)["lr"] == "method"


def test_holdout_is_stratified_seeded_and_disjoint():
    labels = np.array([0] * 10 + [1] * 5 + [2] * 2 + [-1] * 3)
    train, val = holdout_split(labels, 0.2, seed=1)
    assert np.bincount(labels[val], minlength=3).tolist() == [2, 1, 1]      # round(0.2 n), at least 1 of 2+
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(labels)))
    assert set(np.flatnonzero(labels == -1)) <= set(train)
    again = holdout_split(labels, 0.2, seed=1)[1]
    assert np.array_equal(again, val) and not np.array_equal(holdout_split(labels, 0.2, seed=2)[1], val)
    assert len(holdout_split(labels, 0.0)[1]) == 0
