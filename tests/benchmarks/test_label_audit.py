"""benchmarks/label_audit.py: a measurement completed from the archive equals the one from the runs."""
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ferlab.engine.config import TrainConfig
from ferlab.engine.trainer import fit

pytest.importorskip("cleanlab")
ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("label_audit", ROOT / "benchmarks" / "label_audit.py")
label_audit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(label_audit)


def tiny(out: Path, method: str) -> TrainConfig:
    return TrainConfig(name=f"{method}-sym30-s0", out_dir=str(out), method=method, dataset="synthetic",
                       dataset_args={"n": 64, "image_size": 32}, eval_dataset_args={"n": 16}, backbone="resnet10",
                       backbone_args={"widths": [8, 16, 32, 64]},
                       input_size=32, epochs=1, batch_size=16, lr=1e-3, noise="symmetric", noise_rate=0.3,
                       progress=False)


def scores(results: Path) -> list[tuple]:
    res = json.loads(results.read_text())["settings"]["sym30"]
    return [(e["approach"], e["auroc"], e["average_precision"], e["precision_at_k"], e.get("flagged_set"),
             e["machine"], e["train_time_s"]) for e in res["approaches"]]


@pytest.mark.slow
def test_scores_from_the_archive_equal_those_from_the_runs(tmp_path):
    runs, archive = tmp_path / "runs", tmp_path / "archive"
    for method in ("baseline", "rul"):
        fit(tiny(runs, method))
    common = ["--runs", str(runs), "--settings", "sym30", "--methods", "baseline", "rul", "--folds", "2",
              "--ks", "5", "10", "--archive", str(archive)]
    assert label_audit.main([*common, "--train-folds", "--results", str(tmp_path / "a.json")]) == 0
    assert sorted(p.name for p in archive.iterdir()) == [
        "baseline-sym30-s0-cv2-seed0.json", "baseline-sym30-s0.json", "rul-sym30-s0.json"]
    fresh = scores(tmp_path / "a.json")
    kinds = [e["kind"] for e in json.loads((tmp_path / "a.json").read_text())["settings"]["sym30"]["approaches"]]
    assert kinds.count("cleanlab") == 1 and kinds.count("rank_average") == 1 and kinds.count("signal") >= 3
    assert {e[-2] for e in fresh} == {label_audit.cpu_name()}      # the CPU the training times were measured on
    first = json.loads((tmp_path / "a.json").read_text())
    assert first["settings"]["sym30"]["command"] == first["command"] and "--settings sym30" in first["command"]
    # scoring another setting into the same results file keeps sym30's own command
    other = ["--runs", str(runs), "--settings", "clean", "--methods", "baseline", "--archive", str(archive)]
    assert label_audit.main([*other, "--results", str(tmp_path / "a.json")]) == 0
    again = json.loads((tmp_path / "a.json").read_text())
    assert again["settings"]["sym30"] == first["settings"]["sym30"] and "--settings clean" in again["command"]

    shutil.rmtree(runs)                                   # the runs are gone (a new machine): the archive remains
    assert label_audit.main([*common, "--results", str(tmp_path / "b.json")]) == 0
    res = json.loads((tmp_path / "b.json").read_text())["settings"]["sym30"]
    assert res["missing"] == [] and scores(tmp_path / "b.json") == fresh
    assert all(e.get("run", "").startswith(str(archive)) for e in res["approaches"] if e["kind"] == "signal")

    # without the baseline run, its archived config defines the folds: cleanlab is retrained to the same numbers
    (archive / "baseline-sym30-s0-cv2-seed0.json").unlink()
    assert label_audit.main([*common, "--train-folds", "--results", str(tmp_path / "d.json")]) == 0
    assert not (runs / "baseline-sym30-s0").exists()
    assert (runs / "baseline-sym30-s0-fold1of2" / "summary.json").is_file()
    assert [e[:-1] for e in scores(tmp_path / "d.json")] == [e[:-1] for e in fresh]     # all but the train time

    # an archive whose scores belong to other labels than its config rebuilds is refused, naming the file
    path = archive / "rul-sym30-s0.json"
    arrays, meta = label_audit.archive_read(archive, "rul-sym30-s0")
    meta["config"]["noise_seed"] = 1
    label_audit.archive_write(archive, "rul-sym30-s0", arrays, meta)
    with pytest.raises(SystemExit, match=str(path)):
        label_audit.main([*common, "--results", str(tmp_path / "c.json")])


def test_archive_holds_float32_scores_and_no_labels(tmp_path):
    a = {"label_loss": np.array([0.1, 2.5, np.nan])}
    label_audit.archive_write(tmp_path, "r", a, {"run": "r", "labels_sha256": "x"})
    arrays, meta = label_audit.archive_read(tmp_path, "r")
    assert list(arrays) == ["label_loss"] and meta == {"run": "r", "labels_sha256": "x"}
    np.testing.assert_array_equal(arrays["label_loss"], a["label_loss"].astype(np.float32))
    assert label_audit.archive_read(tmp_path, "missing") is None


def test_rescoring_a_run_leaves_its_archive_as_it_was_unless_the_scores_or_meta_differ(tmp_path):
    a = {"label_loss": np.array([0.1, 2.5, np.nan])}
    meta = {"run": "r", "labels_sha256": "x", "archived_by_commit": "aaa", "archived": "2026-12-01"}
    path = label_audit.archive_write(tmp_path, "r", a, meta)
    label_audit.archive_write(tmp_path, "r", a, {**meta, "archived_by_commit": "bbb", "archived": "2026-12-02"})
    assert label_audit.archive_read(tmp_path, "r")[1]["archived_by_commit"] == "aaa"
    a2 = {"label_loss": np.array([0.1, 2.6, np.nan])}                       # other scores: rewritten
    label_audit.archive_write(tmp_path, "r", a2, {**meta, "archived_by_commit": "ccc"})
    arrays, got = label_audit.archive_read(tmp_path, "r")
    assert got["archived_by_commit"] == "ccc" and arrays["label_loss"][1] == np.float32(2.6)
    label_audit.archive_write(tmp_path, "r", a2, {**meta, "archived_by_commit": "ddd", "machine": "other"})
    assert label_audit.archive_read(tmp_path, "r")[1]["archived_by_commit"] == "ddd"   # other meta: rewritten
    assert path.is_file()


def test_an_archive_inside_the_repository_is_named_relative_to_it_in_the_results(tmp_path):
    # the committed results file must not carry the checkout's absolute path ("/work/main/benchmarks/...")
    assert label_audit.shown(label_audit.ARCHIVE / "x.json") == "benchmarks/results/label-audit-signals/x.json"
    assert label_audit.shown(tmp_path / "x.json") == str(tmp_path / "x.json")
