"""``ferlab backbones``: registered names, how to name timm / torchvision models, the description of one
backbone with the methods it suits; ``--backbone timm:...`` names checked like any config value."""
import pytest

from ferlab.cli import main
from ferlab.models import list_backbones


def test_lists_registered_backbones_and_how_to_name_library_models(capsys):
    assert main(["backbones"]) == 0
    out = capsys.readouterr().out
    for name in list_backbones():
        assert any(line.startswith(name + " ") for line in out.splitlines()), name
    assert "dlib_resnet29  weights: dlib" in out
    assert "tv:<model>" in out and "IMAGENET1K_V2" in out and "download" in out
    import importlib.util
    timm = importlib.util.find_spec("timm") is not None
    assert "timm:<model>" in out and ("--weights timm" if timm else "pip install 'ferlab[timm]'") in out


def test_describe_says_which_methods_run_on_a_backbone(capsys):
    pytest.importorskip("timm")
    assert main(["backbones", "--describe", "timm:vit_tiny_patch16_224"]) == 0
    lines = capsys.readouterr().out.splitlines()
    verdict = {line.split()[0]: line.split()[1] for line in lines if line.startswith("  ") and "needs" in line}
    assert verdict == {"baseline": "yes", "rul": "yes", "ldlva": "yes", "eac": "yes", "dmue": "no", "lanet": "no"}
    assert main(["backbones", "--describe", "tv:mobilenet_v3_small"]) == 0
    out = capsys.readouterr().out
    assert "eac      no" in out and "after a hidden layer" in out and "stage features_12: 576 channels" in out


def test_timm_patterns_and_torchvision_names(capsys):
    timm = pytest.importorskip("timm")
    assert main(["backbones", "--timm", "convnext_at*"]) == 0
    assert capsys.readouterr().out.split() == [f"timm:{n}" for n in timm.list_models("convnext_at*")]
    assert main(["backbones", "--tv"]) == 0
    assert "tv:resnet18" in capsys.readouterr().out.split()


@pytest.mark.parametrize("argv,words", [
    (["backbones", "--describe", "timm:convnxt_tiny"], ["--describe", "'convnxt_tiny'", "convnext_tiny"]),
    (["backbones", "--describe", "vgg"], ["--describe", "unknown backbone 'vgg'", "timm:<model>"]),
    (["train", "--backbone", "tv:resnet19"], ["--backbone", "'resnet19'", "resnet18"]),
    (["train", "--backbone", "timm:"], ["--backbone", "needs a model name"]),
])
def test_bad_names_are_one_line_errors(capsys, argv, words):
    pytest.importorskip("timm")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(w in err for w in words), err
