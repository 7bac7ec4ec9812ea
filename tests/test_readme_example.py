"""The README's Python example runs as written (in a fresh interpreter, from an empty folder)."""
import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ferlab import classes as C

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    """The one ```python block between the README's python-example markers."""
    text = README.read_text(encoding="utf-8")
    part = text.split("<!-- python-example:start -->", 1)[1].split("<!-- python-example:end -->", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", part, re.S)
    assert len(blocks) == 1, "the python-example markers hold one ```python block"
    return blocks[0]


@pytest.mark.slow
def test_the_readme_python_example_trains_evaluates_and_predicts(tmp_path):
    code = readme_example()
    assert len(code.strip().splitlines()) <= 15
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    protocol, mean_class_acc, labels = proc.stdout.strip().splitlines()[-3:]     # the example's three prints
    last, mean_last_k = protocol.split()
    assert 0 <= float(last) <= 1 and 0 <= float(mean_last_k) <= 1 and 0 <= float(mean_class_acc) <= 1
    labels = ast.literal_eval(labels)
    assert len(labels) == 3 and set(labels) <= set(C.BASIC7)
    run = tmp_path / "runs" / "eac-synthetic"
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "summary.json").is_file()
