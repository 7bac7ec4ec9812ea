"""Does the installed torchvision belong to the installed torch? Read from their version files, without
importing either (``import ferlab`` stays cheap).

pip keeps the release numbers paired (each torchvision release requires its exact torch release), but
not the build: a CPU-only torch beside a CUDA torchvision of the same release (``2.13.0+cpu`` with
``0.28.0+cu128``), or a pair installed with ``--no-deps``, fails at ``import torchvision`` with
``operator torchvision::nms does not exist``. :func:`pair_problem` names such a pair in one line; ``import
ferlab`` raises it as an ``ImportError``.

The pairing rule: torch 2.N goes with torchvision 0.(N+15) (2.4 with 0.19, 2.14 with 0.29), and both
are the same build where both versions name one (``+cpu``; ``+cu121`` and ``+cu124`` are both CUDA 12,
which torchvision accepts).
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

#: the oldest torch / torchvision pair ferlab is tested with (pyproject.toml's lower bounds)
OLDEST = ("2.4", "0.19")

_VERSION = re.compile(r"""^__version__\s*(?::\s*str\s*)?=\s*['"]([^'"]+)['"]""", re.M)


def installed_version(package: str) -> str | None:
    """``package.__version__`` as its ``version.py`` states it (``2.14.1+cu130``), or None when the
    package is not installed or has no readable version file."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "version.py"
        if path.is_file():
            found = _VERSION.search(path.read_text(encoding="utf-8", errors="replace"))
            if found:
                return found.group(1)
    return None


def _release_and_label(version: str) -> tuple[tuple[int, ...], str | None]:
    public, _, label = version.partition("+")
    numbers = re.match(r"\d+(?:\.\d+)*", public)
    return tuple(int(n) for n in numbers.group(0).split(".")) if numbers else (), label or None


def _build(label: str | None) -> str | None:
    """The build a local label names, at the grain torchvision's loader checks: ``cu121`` -> ``CUDA 12``,
    ``cpu`` -> ``CPU``, ``rocm6.1`` -> ``ROCm 6``; None for a label of another kind."""
    found = re.fullmatch(r"(cu|rocm)(\d+)(?:\.\d+)*|cpu", label or "")
    if not found:
        return None
    if not found.group(1):
        return "CPU"
    kind, digits = found.groups()
    return f"CUDA {digits[:-1]}" if kind == "cu" else f"ROCm {digits}"


def pair_problem(torch_version: str | None, vision_version: str | None) -> str | None:
    """One line saying why ``torchvision vision_version`` does not belong to ``torch torch_version``,
    or None when they match (or either is missing, or a version scheme the rule does not know)."""
    if not torch_version or not vision_version:
        return None
    (t, t_label), (v, v_label) = _release_and_label(torch_version), _release_and_label(vision_version)
    if len(t) >= 2 and len(v) >= 2 and t[0] == 2 and v[0] == 0 and v[1] != t[1] + 15:
        return (f"torchvision {vision_version} does not belong to torch {torch_version} (torch 2.{t[1]} goes with "
                f"torchvision 0.{t[1] + 15}); install the matching one: pip install 'torchvision==0.{t[1] + 15}.*'")
    t_build, v_build = _build(t_label), _build(v_label)
    if t_build and v_build and t_build != v_build:
        return (f"torchvision {vision_version} is a {v_build} build but torch {torch_version} a {t_build} build, "
                f"and torchvision does not import beside it; install both from one index: pip install "
                f"--force-reinstall torch=={torch_version.partition('+')[0]} "
                f"torchvision=={vision_version.partition('+')[0]}")
    return None


def check() -> None:
    """Raise an ``ImportError`` naming the installed pair when torchvision does not belong to torch."""
    problem = pair_problem(installed_version("torch"), installed_version("torchvision"))
    if problem:
        raise ImportError(problem)
