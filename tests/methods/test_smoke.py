"""2-epoch CPU runs of every method on synthetic faces, and exact resume."""
import json

import pytest
import torch

from ferlab.engine.config import TrainConfig
from ferlab.engine.trainer import Trainer, evaluate_checkpoint, fit

METHOD_ARGS = {"baseline": {}, "eac": {}, "rul": {"relabel": True, "relabel_start_epoch": 1, "relabel_margin": 0.0}}


def cfg(tmp_path, method, **kw):
    base = dict(out_dir=str(tmp_path), method=method, method_args=METHOD_ARGS[method],
                dataset_args={"n": 96, "image_size": 32}, backbone="resnet10", input_size=32, epochs=2, batch_size=16,
                lr=1e-3, noise="symmetric", noise_rate=0.3, progress=False, limit_eval=48)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("method", ["eac", "rul"])
def test_two_epoch_smoke_run(tmp_path, method, device):
    s = fit(cfg(tmp_path, method, name="smoke", device=device))
    rows = [json.loads(x) for x in (tmp_path / "smoke" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    if method == "eac":
        assert rows[0]["loss"] > rows[0]["ce"] and rows[0]["consistency"] > 0
    else:
        assert "relabelled_total" in rows[-1] and rows[-1]["relabelled_total"] > 0   # margin 0 relabels something
    assert 0.0 <= s["protocol"]["last"] <= 1.0
    # a saved run is rebuilt from its checkpoint alone and evaluates to the same number
    again = evaluate_checkpoint(tmp_path / "smoke" / "checkpoints" / "last.pt", "test", device=device, progress=False)
    assert again["acc"] == rows[-1]["test_acc"]


@pytest.mark.parametrize("method", ["eac", "rul"])
def test_resume_equals_uninterrupted(tmp_path, method):
    full = fit(cfg(tmp_path, method, name="full"))
    first = Trainer(cfg(tmp_path, method, name="part"))
    first.cfg.epochs = 1                       # stop after one epoch, as if killed at the epoch boundary
    first.fit()
    second = Trainer(cfg(tmp_path, method, name="part"), resume=True)
    assert second.start_epoch == 0             # loading happens in fit()
    rest = second.fit()
    a = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "part" / "checkpoints" / "last.pt", weights_only=True)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert rest["protocol"]["last"] == full["protocol"]["last"]
