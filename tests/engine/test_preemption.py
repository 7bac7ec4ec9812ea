"""Stopping on SIGTERM / SIGUSR1 / SIGINT with a checkpoint at the current step, the exit statuses,
a second signal, bit-exact resume, time-based checkpoints; the same under torchrun (gloo, CPU).

The runs stop at a known step: the ``_test_signal`` method (``signal_run.py``) sends the signal to
its own process, or waits at a step while the test signals a torchrun rank or the agent."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import signal_run  # noqa: F401 (registers _test_signal)
import torch

from ferlab.cli import main
from ferlab.engine.config import TrainConfig
from ferlab.engine.config_check import checkpoint_interval
from ferlab.engine.preemption import REPEAT_WINDOW, StopSignals, TrainingStopped
from ferlab.engine.trainer import Trainer
from ferlab.errors import ConfigError

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "signal_run.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}


def cfg(tmp_path, name, **kw):
    """96 synthetic training images in batches of 16: 6 steps an epoch."""
    base = {"name": name, "out_dir": str(tmp_path), "method": "_test_signal", "backbone": "resnet10",
            "backbone_args": {"widths": [8, 16, 32, 64]},
            "dataset_args": {"n": 96, "image_size": 32}, "input_size": 32, "epochs": 2, "batch_size": 16, "lr": 1e-3,
            "noise": "symmetric", "noise_rate": 0.3, "progress": False, "augment": {"flip": 0.5, "erasing": 0.5},
            "val_split": None, "limit_eval": 16}
    base.update(kw)
    return TrainConfig(**base)


def assert_same_state(a: dict, b: dict) -> None:
    """Every tensor of two checkpoints (model, optimizer state) equal, and the same history."""
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    for i in sa:
        for k in sa[i]:
            assert torch.equal(torch.as_tensor(sa[i][k]), torch.as_tensor(sb[i][k])), (i, k)
    assert (a["epoch"], a["step_in_epoch"], a["global_step"]) == (b["epoch"], b["step_in_epoch"], b["global_step"])
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]


def load(path) -> dict:
    return torch.load(path, weights_only=True)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """The uninterrupted two-epoch run's last checkpoint."""
    tmp = tmp_path_factory.mktemp("full")
    Trainer(cfg(tmp, "full")).fit()
    return load(tmp / "full" / "checkpoints" / "last.pt")


def test_sigterm_mid_epoch_checkpoints_that_step_and_resume_is_bit_exact(tmp_path, monkeypatch, full):
    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setenv("FERLAB_TEST_AT", "9:TERM")     # epoch 2, step 3 of 6
    with pytest.raises(TrainingStopped) as info:
        Trainer(cfg(tmp_path, "cut")).fit()
    e = info.value
    ck = tmp_path / "cut" / "checkpoints" / "last.pt"
    assert e.exit_code == 143 and e.signum == signal.SIGTERM and e.checkpoint == ck
    assert str(e) == f"stopped by SIGTERM at epoch 2 step 3 of 6; checkpoint {ck}; --resume continues"
    assert signal.getsignal(signal.SIGTERM) == before          # the default handling is back
    state = load(ck)
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (1, 3, 9)
    assert not list(ck.parent.glob(".*tmp*"))
    monkeypatch.delenv("FERLAB_TEST_AT")
    Trainer(cfg(tmp_path, "cut"), resume=True).fit()
    assert_same_state(full, load(ck))


@pytest.mark.parametrize("action,status,name", [("USR1", 138, "SIGUSR1"), ("INT", 130, "SIGINT"),
                                                ("TERMx2", 143, "SIGTERM")])
def test_exit_status_per_signal_and_a_repeat_at_once_is_one_request(tmp_path, monkeypatch, action, status, name):
    """SIGUSR1 (SLURM's --signal) 138, a first Ctrl-C 130; the same signal twice at once (torchrun's
    agent forwarding what its workers also got) still stops after the checkpoint."""
    monkeypatch.setenv("FERLAB_TEST_AT", f"2:{action}")
    with pytest.raises(TrainingStopped, match=f"stopped by {name} at epoch 1 step 2 of 6") as info:
        Trainer(cfg(tmp_path, "r", epochs=1)).fit()
    assert info.value.exit_code == status == 128 + getattr(signal, name)
    state = load(tmp_path / "r" / "checkpoints" / "last.pt")
    assert (state["epoch"], state["step_in_epoch"]) == (0, 2)


