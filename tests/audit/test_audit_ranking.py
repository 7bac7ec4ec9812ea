"""Ranking a run's training set by its noise signal; rank averaging of several runs."""
import csv
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from ferlab.audit import AuditError, audit_runs, normalised_ranks, rank_average, summary, write_csv, write_report
from ferlab.audit.metrics import average_precision, precision_at_k, set_precision_recall
from ferlab.engine.config import TrainConfig
from ferlab.engine.signals import run_signals
from ferlab.engine.trainer import build_train_set, fit

N = 120  # images in the planted-flip folder (conftest)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_rank_average_by_hand():
    # run 1: 0.1 0.5 0.3 0.3 -> ranks 1, 4, 2.5, 2.5 (tie: mean of 2 and 3); run 2: 3 1 2 4 -> 3, 1, 2, 4
    # suspicion = mean over runs of rank / 4: (1+3)/8, (4+1)/8, (2.5+2)/8, (2.5+4)/8
    got = rank_average([np.array([0.1, 0.5, 0.3, 0.3]), np.array([3.0, 1.0, 2.0, 4.0])])
    assert np.allclose(got, [0.5, 0.625, 0.5625, 0.8125])
    # one NaN among 4: the finite three take 1..3 shifted by (4 - 3) / 2 = 0.5, the NaN the middle rank 2.5
    assert np.allclose(normalised_ranks([0.2, np.nan, 0.9, 0.1]), np.array([2.5, 2.5, 3.5, 1.5]) / 4)
    with pytest.raises(ValueError):
        rank_average([np.zeros(3), np.zeros(4)])


def test_detection_metrics_by_hand():
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    wrong = np.array([1, 0, 1, 0, 0], dtype=bool)
    assert precision_at_k(score, wrong, 2) == 0.5 and precision_at_k(score, wrong, 3) == pytest.approx(2 / 3)
    assert np.isnan(precision_at_k(score, wrong, 6))
    # AP = sum over the wrong rows of the precision at their rank / #wrong = (1/1 + 2/3) / 2
    assert average_precision(score, wrong) == pytest.approx((1 + 2 / 3) / 2)
    pr = set_precision_recall(np.array([1, 1, 0, 0, 1], dtype=bool), wrong)
    assert (pr["flagged"], pr["correct"]) == (3, 1) and pr["precision"] == pytest.approx(1 / 3) and pr["recall"] == 0.5


def test_csv_ranks_by_the_signal_and_carries_image_names(planted_runs, tmp_path):
    run = planted_runs / "baseline"
    info = write_report(audit_runs([run], progress=False), tmp_path, top_k=16)
    rows = read_csv(tmp_path / "label-audit.csv")
    sig = run_signals(run, progress=False)
    assert len(rows) == N
    # most suspicious first, by the baseline's signal (CE of the given label)
    assert [int(r["index"]) for r in rows] == list(np.argsort(-sig["label_loss"], kind="stable"))
    assert [float(r["suspicion"]) for r in rows] == pytest.approx(np.sort(sig["label_loss"])[::-1], rel=1e-5)
    assert [int(r["rank"]) for r in rows] == list(range(1, N + 1))
    # the image column names the real file of that row, and its label is the row's given (noisy) label
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    ds, _ = build_train_set(TrainConfig.from_yaml(run / "config.yaml"))
    for r in rows[:10]:
        i = int(r["index"])
        assert r["image"] == ds.paths[i] and r["image"].endswith(".png")
        assert r["given_label"] == ds.classes[int(state["labels"][i])]
    # the probabilities are those of the same rows: CE of the given label = -log p(given)
    for r in rows:
        assert -np.log(float(r["p_given"])) == pytest.approx(float(r["baseline:label_loss"]), rel=1e-4, abs=1e-5)
        assert r["predicted_label"] == max(ds.classes, key=lambda c: float(r[f"p_{c}"]))
    assert info["top_k"] == 16 and (tmp_path / "label-audit-top16.png").is_file()
    info_json = json.loads((tmp_path / "label-audit-summary.json").read_text())
    assert info_json["source"]["runs"][0]["signal"] == "label_loss" and info_json["n"] == N


def test_csv_has_lf_line_ends_like_metrics_and_predict_csvs(tmp_path):
    from ferlab.audit.result import LabelAudit
    from ferlab.data import build_dataset
    ds = build_dataset("synthetic", None, "train", n=6, image_size=16)
    path = write_csv(LabelAudit(ds, suspicion=np.array([0.1, 0.9, 0.5, 0.3, 0.7, 0.2])), tmp_path / "a.csv")
    data = path.read_bytes()
    assert b"\r" not in data and data.count(b"\n") == 7 and data.endswith(b"\n")     # header + 6 rows
    assert [int(r["index"]) for r in read_csv(path)] == [1, 4, 2, 3, 5, 0]


def test_planted_flips_are_ranked_above_chance(planted_runs, tmp_path):
    """AUROC of the table's ranking for "given label != the label before the planted flip".

    Threshold from the null: a ranking independent of the flips has AUROC mean 0.5 and standard
    deviation sqrt((n0 + n1 + 1) / (12 n0 n1)) (Mann-Whitney U); with N = 120 and ~36 flips (30%)
    that is 0.058, so 0.75 is 4.3 sd above chance (P < 1e-5 for a ranking that ignores the flips),
    while a model that learned the four colour classes puts nearly every flip above the intact rows.
    """
    audit = audit_runs([planted_runs / "baseline"], progress=False)
    rows = read_csv(write_csv(audit, tmp_path / "label-audit.csv"))
    wrong = np.array([r["given_label"] != r["reference_label"] for r in rows])
    n1 = int(wrong.sum())
    assert 24 <= n1 <= 48          # 30% of 120, Binomial sd 5
    assert roc_auc_score(wrong, [float(r["suspicion"]) for r in rows]) > 0.75
    assert summary(audit)["against_reference_labels"]["n_wrong"] == n1


def test_two_runs_are_combined_by_rank_averaging(planted_runs):
    runs = [planted_runs / "baseline", planted_runs / "rul"]
    audit = audit_runs(runs, progress=False)
    assert [r["signal"] for r in audit.source["runs"]] == ["label_loss", "uncertainty"]
    a, b = (run_signals(r, progress=False) for r in runs)
    # ranks 1..N by argsort of argsort (continuous signals: no ties), each / N, then the mean
    ra = (np.argsort(np.argsort(a["label_loss"])) + 1) / N
    rb = (np.argsort(np.argsort(b["uncertainty"])) + 1) / N
    assert np.allclose(audit.suspicion, (ra + rb) / 2)
    assert {"baseline:label_loss", "rul:label_loss", "rul:uncertainty"} <= set(audit.signals)
    # a chosen signal for every run
    assert np.allclose(audit_runs(runs, signal="label_loss", progress=False).suspicion,
                       rank_average([a["label_loss"], b["label_loss"]]))


def test_runs_of_other_labels_or_without_the_signal_are_refused(planted_root, planted_runs, make_planted_config,
                                                                tmp_path):
    cfg = make_planted_config(planted_root, tmp_path, "other", noise_seed=1)
    cfg.epochs = 1
    fit(cfg)
    with pytest.raises(AuditError, match="other images or labels"):
        audit_runs([planted_runs / "baseline", tmp_path / "other"], progress=False)
    with pytest.raises(AuditError, match="no signal 'uncertainty'"):
        audit_runs([planted_runs / "baseline"], signal="uncertainty", progress=False)
    with pytest.raises(AuditError, match="not a finished run"):
        audit_runs([tmp_path / "nothing"], progress=False)
