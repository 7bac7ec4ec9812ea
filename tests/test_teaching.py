"""The notebooks' setting (ferlab/teaching.py): which setting is chosen and why, that every method is trained
like its baseline, that runs are shared through the runs folder, and what a method notebook compares."""
import json

import numpy as np
import pytest

from ferlab.engine.metrics import noise_detection_auroc
from ferlab.engine.signals import run_signals
from ferlab.figures import registry
from ferlab.teaching import METHODS, choose_setting, compare, face_weights_missing, most_suspicious, signal_panels

#: options that make a run of one method differ from the baseline's by design
METHOD_PART = {"method", "method_args", "name", "optimizer", "lr", "weight_decay", "scheduler", "gamma",
               "milestones", "sampler", "augment", "drop_last", "dataset_args", "batch_size"}


def test_without_ferplus_the_setting_is_synthetic_and_says_why(tmp_path):
    setting = choose_setting(data_root=tmp_path)         # no ferplus/ in it
    assert setting.dataset == "synthetic" and setting.name == "synthetic48"
    assert "FERPlus was not found" in setting.why and "FERLAB_DATA" in setting.why
    smoke = choose_setting(smoke=True, data_root=tmp_path)
    assert smoke.name == "synthetic48-smoke" and (smoke.n_train, smoke.epochs) == (64, 1)
    assert "synthetic faces" in smoke.describe() and setting.why in setting.describe()


def test_with_ferplus_and_face_weights_the_setting_fine_tunes_dlib(tmp_path):
    (tmp_path / "ferplus").mkdir()
    setting = choose_setting(data_root=tmp_path)
    if face_weights_missing():
        assert setting.dataset == "synthetic" and "face weights are not installed" in setting.why
        return
    assert setting.dataset == "ferplus" and setting.data_root == str(tmp_path / "ferplus")
    cfg = setting.config("eac", tmp_path / "runs")
    assert (cfg.backbone, cfg.weights, cfg.input_size) == ("dlib_resnet29", "dlib", 112)
    assert cfg.limit_train == setting.n_train and cfg.limit_eval == setting.n_test and cfg.val_split is None


@pytest.mark.parametrize("data", ["synthetic", "ferplus"])
def test_every_method_is_trained_like_the_baseline(tmp_path, data):
    if data == "ferplus":
        (tmp_path / "ferplus").mkdir()
        if face_weights_missing():
            pytest.skip("dlib's face weights are not installed")
    setting = choose_setting(data_root=tmp_path)
    out = tmp_path / "runs"
    base = setting.config("baseline", out).to_dict()
    for method in METHODS[1:]:
        if method == "lanet" and setting.dataset == "ferplus":
            continue        # its config detects landmarks in the FERPlus images
        cfg = setting.config(method, out).to_dict()
        differ = {k for k in cfg if cfg[k] != base[k]}
        assert differ <= METHOD_PART, f"{method}: {sorted(differ - METHOD_PART)} differ from the baseline's"
        assert cfg["out_dir"] == str(out / setting.name) and cfg["name"] == f"{method}-sym30-s0"
    ldlva = setting.config("ldlva", out).method_args
    assert ldlva["space"] == "features"
    assert ldlva["space_checkpoint"] == str(out / setting.name / "baseline-sym30-s0" / "checkpoints" / "last.pt")
    # the recipe ramps DMUE's target branch in over 6 of its 15 epochs: the same share of the setting's epochs
    assert setting.config("dmue", out).method_args["ramp_a"] == round(setting.epochs * 6 / 15)


def test_run_names_are_the_figure_registry_names(tmp_path):
    setting = choose_setting(data_root=tmp_path)
    names = {setting.run_name(m) for m in METHODS}
    attention = next(f for f in registry() if f.name == "attention-sym30")
    assert set(attention.runs) <= names


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("teaching")
    setting = choose_setting(smoke=True, data_root=root)       # synthetic: no ferplus/ under root
    out = root / "runs"
    return setting, out, {m: setting.train(m, out, device="cpu", progress=False) for m in ("baseline", "rul")}


def test_a_second_notebook_reuses_the_run(smoke_runs, capsys):
    setting, out, runs = smoke_runs
    stamp = runs["baseline"].checkpoint.stat().st_mtime_ns
    again = setting.train("baseline", out, device="cpu", progress=False)
    assert again.path == runs["baseline"].path and again.history == runs["baseline"].history
    assert runs["baseline"].checkpoint.stat().st_mtime_ns == stamp and "reused" in capsys.readouterr().out


def test_compare_reports_each_runs_numbers(smoke_runs):
    setting, out, runs = smoke_runs
    result = compare(runs)
    for label, run in runs.items():
        r, sig = result[label], run_signals(run.path, progress=False)
        assert r["test_last"] == run.history[-1]["test_acc"]
        assert r["memorised"] == run.summary["train_fit"]["memorised_flipped"]
        assert r["signal"] == ("uncertainty" if label == "rul" else "label_loss")
        assert r["auroc"] == noise_detection_auroc(sig[r["signal"]], sig["flipped"])
    panels = signal_panels(runs)
    assert list(panels) == ["baseline: label_loss", "rul: uncertainty", "rul: label_loss"]
    claims = {"a claim": np.bool_(True)}
    path = setting.save_result(out, "04_rul", {"runs": result, "claims": claims})
    saved = json.loads(path.read_text())
    assert saved["setting"] == setting.name and saved["claims"] == {"a claim": True}
    assert path.parent == out / setting.name


def test_most_suspicious_shows_the_top_of_the_runs_own_signal(smoke_runs):
    _, _, runs = smoke_runs
    sig = run_signals(runs["rul"].path, progress=False)
    fig = most_suspicious(runs["rul"], k=6)
    top = np.argsort(-sig["uncertainty"], kind="stable")[:6]
    assert f"({int(sig['flipped'][top].sum())} flipped, red)" in fig.texts[0].get_text()
    assert sum(ax.title.get_color() == "tab:red" for ax in fig.axes) == int(sig["flipped"][top].sum())