def test_a_signal_during_the_evaluation_stops_after_the_epoch_checkpoint(tmp_path, monkeypatch, full):
    evaluate = Trainer.evaluate

    def signalling(self, split):
        if not self.stops.requested:
            os.kill(os.getpid(), signal.SIGTERM)
        return evaluate(self, split)
    monkeypatch.setattr(Trainer, "evaluate", signalling)
    with pytest.raises(TrainingStopped, match="stopped by SIGTERM at the end of epoch 1;"):
        Trainer(cfg(tmp_path, "cut")).fit()
    ck = tmp_path / "cut" / "checkpoints" / "last.pt"
    assert (load(ck)["epoch"], load(ck)["step_in_epoch"]) == (1, 0)
    monkeypatch.undo()
    Trainer(cfg(tmp_path, "cut"), resume=True).fit()
    assert_same_state(full, load(ck))


@pytest.mark.slow
def test_a_signal_at_the_last_step_of_an_epoch_resumes_bit_exact(tmp_path, monkeypatch, full):
    monkeypatch.setenv("FERLAB_TEST_AT", "6:TERM")
    with pytest.raises(TrainingStopped, match="at epoch 1 step 6 of 6;"):
        Trainer(cfg(tmp_path, "cut")).fit()
    monkeypatch.delenv("FERLAB_TEST_AT")
    Trainer(cfg(tmp_path, "cut"), resume=True).fit()
    assert_same_state(full, load(tmp_path / "cut" / "checkpoints" / "last.pt"))


def test_handlers_only_over_the_default_and_restored():
    def own(signum, frame):
        pass
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)}
    try:
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        signal.signal(signal.SIGINT, own)
        with StopSignals() as stops:
            assert signal.getsignal(signal.SIGUSR1) == signal.SIG_IGN     # ignored stays ignored
            assert signal.getsignal(signal.SIGINT) is own                # the program's own handler stays
            assert signal.getsignal(signal.SIGTERM) == stops._handle
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)                         # a repeat within the window
            assert stops.signum == signal.SIGTERM
        assert signal.getsignal(signal.SIGTERM) == old[signal.SIGTERM]
        with pytest.raises(RuntimeError), StopSignals():
            raise RuntimeError
        assert signal.getsignal(signal.SIGTERM) == old[signal.SIGTERM]
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def test_second_sigint_interrupts_at_once():
    old = signal.getsignal(signal.SIGINT)
    assert old is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt), StopSignals() as stops:
        os.kill(os.getpid(), signal.SIGINT)
        while stops.received_at is None:                # the handler runs between bytecodes
            time.sleep(0.001)
        stops.received_at -= REPEAT_WINDOW + 0.1        # as if the first came a while ago
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100):                            # the handler runs between bytecodes
            time.sleep(0.001)
    assert signal.getsignal(signal.SIGINT) is old


