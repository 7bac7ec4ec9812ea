"""LA-Net: bank update rule, inference cost, landmark checks."""
import numpy as np
import pytest
import torch

from ferlab.data.synthetic import synthetic
from ferlab.methods import build_method
from ferlab.models import create_backbone


def _method(**kw):
    torch.manual_seed(0)
    return build_method("lanet", create_backbone("resnet10", num_classes=7), 7, input_size=32, queue_size=16, **kw)


def test_bank_follows_momentum_09_and_rows_stay_distributions():
    ds = synthetic("train", n=24, image_size=32)
    m = _method()
    m.setup_train(ds)
    onehot = torch.nn.functional.one_hot(torch.as_tensor(ds.labels), 7).float()
    torch.testing.assert_close(m.bank, onehot)
    seen = {}
    m.lde.register_forward_hook(lambda mod, args, out: seen.update(t=out.detach().clone()))   # returns None
    batch = ds.get_batch(np.arange(0, 24, 2))
    out = m.training_step(batch)
    idx = batch["index"]
    torch.testing.assert_close(m.bank[idx], 0.9 * onehot[idx] + 0.1 * seen["t"])
    torch.testing.assert_close(m.bank[1::2], onehot[1::2])                     # rows not in the batch untouched
    torch.testing.assert_close(m.bank.sum(1), torch.ones(24))
    out["loss"].backward()
    assert m.lde.score_u.fc1.weight.grad.abs().sum() > 0                      # KL reaches the score networks
    assert m.query.landmarks.heatmap.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in m.key_encoder.parameters())            # the momentum encoder is not trained
    assert out["el"] > 0 and out["landmarks"] > 0
    scores = m.noise_scores(ds, "cpu")["1-mass"]
    np.testing.assert_allclose(scores, 1 - m.bank[torch.arange(24), torch.as_tensor(ds.labels)].numpy(), rtol=1e-6)


def test_predict_is_the_plain_expression_branch():
    m = _method().eval()
    x = torch.randn(3, 3, 32, 32)
    net = m.export_inference_model()
    with torch.no_grad():
        torch.testing.assert_close(m.predict(x), net(x))
        torch.testing.assert_close(m.predict(x), m.query(x)["logits"])
    assert sum(p.numel() for p in net.parameters()) < 0.6 * sum(p.numel() for p in m.query.parameters())


LANDMARK_CONVS = ("lateral1", "lateral2", "lateral3", "lateral4", "heatmap")


def test_lateral_and_heatmap_convs_are_bias_free_unless_asked():
    m = _method()
    for enc in (m.query, m.key_encoder):
        assert all(getattr(enc.landmarks, name).bias is None for name in LANDMARK_CONVS)
    names = [n for n, _ in m.named_parameters()]
    assert not any(n.endswith(f"{conv}.bias") for n in names for conv in LANDMARK_CONVS)
    biased = _method(landmark_bias=True)
    assert sum(n.endswith(f"{conv}.bias") for n, _ in biased.named_parameters() for conv in LANDMARK_CONVS) == 10
    assert {n for n, _ in biased.named_parameters()} - set(names) == {
        f"{enc}.landmarks.{conv}.bias" for enc in ("query", "key_encoder") for conv in LANDMARK_CONVS}
    # a checkpoint with the biases (made before bias-free was the default) loads with them
    old = biased.state_dict()
    m.load_state_dict(old)
    assert all(torch.equal(v, old[k]) for k, v in m.state_dict().items())
    m.eval(), biased.eval()
    with torch.no_grad():
        f1 = torch.randn(2, 64, 8, 8)
        torch.testing.assert_close(m.query.landmarks(f1)[0], biased.query.landmarks(f1)[0])


@pytest.mark.parametrize("rounding", ["official", "exact"])
def test_training_step_uses_the_chosen_heatmap_rounding(rounding, monkeypatch):
    import ferlab.methods.lanet as lanet
    ds = synthetic("train", n=8, image_size=32)
    m = _method(heatmap_rounding=rounding)
    m.setup_train(ds)
    seen = []
    real = lanet.heatmap_targets
    monkeypatch.setattr(lanet, "heatmap_targets", lambda *a, **kw: seen.append(kw["rounding"]) or real(*a, **kw))
    m.training_step(ds.get_batch(np.arange(8)))
    assert seen == [rounding]
    with pytest.raises(ValueError, match="heatmap_rounding"):
        _method(heatmap_rounding="nearest")


def test_linear_horizon_is_floor_n_over_b_times_epochs_and_the_partial_batch_is_not_trained(tmp_path):
    # the official loader drops the last partial batch: floor(100 / 16) = 6 steps an epoch, not 7
    from ferlab.data.samplers import epoch_order
    from ferlab.engine.config import TrainConfig
    from ferlab.engine.trainer import Trainer
    cfg = TrainConfig(out_dir=str(tmp_path), name="h", method="lanet", method_args={"queue_size": 16},
                      dataset_args={"n": 100, "image_size": 32}, backbone="resnet10", input_size=32, epochs=2,
                      batch_size=16, val_split=None, limit_eval=16, progress=False)
    tr = Trainer(cfg)
    assert tr.cfg.drop_last is True and tr.cfg.scheduler == "linear"
    assert tr.scheduler.lr_lambdas[0].total == (100 // 16) * 2
    tr.cfg.epochs = 1                                        # one epoch of the 2-epoch schedule
    tr.fit()
    assert tr.global_step == 6
    assert tr.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * (1 - 6 / 12))
    labels = tr.train_set.labels
    order = epoch_order(100, 0, 0, kind="progressive", labels=labels, batch_size=16, total_epochs=2)
    onehot = torch.nn.functional.one_hot(torch.as_tensor(labels), 7).float()
    bank = tr.method.bank
    assert (bank[order[:96]] != onehot[order[:96]]).any(1).all()   # every trained sample's bank row moved
    torch.testing.assert_close(bank[order[96:]], onehot[order[96:]])  # the 4 in the dropped batch never trained


def test_setup_checks_the_landmarks():
    ds = synthetic("train", n=8, image_size=32)
    with pytest.raises(ValueError, match="num_landmarks=19"):
        _method(num_landmarks=19).setup_train(ds)
    ds.landmarks = None
    with pytest.raises(ValueError, match="ferlab landmarks"):
        _method().setup_train(ds)
