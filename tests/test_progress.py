"""Progress in a terminal and in a Jupyter kernel with and without ipywidgets: a training run in a real
kernel writes a widget bar, or only its one line per epoch -- never the redraws of a text bar."""
import subprocess
import sys

import nbformat
import pytest

from ferlab.progress import bar_kind, progress_bar

WIDGET = "application/vnd.jupyter.widget-view+json"
EPOCHS = 3

TRAIN = f"""
from ferlab.engine.config import TrainConfig
from ferlab.engine.trainer import fit
summary = fit(TrainConfig(name="bar", out_dir=OUT, dataset="synthetic", dataset_args={{"n": 96, "image_size": 32}},
                          eval_dataset_args={{"n": 32}}, backbone="resnet10", input_size=32, epochs={EPOCHS}, lr=1e-4,
                          batch_size=8, log_every=1, device="cpu", val_split=None))
"""


def test_a_plain_process_gets_the_text_bar():
    assert bar_kind() == "text"
    code = ("from ferlab.progress import bar_kind, progress_bar\n"
            "print(bar_kind(), sum(progress_bar(range(5), desc='x', mininterval=0)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert out.stdout.decode().split() == ["text", "10"]
    assert b"\r" in out.stderr and b"5/5" in out.stderr        # tqdm's bar, redrawn in place on stderr
    assert sum(progress_bar(range(4), disable=True)) == 6


def run_in_kernel(tmp_path, widgets: bool):
    from nbclient import NotebookClient
    hide = "" if widgets else "import sys\nsys.modules['ipywidgets'] = None\n"      # as if not installed
    setup = f"OUT = {str(tmp_path / 'runs')!r}\n{hide}"
    cells = [setup, "from ferlab.progress import bar_kind\nprint(bar_kind())", TRAIN]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[2].outputs
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    widgets_shown = sum(WIDGET in o.get("data", {}) for o in outputs)
    return nb.cells[1].outputs[0]["text"].strip(), text, widgets_shown


@pytest.mark.slow
@pytest.mark.parametrize("widgets", [True, False], ids=["ipywidgets", "no-ipywidgets"])
def test_a_kernel_shows_a_widget_or_one_line_per_epoch(tmp_path, widgets):
    pytest.importorskip("ipywidgets")
    kind, text, widgets_shown = run_in_kernel(tmp_path, widgets)
    assert kind == ("widget" if widgets else "none")
    assert "\r" not in text, "a text bar redraws itself with carriage returns"
    assert "IProgress" not in text
    lines = text.splitlines()
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert len(epoch_lines) == EPOCHS, text
    # 12 steps per epoch, a redraw per step: a text bar would write far more than the run's own lines
    assert len(lines) <= EPOCHS + 15, text      # the run's settings (a dozen lines) and its epochs
    if widgets:
        assert widgets_shown >= EPOCHS            # one bar per epoch (plus the image preload)
    else:
        assert widgets_shown == 0
