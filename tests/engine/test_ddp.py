"""torchrun --nproc_per_node=2 (gloo, CPU): one epoch trains, and its evaluation equals a
single-process evaluation of the same checkpoint."""
import json
import os
import socket
import subprocess
import sys

import pytest

from ferlab.engine.trainer import evaluate_checkpoint

pytestmark = pytest.mark.ddp


def free_port() -> int:
    """A port nobody listens on now (a fixed port can still be in TIME_WAIT from the previous test)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           "-m", "ferlab.cli", "train", "--dataset", "synthetic", "--backbone", "resnet10", "--input-size", "32",
           "--image-size", "32", "--epochs", "1", "--batch-size", "32", "--lr", "0.001", "--device", "cpu",
           "--noise", "symmetric", "--noise-rate", "0.3", "--out-dir", str(tmp_path), "--name", "ddp",
           "--set", "dataset_args.n=203", "--set", "backbone_args.widths=[8, 16, 32, 64]", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    run = tmp_path / "ddp"
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    single = evaluate_checkpoint(run / "checkpoints" / "last.pt", "test", device="cpu", progress=False)
    assert single["n"] == 203  # the full split: no padding duplicates, nothing dropped
    assert single["acc"] == row["test_acc"]
    val = evaluate_checkpoint(run / "checkpoints" / "last.pt", "val", device="cpu", progress=False)
    assert val["acc"] == row["val_acc"]


@pytest.mark.parametrize("method,args", [("eac", []), ("rul", ["--set", "method_args.relabel=true",
                                                              "--set", "method_args.relabel_start_epoch=0",
                                                              "--set", "method_args.relabel_margin=0.0"]),
                                         ("dmue", ["--sampler", "stratified"]), ("ldlva", []),
                                         ("lanet", ["--set", "method_args.queue_size=64"])])
@pytest.mark.slow
def test_torchrun_methods(tmp_path, method, args):
    """EAC's two passes and RUL's relabelling under 2-process DDP; relabels made on either rank
    reach the (rank-0) checkpoint."""
    import numpy as np
    import torch

    from ferlab.data.samplers import epoch_order
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           "-m", "ferlab.cli", "train", "--method", method, "--dataset", "synthetic", "--backbone", "resnet10",
           "--input-size", "32", "--image-size", "32", "--epochs", "1", "--batch-size", "32", "--lr", "0.001",
           "--device", "cpu", "--noise", "symmetric", "--noise-rate", "0.3", "--out-dir", str(tmp_path),
           "--name", "ddp",
           "--set", "dataset_args.n=128", "--set", "val_split=null", "--set", "backbone_args.widths=[8, 16, 32, 64]",
           "--limit-eval", "64", "--no-progress", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    state = torch.load(tmp_path / "ddp" / "checkpoints" / "last.pt", weights_only=True)
    assert np.isfinite(state["history"][-1]["loss"])
    if method == "rul":
        changed = np.flatnonzero((state["model"]["targets"] != state["labels"]).numpy())
        assert int(state["model"]["relabelled"]) == len(changed) > 0
        for rank in (0, 1):
            shard = epoch_order(128, 0, 0, rank, 2)
            assert np.intersect1d(changed, shard).size > 0, f"no relabel from rank {rank} reached the checkpoint"
    if method == "ldlva":  # every rank's lambda rows and the centre update reach the (rank-0) checkpoint
        lam = state["model"]["lambda_hat"].numpy()
        for rank in (0, 1):
            shard = epoch_order(128, 0, 0, rank, 2)
            assert (lam[shard] != 0.5).mean() > 0.9, f"rank {rank}'s lambda updates missing"
        assert state["model"]["centres.centres"].abs().sum() > 0
    if method == "lanet":  # the global-batch LDE updates both ranks' bank rows; both ranks' keys fill the queues
        bank, labels = state["model"]["bank"].numpy(), state["labels"].numpy()
        onehot = np.eye(bank.shape[1])[labels]
        for rank in (0, 1):
            shard = epoch_order(128, 0, 0, rank, 2, "progressive", labels, 16, total_epochs=1)
            assert (np.abs(bank[shard] - onehot[shard]).sum(1) > 1e-6).all(), f"rank {rank}'s bank rows missing"
        np.testing.assert_allclose(bank.sum(1), 1, atol=1e-5)
        assert (state["model"]["queue_labels"] > -10 ** 9).all() and int(state["model"]["queue_pointer"]) == 0
    if method == "dmue":   # per-class splitting inside DDP's forward; both ranks' confidences reach the bank
        assert state["history"][-1]["skipped_batches"] == 0
        bank = state["model"]["confidence_bank"].numpy()
        for rank in (0, 1):
            shard = epoch_order(128, 0, 0, rank, 2, "stratified", state["labels"].numpy(), 16)
            assert np.isfinite(bank[shard]).all(), f"rank {rank}'s confidences missing"
