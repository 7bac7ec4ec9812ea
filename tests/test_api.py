"""The Python entry point: ferlab.train / fit / load_run / Run, on tiny synthetic runs."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ferlab
from ferlab.api import Run, build_config
from ferlab.cli import build_parser, config_from_args
from ferlab.engine.config import TrainConfig
from ferlab.errors import CheckpointError, ConfigError

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
TINY = dict(dataset_args={"n": 64, "image_size": 32}, backbone="resnet10", backbone_args={"widths": [8, 16, 32, 64]},
            input_size=32, epochs=2, batch_size=16,
            lr=1e-3, noise="symmetric", noise_rate=0.3, progress=False, device="cpu", amp="off", limit_eval=32)


def test_train_returns_the_run_with_its_history_and_protocol(tmp_path):
    run = ferlab.train(method="baseline", dataset="synthetic", out_dir=str(tmp_path), name="r", **TINY)
    assert isinstance(run, Run) and run.finished
    assert run.path == tmp_path / "r" and run.checkpoint.is_file()
    lines = [json.loads(x) for x in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert run.history == lines and [h["epoch"] for h in run.history] == [1, 2]
    tests = [h["test_acc"] for h in run.history]
    assert run.protocol["last"] == tests[-1]
    assert run.protocol["mean_last_k"] == pytest.approx(sum(tests) / 2)       # k = 5 > 2 epochs: both
    assert run.protocol == json.loads((run.path / "summary.json").read_text())["protocol"]
    assert run.config.epochs == 2 and run.config.method == "baseline" and run.config.noise_rate == 0.3
    assert "baseline on synthetic, 2/2 epochs, test last" in repr(run)


def test_train_and_fit_are_one_code_path(tmp_path):
    """The same settings through ferlab.train, ferlab.fit(TrainConfig) and the engine's fit train the same
    network: identical histories (losses, accuracies) and weights."""
    import torch

    from ferlab.engine import fit as engine_fit
    a = ferlab.train(method="eac", dataset="synthetic", out_dir=str(tmp_path), name="a", **TINY)
    b = ferlab.fit(TrainConfig(method="eac", dataset="synthetic", out_dir=str(tmp_path), name="b", **TINY))
    summary = engine_fit(TrainConfig(method="eac", dataset="synthetic", out_dir=str(tmp_path), name="c", **TINY))
    c = ferlab.load_run(summary["run"])
    drop = ("time_s", "images_per_s")
    for run in (b, c):
        assert [{k: v for k, v in h.items() if k not in drop} for h in run.history] == \
            [{k: v for k, v in h.items() if k not in drop} for h in a.history]
        wa = torch.load(a.checkpoint, weights_only=True)["model"]
        wr = torch.load(run.checkpoint, weights_only=True)["model"]
        assert all(torch.equal(wa[k], wr[k]) for k in wa)
    assert a.config.method == "eac" and a.history[0]["loss"] != a.history[0]["ce"]     # EAC's attention term


def test_options_merge_like_the_command_line():
    """A recipe, --dataset, a flag and --set method_args.KEY give the config train() builds from the same
    arguments: the recipe's method_args kept, one entry added, its dataset settings dropped."""
    recipe = str(RECIPES / "eac" / "ferplus.yaml")
    argv = ["train", "--config", recipe, "--preset", "cpu", "--dataset", "synthetic", "--epochs", "3",
            "--set", "method_args.lam=7", "--image-size", "32"]
    cli = config_from_args(build_parser(argv).parse_args(argv))
    api = build_config(dataset="synthetic", config=recipe, preset="cpu", epochs=3, method_args={"lam": 7},
                       dataset_args={"image_size": 32})
    assert api == cli
    recipe_args = TrainConfig.from_yaml(recipe, "cpu").method_args
    assert api.method_args == {**recipe_args, "lam": 7} and api.dataset == "synthetic" and api.epochs == 3


def test_bad_arguments_are_config_errors_naming_the_key():
    with pytest.raises(ConfigError, match="unknown config key epoch.*epochs"):
        build_config("baseline", "synthetic", epoch=2)
    with pytest.raises(ConfigError, match="epochs"):
        build_config("baseline", "synthetic", epochs=0)
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        build_config("nope", "synthetic")
    with pytest.raises(ConfigError, match="preset='cpu' needs config"):
        build_config("baseline", "synthetic", preset="cpu")
    with pytest.raises(TypeError, match="fit takes a TrainConfig"):
        ferlab.fit({"method": "baseline"})


def test_load_run_evaluate_and_predict(tmp_path):
    run = ferlab.train(method="baseline", dataset="synthetic", out_dir=str(tmp_path), name="r", val_fraction=0.25,
                       **TINY)
    again = ferlab.load_run(run.path)
    assert again == run
    # the last checkpoint evaluated again: the trainer's own final test evaluation
    rep = run.evaluate("test", device="cpu")
    assert rep["acc"] == run.summary["test_last"]["acc"]
    assert run.best_checkpoint is not None
    assert run.evaluate("val", checkpoint="best")["acc"] == run.summary["val"]["best"]
    predictor = run.predictor()
    assert isinstance(predictor, ferlab.Predictor) and list(predictor.classes) == run.summary["classes"]
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    out = predictor(list(images))
    assert out.probs.shape == (3, len(run.summary["classes"]))
    np.testing.assert_allclose(out.probs.sum(1), 1, atol=1e-5)


def test_a_run_that_has_not_finished_has_its_protocol_from_the_epochs_so_far(tmp_path):
    run = ferlab.train(method="baseline", dataset="synthetic", out_dir=str(tmp_path), name="r", **TINY)
    (run.path / "summary.json").unlink()
    partial = ferlab.load_run(run.path)
    assert not partial.finished and partial.summary == {}
    assert partial.protocol == run.protocol and "not finished" in repr(partial)


def test_load_run_of_a_folder_without_a_run(tmp_path):
    with pytest.raises(CheckpointError, match="not a ferlab run folder .no config.yaml in it."):
        ferlab.load_run(tmp_path)
    with pytest.raises(CheckpointError, match="no such folder"):
        ferlab.load_run(tmp_path / "missing")


def test_import_ferlab_is_light_and_names_resolve_on_use():
    probe = ("import sys, ferlab\n"
             "light = 'torch' not in sys.modules\n"
             "from ferlab.engine import fit, TrainConfig\n"
             "from ferlab.engine.trainer import fit as trainer_fit\n"
             "print(light, fit is trainer_fit, ferlab.TrainConfig is TrainConfig, callable(ferlab.train),\n"
             "      ferlab.Predictor.__module__, sorted(set(ferlab.__all__) - set(dir(ferlab))))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True", "True", "True", "ferlab.predictor", "[]"]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = ferlab.nope
