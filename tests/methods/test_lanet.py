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


def test_setup_checks_the_landmarks():
    ds = synthetic("train", n=8, image_size=32)
    with pytest.raises(ValueError, match="num_landmarks=19"):
        _method(num_landmarks=19).setup_train(ds)
    ds.landmarks = None
    with pytest.raises(ValueError, match="ferlab landmarks"):
        _method().setup_train(ds)