def _start(args, env, **kw):
    return subprocess.Popen([sys.executable, str(SCRIPT), *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


TRAIN = ["train", "--dataset", "synthetic", "--set", "dataset_args.n=96", "--image-size", "32", "--backbone",
         "resnet10", "--input-size", "32", "--epochs", "2", "--batch-size", "16", "--lr", "0.001", "--device", "cpu",
         "--noise", "symmetric", "--noise-rate", "0.3", "--set", "val_split=null", "--limit-eval", "16",
         "--set", "method=_test_signal", "--set", "backbone_args.widths=[8, 16, 32, 64]", "--no-progress"]


@pytest.mark.slow
def test_cli_prints_one_line_and_exits_143(tmp_path):
    env = {**ENV, "FERLAB_TEST_AT": "3:TERM", "FERLAB_TEST_DIR": str(tmp_path)}
    proc = _start([*TRAIN, "--out-dir", tmp_path, "--name", "r"], env)
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err[-3000:]
    ck = tmp_path / "r" / "checkpoints" / "last.pt"
    assert err.strip().splitlines()[-1] == (f"ferlab train: stopped by SIGTERM at epoch 1 step 3 of 6; checkpoint "
                                            f"{ck}; --resume continues")
    assert "Traceback" not in err
    assert load(ck)["step_in_epoch"] == 3


@pytest.mark.slow
def test_a_second_signal_stops_at_once(tmp_path):
    """While the stop's checkpoint is being written (made slow here), another SIGTERM ends the
    process by the signal, as without ferlab's handler."""
    env = {**ENV, "FERLAB_TEST_AT": "3:TERM", "FERLAB_TEST_DIR": str(tmp_path), "FERLAB_TEST_SLOW_STOP": "1"}
    proc = _start([*TRAIN, "--out-dir", tmp_path, "--name", "r"], env)
    deadline = time.time() + 300
    while not (tmp_path / "stopping").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    time.sleep(REPEAT_WINDOW + 0.3)
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGTERM
    assert time.time() - t0 < 5
    assert not (tmp_path / "r" / "checkpoints" / "last.pt").exists()


# -- time-based checkpoints --------------------------------------------------------------------------

def test_checkpoint_every_accepts_steps_and_times():
    assert checkpoint_interval(0) == (0, 0.0)
    assert checkpoint_interval(50) == (50, 0.0)
    assert checkpoint_interval("50") == (50, 0.0)
    assert checkpoint_interval("30s") == (0, 30.0)
    assert checkpoint_interval("10min") == (0, 600.0)
    assert checkpoint_interval("1.5h") == (0, 5400.0)
    assert checkpoint_interval("2 hours") == (0, 7200.0)
    for bad in ("ten", "10 parsecs", "0s", -1, 2.5, True, [1]):
        with pytest.raises(ConfigError, match="a number of steps .* or a time such as 30s, 10min"):
            checkpoint_interval(bad)
    assert TrainConfig.from_dict({"checkpoint_every": "10min"}).checkpoint_every == "10min"
    assert TrainConfig.from_dict({"checkpoint_every": "200"}).checkpoint_every == 200
    with pytest.raises(ConfigError, match=r"^--checkpoint-every: expected a number of steps"):
        TrainConfig.from_dict({"checkpoint_every": "10 mins later"}, {"checkpoint_every": "--checkpoint-every"})


def test_cli_checkpoint_every_flag(tmp_path, capsys):
    assert main([*TRAIN[:-1], "--out-dir", str(tmp_path), "--checkpoint-every", "ten"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ferlab train: error: --checkpoint-every: expected a number of steps")
    from ferlab.cli import build_parser, config_from_args
    args = build_parser(["train"]).parse_args(["train", "--checkpoint-every", "10min"])
    assert config_from_args(args).checkpoint_every == "10min"


def _saves(monkeypatch) -> list:
    saved = []
    save = Trainer.save

    def recording(self, epoch, step, best=False):
        saved.append((epoch, step))
        return save(self, epoch, step, best)
    monkeypatch.setattr(Trainer, "save", recording)
    return saved


def test_time_based_checkpoints_happen(tmp_path, monkeypatch, full):
    saved = _saves(monkeypatch)
    t = Trainer(cfg(tmp_path, "timed", checkpoint_every="25s"))
    now = [0.0]

    def clock():            # ten seconds a step: a checkpoint every third step
        now[0] += 10.0
        return now[0]
    t.clock = clock
    t.fit()
    mid = [s for s in saved if s[1]]
    assert mid, saved
    assert all(0 < s[1] < 6 for s in mid)
    assert (2, 0) in saved and (1, 0) in saved
    assert_same_state(full, load(tmp_path / "timed" / "checkpoints" / "last.pt"))   # saving changes nothing


def test_time_based_checkpoint_on_the_real_clock(tmp_path, monkeypatch):
    saved = _saves(monkeypatch)
    Trainer(cfg(tmp_path, "timed", epochs=1, checkpoint_every="0.001s")).fit()
    assert [s for s in saved if s[1]] == [(0, k) for k in range(1, 6)]


def test_no_time_based_checkpoint_before_its_time(tmp_path, monkeypatch):
    saved = _saves(monkeypatch)
    Trainer(cfg(tmp_path, "timed", epochs=1, checkpoint_every="1h")).fit()
    assert saved == [(1, 0)]


# -- torchrun ------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DDP = ["train", "--dataset", "synthetic", "--set", "dataset_args.n=128", "--image-size", "32", "--backbone",
       "resnet10", "--input-size", "32", "--epochs", "2", "--batch-size", "32", "--lr", "0.001", "--device", "cpu",
       "--noise", "symmetric", "--noise-rate", "0.3", "--set", "val_split=null", "--limit-eval", "32",
       "--set", "method=_test_signal", "--set", "backbone_args.widths=[8, 16, 32, 64]", "--no-progress"]


def torchrun(args, env, *options) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           *options, str(SCRIPT), *map(str, args)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc, timeout=300) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-4000:]
        assert time.time() < deadline, f"{path} did not appear"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def ddp_full(tmp_path_factory):
    """Uninterrupted 2-process run (4 steps an epoch per rank), with time-based checkpoints (rank 0's
    clock decides for both ranks: a rank saving alone would hang the run)."""
    tmp = tmp_path_factory.mktemp("ddp")
    proc = torchrun([*DDP, "--out-dir", tmp, "--name", "full", "--checkpoint-every", "0.5s"], ENV)
    _out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-4000:]
    return load(tmp / "full" / "checkpoints" / "last.pt")


