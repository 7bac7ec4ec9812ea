"""One training process per run directory: a second `ferlab train` is refused naming the holder,
the first one's files stay its own, and a lock (or a temp file) left by a killed process is
detected and cleaned up on the next start."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from ferlab.cli import main
from ferlab.engine.run_lock import LOCK_NAME, RunLock, RunLockedError, lock_holder

# a `ferlab train` process whose imports are done before it is told to go (a file appears), so
# that the second process reaches its check while the first one is surely inside fit
WAITING_CLI = """
import pathlib, sys, time
import ferlab.engine.trainer  # noqa: F401  (imports before the start signal)
from ferlab.cli import main
go = pathlib.Path(sys.argv[1])
while not go.exists():
    time.sleep(0.02)
sys.exit(main(sys.argv[2:]))
"""


def _train_args(out, name, epochs, lr):
    return ["train", "--dataset", "synthetic", "--set", "dataset_args.n=96", "--set", "dataset_args.image_size=32",
            "--backbone", "resnet10", "--input-size", "32", "--epochs", str(epochs), "--batch-size", "16",
            "--lr", str(lr), "--checkpoint-every", "1", "--limit-eval", "16", "--out-dir", str(out), "--name", name,
            "--set", "backbone_args.widths=[8, 16, 32, 64]", "--no-progress"]


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.mark.slow
def test_second_train_on_a_run_directory_is_refused_and_the_first_run_is_intact(tmp_path):
    script = tmp_path / "cli.py"
    script.write_text(WAITING_CLI)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    go_a, go_b = tmp_path / "go_a", tmp_path / "go_b"
    first = subprocess.Popen([sys.executable, script, go_a, *_train_args(tmp_path, "run", 4, 0.001)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen([sys.executable, script, go_b, *_train_args(tmp_path, "run", 2, 0.05)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    go_a.touch()
    run = tmp_path / "run"
    deadline = time.time() + 300
    while lock_holder(run) is None and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert lock_holder(run)["pid"] == first.pid
    go_b.touch()
    _, err_b = second.communicate(timeout=300)
    assert first.poll() is None, "the first run ended before the second one was checked: make it longer"
    assert second.returncode == 2
    assert "Traceback" not in err_b
    assert f"ferlab train: error: {run} is in use by another training process: pid {first.pid} on " in err_b
    assert f"lock file {run / LOCK_NAME}" in err_b
    _, err_a = first.communicate(timeout=600)
    assert first.returncode == 0, err_a
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert (cfg["epochs"], cfg["lr"]) == (4, 0.001)                         # the first run's config, not the second's
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert json.loads((run / "summary.json").read_text())["protocol"]["last"] == rows[-1]["test_acc"]
    assert not (run / LOCK_NAME).exists()                                   # released at the end


@pytest.mark.slow
def test_lock_of_a_killed_process_is_taken_over_and_its_temp_files_removed(tmp_path, capsys):
    run = tmp_path / "run"
    hold = "import sys, time\nfrom ferlab.engine.run_lock import RunLock\nRunLock(sys.argv[1]).acquire()\n" \
           "print('locked', flush=True)\ntime.sleep(600)"
    holder = subprocess.Popen([sys.executable, "-c", hold, run], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    assert lock_holder(run)["pid"] == holder.pid
    with pytest.raises(RunLockedError, match=f"pid {holder.pid} on "):
        RunLock(run).acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (run / LOCK_NAME).exists() and lock_holder(run) is None       # left behind, but nobody holds it
    ckpts = run / "checkpoints"
    ckpts.mkdir()
    dead = ckpts / f".last.pt.tmp{_dead_pid()}"           # a save killed mid-way
    live = ckpts / f".last.pt.tmp{os.getppid()}"           # a live process's: not touched
    dead.write_bytes(b"x" * 1000)
    live.write_bytes(b"y")
    assert main(_train_args(tmp_path, "run", 1, 0.001)) == 0
    out = capsys.readouterr().out
    assert f"{run / LOCK_NAME} was left by pid {holder.pid} on " in out and "taking the run directory over" in out
    assert f"removed {dead}" in out
    assert not dead.exists() and live.exists()
    assert not (run / LOCK_NAME).exists()


def test_lock_in_one_process_refuses_a_second_holder_and_releases():
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        with RunLock(d) as lock:
            assert lock.took_over is None
            rec = json.loads((lock.path).read_text())
            assert rec["pid"] == os.getpid() and "started" in rec and "host" in rec
            with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
                RunLock(d).acquire()
        assert lock_holder(d) is None and not lock.path.exists()
        RunLock(d).acquire().release()


@pytest.mark.ddp
@pytest.mark.slow
def test_torchrun_on_a_busy_run_directory_stops_every_rank(tmp_path):
    """Rank 0 checks the lock and every rank raises its error: none waits at a collective."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           "-m", "ferlab.cli", *_train_args(tmp_path, "ddp", 1, 0.001), "--device", "cpu"]
    with RunLock(run):
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                             timeout=300, check=False)
    assert out.returncode != 0
    refused = [line for line in out.stderr.splitlines()
               if line.startswith(f"ferlab train: error: {run} is in use by another training process: "
                                  f"pid {os.getpid()}")]
    assert len(refused) == 1, out.stderr[-3000:]                 # both ranks stop; the job prints the line once
    assert not (run / "config.yaml").exists()


@pytest.mark.slow
def test_a_new_run_over_a_finished_one_says_it_starts_over(tmp_path, capsys):
    assert main(_train_args(tmp_path, "run", 1, 0.001)) == 0
    assert "held an earlier run" not in capsys.readouterr().out
    assert main(_train_args(tmp_path, "run", 1, 0.001)) == 0
    out = capsys.readouterr().out
    assert f"note: {tmp_path / 'run'} held an earlier run; starting it over (--resume continues a run" in out
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1   # the old log is gone
