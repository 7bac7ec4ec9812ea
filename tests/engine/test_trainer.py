"""Run directory, resume after SIGKILL, NaN handling."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from ferlab.engine.config import TrainConfig
from ferlab.engine.optim import build_optimizer
from ferlab.engine.trainer import Trainer, TrainingDiverged, fit
from ferlab.methods.base import Method, register_method


def test_run_directory_contents(tmp_path, device, tiny_cfg):
    s = fit(tiny_cfg(tmp_path, name="r", device=device))
    run = tmp_path / "r"
    for f in ("config.yaml", "noise.json", "metrics.jsonl", "summary.json", "checkpoints/last.pt"):
        assert (run / f).is_file(), f
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    assert {"loss", "ce", "train_acc", "val_acc", "test_acc", "lr", "images_per_s"} <= set(lines[0])
    assert s["protocol"]["last"] == lines[-1]["test_acc"]
    assert TrainConfig.from_yaml(run / "config.yaml").epochs == 2
    assert json.loads((run / "noise.json").read_text())["kind"] == "symmetric"


SCRIPT = """
import sys
from ferlab.engine.config import TrainConfig
from ferlab.engine.trainer import fit
cfg = TrainConfig(name=sys.argv[2], out_dir=sys.argv[1], dataset_args={"n": 160, "image_size": 32}, backbone="resnet10",
                  backbone_args={"widths": [8, 16, 32, 64]},
                  input_size=32, epochs=3, batch_size=16, lr=1e-3, noise="symmetric", noise_rate=0.3, progress=False,
                  augment={"flip": 0.5, "erasing": 0.5, "crop": "random", "crop_padding": 2}, checkpoint_every=3,
                  val_split=None, limit_eval=32)
fit(cfg, resume=len(sys.argv) > 3)
"""


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, script, tmp_path, "full"], check=True, env=env)
    proc = subprocess.Popen([sys.executable, script, tmp_path, "killed"], env=env)
    ck = tmp_path / "killed" / "checkpoints" / "last.pt"
    deadline = time.time() + 300
    while time.time() < deadline:  # kill once a mid-epoch checkpoint of the second epoch exists
        if ck.is_file():
            try:
                state = torch.load(ck, weights_only=True)
                if state["epoch"] == 1 and state["step_in_epoch"] > 0:
                    break
            except Exception:
                pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = torch.load(ck, weights_only=True)
    assert state["epoch"] < 3, "the run finished before it could be killed"
    subprocess.run([sys.executable, script, tmp_path, "killed", "resume"], check=True, env=env)
    a = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(ck, weights_only=True)
    assert b["epoch"] == 3
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert [h["test_acc"] for h in a["history"]] == [h["test_acc"] for h in b["history"]]


@register_method
class _NaNAfterFirstEpoch(Method):
    name = "_test_nan"

    def __init__(self, backbone, num_classes, **kw):
        super().__init__(backbone, num_classes, **kw)
        backbone.reset_classifier(num_classes)
        self.register_buffer("epoch", torch.zeros((), dtype=torch.long))

    def on_epoch_start(self, epoch):
        self.epoch.fill_(epoch)

    def training_step(self, batch):
        logits = self.predict(self.train_transform(batch["image"]))
        loss = torch.nn.functional.cross_entropy(logits, batch["label"])
        if self.epoch.item() >= 1:
            loss = loss * float("nan")
        return {"loss": loss}


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, tiny_cfg):
    t = Trainer(tiny_cfg(tmp_path, name="nan", method="_test_nan", epochs=3))
    with pytest.raises(TrainingDiverged, match="last good checkpoint"):
        t.fit()
    state = torch.load(tmp_path / "nan" / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_optimizer_kernels_compute_the_same_update(name):
    """fused / foreach / loop are speed choices only: five steps land on the same weights."""
    results = {}
    for impl in ("fused", "foreach", "loop"):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
        start = torch.cat([p.detach().flatten() for p in net.parameters()])
        cfg = TrainConfig(optimizer=name, lr=0.05, weight_decay=1e-3, optimizer_impl=impl)
        opt = build_optimizer(net.parameters(), cfg)
        x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
        for _ in range(5):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
        results[impl] = torch.cat([p.detach().flatten() for p in net.parameters()])
    assert (results["loop"] - start).abs().max() > 1e-2        # the steps moved the weights
    torch.testing.assert_close(results["fused"], results["loop"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(results["foreach"], results["loop"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("drop_last,steps", [(None, 7), (True, 6)])
def test_drop_last_sets_the_epoch_steps_and_the_linear_horizon(tmp_path, drop_last, steps, tiny_cfg):
    """100 images in batches of 16: the partial batch is a 7th step unless dropped (the baseline's
    default keeps it); a per-step schedule's horizon counts the same steps."""
    t = Trainer(tiny_cfg(tmp_path, name="d", dataset_args={"n": 100, "image_size": 32}, epochs=3, scheduler="linear",
                         drop_last=drop_last, val_split=None, test_split=None))
    assert t.cfg.drop_last is bool(drop_last)
    assert t.scheduler.lr_lambdas[0].total == 3 * steps
    t.cfg.epochs = 1
    t.fit()
    assert t.global_step == steps
    if drop_last:
        with pytest.raises(ValueError, match="drop_last: 100 training images per process fill no batch of 128"):
            Trainer(tiny_cfg(tmp_path, name="e", dataset_args={"n": 100, "image_size": 32}, batch_size=128,
                             drop_last=True, val_split=None, test_split=None))


def test_optimizer_auto_picks_the_fused_kernel_and_rejects_unknown_kernels():
    net = torch.nn.Linear(3, 2)
    opt = build_optimizer(net.parameters(), TrainConfig(optimizer="adam", lr=1e-3, weight_decay=0.0))
    assert opt.defaults["fused"] is True
    with pytest.raises(ValueError, match="optimizer_impl"):
        build_optimizer(net.parameters(),
                        TrainConfig(optimizer="adam", lr=1e-3, weight_decay=0.0, optimizer_impl="fast"))
