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


@pytest.mark.slow
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


METHOD_NOTEBOOKS = [p for p in NOTEBOOKS if p.stem[:2] in ("03", "04", "05", "06", "07")]


@pytest.fixture(scope="module")
def default_runs(tmp_path_factory):
    """One runs folder for the method notebooks at their defaults: run in order, they share the baseline."""
    return tmp_path_factory.mktemp("notebook-defaults")


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("FERLAB_NOTEBOOK_DEFAULTS"),
                    reason="~5 min per notebook on 2 cores: FERLAB_NOTEBOOK_DEFAULTS=1 runs 03-07 at their defaults")
@pytest.mark.parametrize("path", METHOD_NOTEBOOKS, ids=lambda p: p.stem)
def test_method_notebook_at_its_defaults_holds_what_it_claims(path, default_runs):
    """03-07 with their default parameters (benchmarks/notebook_times.py runs them the same way): each writes
    the claims its text makes -- e.g. the method memorises fewer flipped labels than the baseline, is not
    below it on clean test labels, its noise signal separates flipped from intact labels -- with whether each
    held in its run; all must hold."""
    spec = importlib.util.spec_from_file_location("notebook_times", DOCS_HOOKS.parents[1] / "benchmarks" /
                                                  "notebook_times.py")
    times = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(times)
    _, wall, error = times.execute(path, default_runs)
    assert error is None, f"{path.name}: {error}"
    result = times.notebook_results(default_runs / "runs", path.stem)
    assert result is not None, f"{path.name} wrote no results into its runs folder"
    if not result["claims"]:
        pytest.skip(f"{path.name}: its text makes claims about the FERPlus setting, this run used {result['setting']}")
    failed = [claim for claim, held in result["claims"].items() if not held]
    assert not failed, f"{path.name} ({result['setting']}, {wall:.0f} s): not true in this run: {failed}"
