"""2-epoch CPU runs of every method on synthetic faces, and exact resume."""
import json

import pytest
import torch

from ferlab.engine.config import TrainConfig
from ferlab.engine.trainer import Trainer, evaluate_checkpoint, fit

METHOD_ARGS = {"baseline": {}, "eac": {}, "rul": {"relabel": True, "relabel_start_epoch": 1, "relabel_margin": 0.0},
               "dmue": {"ramp_a": 1}, "ldlva": {}, "lanet": {"queue_size": 64}}
SAMPLER = {"dmue": "stratified"}


def cfg(tmp_path, method, **kw):
    base = dict(out_dir=str(tmp_path), method=method, method_args=METHOD_ARGS[method],
                dataset_args={"n": 96, "image_size": 32}, backbone="resnet10",
                backbone_args={"widths": [8, 16, 32, 64]}, input_size=32, epochs=2, batch_size=16,
                lr=1e-3, noise="symmetric", noise_rate=0.3, progress=False, limit_eval=48, sampler=SAMPLER.get(method))
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("method", ["eac", "rul", "dmue", "ldlva", "lanet"])
def test_two_epoch_smoke_run(tmp_path, method, device):
    s = fit(cfg(tmp_path, method, name="smoke", device=device))
    rows = [json.loads(x) for x in (tmp_path / "smoke" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    if method == "eac":
        assert rows[0]["loss"] > rows[0]["ce"] and rows[0]["consistency"] > 0
    elif method == "dmue":
        assert [r["skipped_batches"] for r in rows] == [0, 0]      # stratified batches of 16 >= 2 x 7 classes
        assert rows[0]["ramp_up"] < 0.01 and rows[1]["ramp_up"] == 1.0 and 0 < rows[-1]["confidence_mean"] < 1
    elif method == "ldlva":          # lambda_hat left its init (0.5) and the certainties are logged
        assert 0 < rows[-1]["lambda_mean"] < 1 and rows[-1]["lambda_mean"] != pytest.approx(0.6225, abs=1e-4)
        assert rows[0]["dcm"] > 0 and 0.2 < rows[0]["calibration"] < 1
    elif method == "lanet":          # every term is live; 12 steps x 16 keys have filled the 64-entry queues
        assert min(rows[0]["landmarks"], rows[0]["kl"], rows[0]["el"]) > 0 and rows[-1]["queue_filled"] == 1.0
        assert rows[-1]["loss"] < rows[0]["loss"]
    else:
        assert "relabelled_total" in rows[-1] and rows[-1]["relabelled_total"] > 0   # margin 0 relabels something
    assert 0.0 <= s["protocol"]["last"] <= 1.0
    # a saved run is rebuilt from its checkpoint alone and evaluates to the same number
    again = evaluate_checkpoint(tmp_path / "smoke" / "checkpoints" / "last.pt", "test", device=device, progress=False)
    assert again["acc"] == rows[-1]["test_acc"]
    if method == "dmue":   # `ferlab export`: the standalone target-branch ResNet predicts like the full model
        from ferlab.cli import main
        from ferlab.engine.trainer import load_run_method
        from ferlab.models.export import load_inference_model
        assert main(["export", str(tmp_path / "smoke"), "--out", str(tmp_path / "inf.pt")]) == 0
        net, meta = load_inference_model(tmp_path / "inf.pt")
        full, _, _ = load_run_method(tmp_path / "smoke" / "checkpoints" / "last.pt", "cpu")
        x = torch.randn(4, 3, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(net(x), full.predict(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["eac", "rul", "dmue", "ldlva", "lanet"])
@pytest.mark.slow
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
        assert torch.equal(a["model"][k].nan_to_num(-1), b["model"][k].nan_to_num(-1)), k
    assert rest["protocol"]["last"] == full["protocol"]["last"]


def test_batch_filter_skips_and_counts_short_batches(tmp_path):
    """DMUE's filter (every class twice per batch): with the official multinomial sampler and
    batches of 16 over 7 classes some steps are skipped -- and counted, never silently."""
    s = fit(cfg(tmp_path, "dmue", name="skips", sampler="balanced", epochs=1))
    row = json.loads((tmp_path / "skips" / "metrics.jsonl").read_text().splitlines()[-1])
    assert 0 < row["skipped_batches"] < 6 and torch.isfinite(torch.tensor(row["loss"]))
    assert s["protocol"]["last"] >= 0
