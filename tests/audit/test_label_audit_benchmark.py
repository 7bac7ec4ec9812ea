"""benchmarks/label_audit.py on a tiny grid folder (the planted-flip runs under grid names): numbers
against independent computations, cleanlab's cost = its fold runs, missing folds reported, not trained."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cleanlab", reason="the audit extra is not installed: pip install 'ferlab[audit]'")

from ferlab.audit import cleanlab_audit
from ferlab.engine.metrics import noise_detection_auroc
from ferlab.engine.signals import run_signals
from ferlab.engine.trainer import read_history

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("label_audit", ROOT / "benchmarks" / "label_audit.py")
label_audit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(label_audit)


@pytest.fixture
def grid(planted_runs, planted_folds, tmp_path):
    """``<grid>/<method>-sym30-s0`` and the baseline's fold runs, as links to the planted runs."""
    grid = tmp_path / "grid"
    grid.mkdir()
    for method in ("baseline", "rul"):
        (grid / f"{method}-sym30-s0").symlink_to(planted_runs / method)
    for i, run in enumerate(planted_folds[1]["runs"]):
        (grid / f"baseline-sym30-s0-fold{i}of2").symlink_to(run)
    return grid


def test_benchmark_scores_every_signal_and_cleanlab(grid, planted_folds, tmp_path, capsys):
    res_path = tmp_path / "res.json"
    archive = tmp_path / "archive"        # never the repository's committed archive
    assert label_audit.main(["--runs", str(grid), "--settings", "sym30", "--methods", "baseline", "rul",
                             "--folds", "2", "--ks", "10", "30", "--results", str(res_path),
                             "--archive", str(archive)]) == 0
    assert sorted(p.name for p in archive.iterdir()) == [
        "baseline-sym30-s0-cv2-seed0.json", "baseline-sym30-s0.json", "rul-sym30-s0.json"]
    res = json.loads(res_path.read_text())["settings"]["sym30"]
    by = {e["approach"]: e for e in res["approaches"]}
    assert list(by) == ["baseline: CE of the given label", "RUL: CE of the given label", "RUL: uncertainty",
                        "rank average of the own signals (baseline, RUL)",
                        "cleanlab find_label_issues (2-fold baseline probabilities; flagged first)",
                        "1 - p(given label), 2-fold cross-validated baseline"]
    sig = run_signals(grid / "baseline-sym30-s0", progress=False)
    wrong = sig["flipped"]
    assert res["n_wrong"] == int(wrong.sum()) and res["n_known"] == len(wrong)
    base = by["baseline: CE of the given label"]
    assert base["auroc"] == pytest.approx(noise_detection_auroc(sig["label_loss"], wrong))
    top10 = np.argsort(-sig["label_loss"])[:10]
    assert base["precision_at_k"]["10"] == pytest.approx(wrong[top10].mean())
    assert base["train_time_s"] == pytest.approx(sum(h["time_s"] for h in read_history(grid / "baseline-sym30-s0")))
    # cleanlab: the same flagged set as the API, its cost = the two fold runs
    _, cv, _ = planted_folds
    audit = cleanlab_audit(cv["dataset"], cv["probs"])
    cl = by["cleanlab find_label_issues (2-fold baseline probabilities; flagged first)"]
    assert cl["flagged_set"]["flagged"] == int(audit.flagged.sum())
    assert cl["flagged_set"]["correct"] == int((audit.flagged & audit.wrong).sum())
    assert cl["train_time_s"] == pytest.approx(sum(cv["train_time_s"])) and cl["training_runs"] == 2
    assert not res["missing"]
    capsys.readouterr()
    assert label_audit.main(["--table", "--results", str(res_path)]) == 0
    table = capsys.readouterr().out
    assert "| cleanlab find_label_issues" in table and "precision at 30" in table
    assert label_audit.main(["--figure", str(tmp_path / "p.png"), "--results", str(res_path)]) == 0
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_missing_folds_are_reported_with_their_command_not_trained(grid, tmp_path, capsys):
    res_path = tmp_path / "res.json"
    assert label_audit.main(["--runs", str(grid), "--settings", "sym30", "--methods", "baseline",
                             "--folds", "3", "--ks", "10", "--results", str(res_path),
                             "--archive", str(tmp_path / "archive")]) == 0
    res = json.loads(res_path.read_text())["settings"]["sym30"]
    assert [e["approach"] for e in res["approaches"]] == ["baseline: CE of the given label"]
    assert any(f"ferlab audit --cleanlab {grid / 'baseline-sym30-s0'} --folds 3" in m for m in res["missing"])
    assert not list(grid.glob("*fold*of3"))
