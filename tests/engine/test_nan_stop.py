"""A run whose loss or state turns non-finite stops with one message that names the checkpoint that
resumes it (epochs and steps counted from 1, as the logs count them); nothing non-finite is saved,
and that checkpoint, resumed, ends exactly where an undisturbed run ends."""
import json

import pytest
import torch
import torch.nn.functional as F

from ferlab.cli import main
from ferlab.methods.base import Method, register_method


@register_method
class _Poison(Method):
    """Cross-entropy; at global step ``poison_step`` (counted from 1) either the loss becomes NaN
    (``target="loss"``: NaN gradients, NaN weights after the step) or the first BatchNorm's running
    variance becomes inf while the loss stays finite (``target="state"``: only the state check sees it)."""
    name = "_test_poison"

    def __init__(self, backbone, num_classes, poison_step: int = -1, target: str = "loss", **kw):
        super().__init__(backbone, num_classes, **kw)
        backbone.reset_classifier(num_classes)
        self.poison_step, self.target = poison_step, target
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def training_step(self, batch):
        self.steps += 1
        poison = int(self.steps) == self.poison_step
        if poison and self.target == "state":     # before the forward pass, which saves the BN state for backward
            with torch.no_grad():
                self.backbone.bn1.running_var.fill_(float("inf"))
        logits = self.predict(self.train_transform(batch["image"]))
        loss = F.cross_entropy(logits, batch["label"])
        if poison and self.target == "loss":
            loss = loss * float("nan")
        return {"loss": loss, "logits": logits}


def _train(tmp_path, name, *extra):
    # 48 images in batches of 16: 3 steps per epoch, 2 epochs; a checkpoint after every step
    return main(["train", "--set", "method=_test_poison", "--dataset", "synthetic", "--set", "dataset_args.n=48",
                 "--set", "dataset_args.image_size=32", "--backbone", "resnet10", "--input-size", "32",
                 "--epochs", "2", "--batch-size", "16", "--lr", "0.001", "--checkpoint-every", "1",
                 "--set", "val_split=null", "--limit-eval", "16", "--out-dir", str(tmp_path), "--name", name,
                 "--set", "backbone_args.widths=[8, 16, 32, 64]", "--no-progress", *extra])


def _state(path):
    return torch.load(path, weights_only=True)


@pytest.mark.slow
def test_nan_loss_stops_naming_the_checkpoint_that_resumes_to_the_uninterrupted_end(tmp_path, capsys):
    assert _train(tmp_path, "clean") == 0
    capsys.readouterr()
    # global step 5 = epoch 2, step 2 of 3: the last good checkpoint is the one after epoch 2 step 1
    assert _train(tmp_path, "nan", "--set", "method_args.poison_step=5") == 3
    err = capsys.readouterr().err
    ck = tmp_path / "nan" / "checkpoints" / "last.pt"
    assert "Traceback" not in err
    assert f"ferlab train: error: training diverged at epoch 2 step 2 of 3: the running loss is nan; the last good " \
           f"checkpoint {ck} (epoch 2 step 1) is kept; --resume continues from it" in err
    state = _state(ck)
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (1, 1, 4)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not list(ck.parent.glob(".*tmp*"))

    assert _train(tmp_path, "nan", "--resume", "--set", "method_args.poison_step=-1") == 0
    assert "resumed" in capsys.readouterr().out
    a, b = _state(tmp_path / "clean" / "checkpoints" / "last.pt"), _state(ck)
    assert b["epoch"] == 2 and b["global_step"] == 6
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    rows = [json.loads(line) for line in (tmp_path / "nan" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert [h["test_acc"] for h in a["history"]] == [r["test_acc"] for r in rows]


def test_non_finite_state_with_a_finite_loss_is_never_saved(tmp_path, capsys):
    """Train-mode BatchNorm normalises with batch statistics, so an inf running variance leaves the
    loss finite; the check of the state before the save catches it."""
    assert _train(tmp_path, "bn", "--set", "method_args.poison_step=2", "--set", "method_args.target=state") == 3
    err = capsys.readouterr().err
    ck = tmp_path / "bn" / "checkpoints" / "last.pt"
    assert f"training diverged at epoch 1 step 2: backbone.bn1.running_var holds NaN/inf; the last good " \
           f"checkpoint {ck} (epoch 1 step 1) is kept" in err
    state = _state(ck)
    assert (state["epoch"], state["step_in_epoch"]) == (0, 1)
    assert torch.isfinite(state["model"]["backbone.bn1.running_var"]).all()
