"""cleanlab on K-fold out-of-sample probabilities trained by ferlab (K = 2, tiny planted-flip folder).

Skipped when the ``ferlab[audit]`` extra (cleanlab) is not installed; the message for that case is
tested in test_audit_cli.py without it.
"""
import csv
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

pytest.importorskip("cleanlab", reason="the audit extra is not installed: pip install 'ferlab[audit]'")

from ferlab.audit import AuditError, cleanlab_audit, cross_val_probs, fold_run_dirs, write_csv
from ferlab.audit.probs import predict_probs
from ferlab.cli import main
from ferlab.data.noise import labels_sha256
from ferlab.engine.trainer import load_run_method


@pytest.fixture
def cv(planted_folds):
    return planted_folds


def test_folds_train_on_the_other_fold_with_the_full_runs_noisy_labels(cv):
    _, out, logs = cv
    ds, fold, probs = out["dataset"], out["fold"], out["probs"]
    assert [f"fold {i + 1}/2: training" in line for i, line in enumerate(logs)] == [True, True]   # first call
    assert probs.shape == (len(ds), 4) and np.allclose(probs.sum(1), 1)
    assert sorted(np.bincount(fold)) == [60, 60]
    for i, run in enumerate(out["runs"]):
        state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
        assert state["config"]["train_folds"] == {"k": 2, "fold": i, "seed": 0}
        assert np.array_equal(state["labels"].numpy(), ds.labels[fold != i])
        summary = json.loads((run / "summary.json").read_text())
        assert summary["noise"]["noisy_sha256"] == labels_sha256(ds.labels)       # noise of the full set
        # the held-out probabilities are this fold model's prediction of exactly the rows it never saw
        method, _, dev = load_run_method(run / "checkpoints" / "last.pt", "cpu")
        rows = np.flatnonzero(fold == i)
        assert np.allclose(probs[rows], predict_probs(method, ds.subset(rows), dev), atol=1e-6)
    assert out["train_time_s"][0] > 0


def test_rerunning_skips_finished_folds_and_resumes_partial_ones(cv):
    cfg, out, _ = cv
    ck = [r / "checkpoints" / "last.pt" for r in out["runs"]]
    before = [p.stat().st_mtime_ns for p in ck]
    logs = []
    again = cross_val_probs(cfg, k=2, log=logs.append)
    assert all("finished, not retrained" in line for line in logs)
    assert [p.stat().st_mtime_ns for p in ck] == before
    assert np.array_equal(again["probs"], out["probs"])
    (out["runs"][1] / "summary.json").unlink()            # fold 2 interrupted after its last checkpoint
    with pytest.raises(AuditError, match="1 of 2 fold runs are not finished"):
        cross_val_probs(cfg, k=2, train=False)
    logs = []
    cross_val_probs(cfg, k=2, log=logs.append)
    assert "not retrained" in logs[0] and "resuming" in logs[1]
    assert (out["runs"][1] / "summary.json").is_file()


def test_cleanlab_flags_and_ranks_the_planted_flips(cv, tmp_path):
    """Same threshold as the signal test (test_audit_ranking.py): AUROC 0.75 is > 4 sd above what a
    ranking that ignores the flips reaches with N = 120 and ~36 flips."""
    _, out, _ = cv
    audit = cleanlab_audit(out["dataset"], out["probs"])
    wrong = audit.wrong
    assert roc_auc_score(wrong, audit.suspicion) > 0.75
    # flagged rows come first, each group ordered by 1 - p(given label)
    order = audit.order
    n_flag = int(audit.flagged.sum())
    assert n_flag > 0 and audit.flagged[order[:n_flag]].all()
    self_conf = out["probs"][np.arange(len(wrong)), out["dataset"].labels]
    assert np.all(np.diff(self_conf[order[:n_flag]]) >= 0) and np.all(np.diff(self_conf[order[n_flag:]]) >= 0)
    with open(write_csv(audit, tmp_path / "label-audit.csv"), newline="") as f:
        header = next(csv.reader(f))
    assert header[:10] == ["rank", "index", "image", "given_label", "predicted_label", "p_given", "p_predicted",
                           "suspicion", "flagged", "reference_label"]


def test_cli_cleanlab_on_a_run_reuses_its_finished_folds(cv, planted_runs, tmp_path, capsys):
    assert main(["audit", "--cleanlab", str(planted_runs / "baseline"), "--folds", "2", "--out", str(tmp_path),
                 "--top-k", "8"]) == 0
    text = capsys.readouterr().out
    assert text.count("finished, not retrained") == 2 and "cleanlab flags" in text
    summary = json.loads((tmp_path / "label-audit-summary.json").read_text())
    assert summary["source"]["fold_runs"] == [str(r) for r in fold_run_dirs(cv[0], 2)]
    assert summary["flagged"] == summary["against_reference_labels"]["flagged_set"]["flagged"] > 0