@pytest.mark.ddp
@pytest.mark.parametrize("target", ["rank1", "agent", "agent-usr1"])
@pytest.mark.slow
def test_torchrun_signal_stops_every_rank_at_the_same_step(tmp_path, ddp_full, target):
    """Rank 0 waits at its 6th step (epoch 2, step 2) while the test sends SIGTERM to rank 1 or to
    torchrun's agent (which forwards it to both), or SIGUSR1 to an agent told to forward it (as SLURM's
    --signal needs): both ranks checkpoint the end of that step and exit 128 + the signal; torchrun
    --resume then ends bit-exact with the uninterrupted run."""
    env = {**ENV, "FERLAB_TEST_AT": "0/6:wait", "FERLAB_TEST_DIR": str(tmp_path)}
    usr1 = target == "agent-usr1"
    options = ["--signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1"] if usr1 else []
    proc = torchrun([*DDP, "--out-dir", tmp_path, "--name", "cut"], env, *options)
    _wait_for(tmp_path / "ready.0", proc)
    _wait_for(tmp_path / "pid.1", proc)
    pid = proc.pid if target.startswith("agent") else int((tmp_path / "pid.1").read_text())
    sig = signal.SIGUSR1 if usr1 else signal.SIGTERM
    os.kill(pid, sig)
    time.sleep(0.3)
    (tmp_path / "go").write_text("")
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode != 0
    ck = tmp_path / "cut" / "checkpoints" / "last.pt"
    line = f"ferlab train: stopped by {sig.name} at epoch 2 step 2 of 4; checkpoint {ck}; --resume continues"
    assert err.count(line) == 1, err[-4000:]                 # rank 0 says it; rank 1 is quiet
    if target == "rank1":       # torchrun's failure report names the workers' status (signalled, it names none)
        assert "exitcode  : 143" in err, err[-4000:]
    state = load(ck)
    assert (state["epoch"], state["step_in_epoch"]) == (1, 2)
    resumed = torchrun([*DDP, "--out-dir", tmp_path, "--name", "cut", "--resume"], ENV)
    _out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-4000:]
    assert_same_state(ddp_full, load(ck))


@pytest.mark.ddp
@pytest.mark.slow
def test_torchrun_rank_sigkilled_the_job_ends_fast_and_resume_finishes(tmp_path, ddp_full):
    """SIGKILL (no handler can run) of rank 1 while rank 0 waits at a step: rank 0 and torchrun exit
    within seconds, and torchrun --resume finishes the run from the last checkpoint."""
    env = {**ENV, "FERLAB_TEST_AT": "0/6:wait", "FERLAB_TEST_DIR": str(tmp_path)}
    proc = torchrun([*DDP, "--out-dir", tmp_path, "--name", "cut"], env)
    _wait_for(tmp_path / "ready.0", proc)
    _wait_for(tmp_path / "pid.1", proc)
    t0 = time.time()
    os.kill(int((tmp_path / "pid.1").read_text()), signal.SIGKILL)
    (tmp_path / "go").write_text("")
    _out, err = proc.communicate(timeout=120)
    elapsed = time.time() - t0
    assert proc.returncode != 0
    assert elapsed < 10, f"torchrun took {elapsed:.1f} s to end after a rank was killed"
    ck = tmp_path / "cut" / "checkpoints" / "last.pt"
    assert (load(ck)["epoch"], load(ck)["step_in_epoch"]) == (1, 0)    # the epoch-1 checkpoint
    resumed = torchrun([*DDP, "--out-dir", tmp_path, "--name", "cut", "--resume"], ENV)
    _out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-4000:]
    assert load(ck)["epoch"] == 2


@pytest.mark.ddp
@pytest.mark.slow
def test_torchrun_a_checkpoint_that_cannot_be_written_stops_every_rank(tmp_path):
    """Rank 0's save fails (no space left): both ranks stop with exit status 2 and one line, not a
    rank waiting forever at the next collective; no temp file is left."""
    env = {**ENV, "FERLAB_TEST_FULL": "last.pt"}
    proc = torchrun([*DDP, "--out-dir", tmp_path, "--name", "full", "--epochs", "1"], env)
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode != 0
    ck = tmp_path / "full" / "checkpoints" / "last.pt"
    lines = [line for line in err.splitlines() if line.startswith("ferlab train:")]
    assert len(lines) == 1, err[-4000:]
    assert lines[0].startswith(f"ferlab train: error: {ck}: cannot write it: No space left"), err[-4000:]
    assert "exitcode  : 2 (" in err, err[-4000:]
    assert not ck.exists() and not list(ck.parent.glob(".*tmp*"))
