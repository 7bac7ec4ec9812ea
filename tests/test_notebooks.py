"""Every notebook runs top to bottom in smoke mode, and none is committed with outputs."""
import importlib.util
import os
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
DOCS_HOOKS = Path(__file__).resolve().parents[1] / "docs" / "hooks.py"


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ is empty"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing"
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "SMOKE" in params[0].source, f"{path.name}: needs one 'parameters' cell with SMOKE"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_in_smoke_mode(path, tmp_path, device):
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    i = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    smoke = nbformat.v4.new_code_cell(f"SMOKE = True\nOUT_DIR = {str(tmp_path / 'runs')!r}\nDEVICE = {device!r}")
    smoke.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(i + 1, smoke)
    env_before = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"     # figures as PNG outputs, no window
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        if env_before is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = env_before
    if os.environ.get("FERLAB_NOTEBOOK_CACHE") and device == "cpu":
        # scripts/check.sh: keep the executed notebook for the documentation build (docs/hooks.py), so that
        # the test command executes every notebook once
        spec = importlib.util.spec_from_file_location("ferlab_docs_hooks", DOCS_HOOKS)
        hooks = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(hooks)
        hooks.save_executed(nb, path)
