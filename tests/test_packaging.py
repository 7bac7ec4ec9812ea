import subprocess
import sys

import torch


def test_torchvision_matches_torch():
    import torchvision
    from torchvision.ops import nms  # fails with "operator torchvision::nms does not exist" on a mismatched pair

    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]])
    keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
    assert keep.tolist() == [0, 2]
    assert torchvision.__version__


def test_cli_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "ferlab.cli", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for cmd in ("train", "eval", "noise", "datasets", "demo"):
        assert cmd in out


def test_ferlab_is_a_regular_package_with_a_version():
    from importlib.metadata import version

    import ferlab
    assert ferlab.__file__ is not None and ferlab.__version__ == version("ferlab")
