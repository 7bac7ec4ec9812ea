"""benchmarks/notebook_times.py runs a notebook with its defaults in a fresh kernel and records its wall time,
the setting it chose and its claims; a failing notebook is recorded and fails the script."""
import importlib.util
import json
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]


def load():
    spec = importlib.util.spec_from_file_location("notebook_times", ROOT / "benchmarks" / "notebook_times.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def notebook(path: Path, body: str) -> Path:
    params = nbformat.v4.new_code_cell("SMOKE = False\nOUT_DIR = 'not/this'\nWAIT = 0.3")
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[params, nbformat.v4.new_code_cell(body)])
    nbformat.write(nb, path)
    return path


WRITE_CLAIMS = """
import json, time
from pathlib import Path
time.sleep(WAIT)
folder = Path(OUT_DIR) / "tiny-setting"
folder.mkdir(parents=True)
(folder / "nb_claims.json").write_text(json.dumps({"setting": "tiny-setting", "runs": {"m": {"method": "m", "x": 1}},
                                                   "claims": {"it holds": True, "it does not": False}}))
"""


def test_times_a_notebook_and_records_its_claims(tmp_path):
    times = load()
    path = notebook(tmp_path / "nb_claims.ipynb", WRITE_CLAIMS)
    assert times.main([str(path), "--out", str(tmp_path / "out")]) == 0
    result = json.loads((tmp_path / "out" / "notebook-times-cpu.json").read_text())
    row = result["notebooks"]["nb_claims"]
    assert row["error"] is None and row["mode"] == "cold" and 0.3 < row["wall_s"] < 120
    assert row["setting"] == "tiny-setting" and row["claims"] == {"it holds": True, "it does not": False}
    assert row["runs"] == {"m": {"x": 1}}
    assert result["machine"]["cpu_count"] >= 1 and "load_average" in result and "torch" in result["versions"]


def test_a_failing_notebook_is_recorded_and_fails_the_script(tmp_path):
    times = load()
    path = notebook(tmp_path / "broken.ipynb", "raise ValueError('no data here')")
    assert times.main([str(path), "--out", str(tmp_path)]) == 1
    row = json.loads((tmp_path / "notebook-times-cpu.json").read_text())["notebooks"]["broken"]
    assert "no data here" in row["error"] and "claims" not in row
