"""``ferlab audit``: files written, bad input as one line with exit 2, cleanlab missing."""
import json
import sys

import pytest
from PIL import Image

from ferlab.cli import main


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ferlab audit: error: "), err
    return err[0]


def test_audit_two_runs_writes_csv_contact_sheet_and_summary(planted_runs, tmp_path, capsys):
    runs = [str(planted_runs / "baseline"), str(planted_runs / "rul")]
    assert main(["audit", *runs, "--out", str(tmp_path), "--top-k", "16", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "rank average" in out and "AUROC" in out
    summary = json.loads((tmp_path / "label-audit-summary.json").read_text())
    assert [r["signal"] for r in summary["source"]["runs"]] == ["label_loss", "uncertainty"]
    assert summary["files"]["csv"].endswith("label-audit.csv")
    # 2 rows of 8 tiles: each tile >= 144 px wide, i.e. a 48 px source drawn at 3x or more
    w, h = Image.open(tmp_path / "label-audit-top16.png").size
    assert w / 8 >= 144 and h / 2 >= 144


@pytest.mark.parametrize("argv, expected", [
    (["--signal", "nope"], "no signal 'nope'"),
    (["--epochs", "3"], "--epochs: training flags apply with --cleanlab only"),
    (["RUN", "--cleanlab", "--folds", "2"], "--cleanlab takes one run"),
    (["--cleanlab", "--folds", "1"], "--folds must be >= 2"),
])
def test_bad_arguments_are_one_line_exit_2(planted_runs, tmp_path, capsys, argv, expected):
    pytest.importorskip("cleanlab") if "--cleanlab" in argv else None
    run = str(planted_runs / "baseline")
    runs = [run] + [run] * argv.count("RUN")            # a second run right after the first
    argv = [a for a in argv if a != "RUN"]
    assert main(["audit", *runs, "--out", str(tmp_path), *argv]) == 2
    assert expected in one_error_line(capsys)


def test_not_a_run_is_one_line_exit_2(tmp_path, capsys):
    assert main(["audit", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "not a finished run directory" in one_error_line(capsys)


def test_missing_cleanlab_is_one_line_before_any_training(planted_runs, tmp_path, capsys, monkeypatch):
    for name in [m for m in sys.modules if m == "cleanlab" or m.startswith("cleanlab.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "cleanlab", None)          # import cleanlab -> ImportError
    run = planted_runs / "baseline"
    assert main(["audit", "--cleanlab", str(run), "--folds", "3", "--out", str(tmp_path)]) == 2
    assert "pip install 'ferlab[audit]'" in one_error_line(capsys)
    assert not (run.parent / "baseline-fold0of3").exists()
