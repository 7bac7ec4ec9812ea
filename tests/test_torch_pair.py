"""The torch / torchvision pairing check that ``import ferlab`` runs."""
import os
import subprocess
import sys

import pytest
import torch
import torchvision

from ferlab.torch_pair import OLDEST, installed_version, pair_problem


def test_the_installed_versions_are_read_without_importing():
    assert installed_version("torch") == torch.__version__
    assert installed_version("torchvision") == torchvision.__version__
    assert installed_version("no_such_package_here") is None
    assert pair_problem(torch.__version__, torchvision.__version__) is None


@pytest.mark.parametrize("torch_version, vision_version", [
    ("2.4.1+cu121", "0.19.1+cu121"), ("2.4.1", "0.19.1"), ("2.14.1+cu130", "0.29.1+cu130"),
    ("2.4.1+cu124", "0.19.1+cu121"),            # both CUDA 12: torchvision accepts another minor
    ("2.4.1+cpu", "0.19.1"), ("2.6.0+rocm6.1", "0.21.0+rocm6.1"),
    ("2.15.0.dev20260101+cu130", "0.30.0.dev20260101+cu130"), ("3.0.0", "1.0.0"), (None, "0.19.1"),
])
def test_pairs_that_belong_together(torch_version, vision_version):
    assert pair_problem(torch_version, vision_version) is None


@pytest.mark.parametrize("torch_version, vision_version, words", [
    ("2.13.0+cpu", "0.28.0+cu128", "is a CUDA 12 build but torch 2.13.0+cpu a CPU build"),
    ("2.4.1+cu118", "0.19.1+cu121", "CUDA 12 build but torch 2.4.1+cu118 a CUDA 11 build"),
    ("2.4.1", "0.20.0", "(torch 2.4 goes with torchvision 0.19); install the matching one: "
                        "pip install 'torchvision==0.19.*'"),
])
def test_pairs_that_do_not(torch_version, vision_version, words):
    problem = pair_problem(torch_version, vision_version)
    assert words in problem and "\n" not in problem


def test_the_oldest_pair_is_a_pair_and_pyproject_declares_it():
    from pathlib import Path
    tomllib = pytest.importorskip("tomllib")       # Python 3.11+
    assert pair_problem(OLDEST[0] + ".1", OLDEST[1] + ".1") is None
    deps = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    assert f"torch>={OLDEST[0]}" in deps["dependencies"] and f"torchvision>={OLDEST[1]}" in deps["dependencies"]


def test_import_ferlab_names_a_torchvision_of_another_build(tmp_path):
    """A torchvision package of the right release but another build (CPU beside a CUDA torch, CUDA 12
    beside any other) shadows the real one: importing ferlab fails with the one-line reason."""
    release, _, build = torch.__version__.partition("+")
    if not build:
        pytest.skip(f"torch {torch.__version__} names no build")
    other = "cpu" if build.startswith("cu") else "cu128"
    fake = tmp_path / "torchvision"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise RuntimeError('operator torchvision::nms does not exist')\n")
    (fake / "version.py").write_text(f"__version__ = '0.{int(release.split('.')[1]) + 15}.0+{other}'\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", "import ferlab"], capture_output=True, text=True, env=env)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: torchvision 0.") and f"+{other} is a " in last and "build but torch" in last
