"""The CLI a user meets first: help for every option, examples, --version, one-line choice errors,
honest summaries, and the notebook set-up."""
import argparse
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import tomllib
import torch

from ferlab.cli import SUBCOMMANDS, _add_debug_flag, build_parser, main
from ferlab.cli.train import protocol_line

REPO = Path(__file__).resolve().parents[1]


def subcommands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


NAMES = sorted(subcommands())


@pytest.mark.parametrize("name", NAMES)
def test_every_option_has_help_and_every_subcommand_examples(name):
    parser = subcommands()[name]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        assert action.help and action.help.strip(), f"ferlab {name} {action.option_strings or action.dest}"
    assert parser.epilog and "example" in parser.epilog, name


def test_train_help_shows_choices_and_defaults():
    text = subcommands()["train"].format_help()
    for piece in ("{baseline,dmue,eac,lanet,ldlva,rul}", "{none,symmetric,asymmetric,from_file}",
                  "--val-fraction F", "--tensorboard", "(default: resnet18)", "(default: 112)", "examples:"):
        assert piece in " ".join(text.split()) or piece in text, piece
    train = subcommands()["train"]
    assert sum(1 for a in train._actions if a.option_strings) >= 40


def test_figures_only_lists_every_grid_figure():
    from ferlab.figures import registry
    only = next(a for a in subcommands()["figures"]._actions if "--only" in a.option_strings)
    assert list(only.choices) == [f.name for f in registry()]


def test_version():
    out = subprocess.run([sys.executable, "-m", "ferlab.cli", "--version"], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == f"ferlab {version('ferlab')}"


def test_help_and_version_start_without_torch(monkeypatch):
    """`ferlab --help` lists every subcommand with its help, exactly as the full parser does, and neither
    it nor --version imports torch (the registries behind the choice lists do)."""
    probe = ("import contextlib, io, sys\n"
             "from ferlab.cli import main\n"
             "out = io.StringIO()\n"
             "for argv in ([sys.argv[1]], ['--version']):\n"
             "    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
             "        main(argv)\n"
             "print(out.getvalue() + 'torch imported: ' + str('torch' in sys.modules))")
    env = {**os.environ, "COLUMNS": "100"}
    monkeypatch.setenv("COLUMNS", "100")
    full = build_parser()
    _add_debug_flag(full)
    for flag in ("--help", "-h"):
        out = subprocess.run([sys.executable, "-c", probe, flag], capture_output=True, text=True, check=True,
                             env=env).stdout
        assert out == full.format_help() + f"ferlab {version('ferlab')}\ntorch imported: False\n"
    assert all(f"    {name}" in out for name in NAMES)


def test_commands_constants_are_what_each_module_adds():
    """The stubs ``ferlab --help`` lists come from each module's COMMANDS: the same names, order and help
    as its full parsers; with argv, only the command run is built in full."""
    for module in SUBCOMMANDS:
        sub = argparse.ArgumentParser().add_subparsers()
        module.add_parser(sub)
        assert [(a.dest, a.help) for a in sub._choices_actions] == list(module.COMMANDS.items()), module.__name__
    full = build_parser()._subparsers._group_actions[0]
    for argv in (["--help"], ["--debug", "eval", "RUN"], ["figures", "curves", "RUN"]):
        lean = build_parser(argv)._subparsers._group_actions[0]
        assert [(a.dest, a.help) for a in lean._choices_actions] == [(a.dest, a.help) for a in full._choices_actions]
        built = {name for name, p in lean.choices.items() if len(p._actions) > 1}     # more than -h
        command = next((a for a in argv if not a.startswith("-")), None)
        owner = next((m for m in SUBCOMMANDS if command in m.COMMANDS), None)
        assert built == set(owner.COMMANDS if owner else ()), argv


@pytest.mark.parametrize("argv, needle", [
    (["train", "--method", "nope"], "argument --method: invalid choice: 'nope'"),
    (["train", "--dataset", "nope"], "argument --dataset: invalid choice: 'nope'"),
    (["train", "--noise", "gaussian"], "argument --noise: invalid choice: 'gaussian'"),
    (["noise", "--dataset", "synthetic", "--kind", "nope"], "argument --kind: invalid choice"),
    (["predict", "RUN", "x.png", "--device", "tpu"], "'tpu' is not a device"),
])
def test_choice_errors_are_one_line_and_exit_2(argv, needle, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err


def test_cuda_without_a_gpu_is_one_line_and_exit_2(capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available")
    with pytest.raises(SystemExit) as e:
        main(["train", "--device", "cuda"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "CUDA is not available" in err


def test_a_recipe_with_presets_needs_preset(capsys):
    assert main(["train", "--config", str(REPO / "recipes" / "eac" / "ferplus.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--preset" in err and "cpu" in err


def test_protocol_line_is_honest_about_short_runs_and_missing_validation():
    two = {"protocol": {"epochs": 2, "last": 0.5, "mean_last_k": 0.45, "k": 5}}
    assert protocol_line(two) == "test accuracy: last 0.5000 | mean of all 2 epochs 0.4500 | no validation split"
    six = {"protocol": {"epochs": 6, "last": 0.5, "mean_last_k": 0.45, "k": 5, "best_val": 0.6, "best_val_epoch": 3}}
    assert protocol_line(six) == ("test accuracy: last 0.5000 | mean of last 5 epochs 0.4500 | "
                                  "at best val (epoch 3) 0.6000")


def test_notebooks_extra_installs_jupyterlab_and_widgets_and_the_readme_says_so():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {d.split(">")[0].split("=")[0] for d in extras["notebooks"]}
    assert {"jupyterlab", "ipywidgets", "ipykernel"} <= names
    assert any("notebooks" in d for d in extras["all"]) and any(d.startswith("tensorboard") for d in extras["dev"])
    readme = (REPO / "README.md").read_text()
    paragraph = readme.split("## Notebooks", 1)[1].split("\n\n", 2)[1]
    assert 'pip install -e ".[notebooks]"' in paragraph and "jupyter lab notebooks/" in paragraph


def test_preset_help_lists_every_recipe_preset():
    import yaml
    preset = next(a for a in subcommands()["train"]._actions if "--preset" in a.option_strings)
    for path in (REPO / "recipes").glob("*/*.yaml"):
        for name in (yaml.safe_load(path.read_text()).get("presets") or {}):
            assert name in preset.help, (path, name)


def test_grid_figures_without_the_grid_folder_point_to_run_figures(tmp_path, capsys):
    assert main(["figures", "--runs", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ferlab figures {curves,attention,umap,signals,confusion} RUN..." in err
