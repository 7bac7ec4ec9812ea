"""Per-sample noise signals of a run: orientation, the flipped mask, caching."""
import numpy as np
import torch
import torch.nn.functional as F

from ferlab.engine import precision
from ferlab.engine.config import TrainConfig
from ferlab.engine.signals import run_signals
from ferlab.engine.trainer import fit, load_run_method


def test_run_signals_label_loss_method_signal_flipped_mask_and_cache(tmp_path):
    cfg = TrainConfig(name="rul", out_dir=str(tmp_path), method="rul", dataset="synthetic",
                      dataset_args={"n": 64, "image_size": 32}, backbone="resnet10",
                      backbone_args={"widths": [8, 16, 32, 64]}, input_size=32, epochs=1,
                      batch_size=16, noise="symmetric", noise_rate=0.3, progress=False, limit_eval=32)
    fit(cfg)
    run = tmp_path / "rul"
    sig = run_signals(run, progress=False)
    assert set(sig) == {"label_loss", "uncertainty", "flipped", "known"}
    assert all(len(v) == 64 for v in sig.values())
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    import json
    manifest = json.loads((run / "noise.json").read_text())
    assert sig["flipped"].sum() == manifest["num_flipped"] > 0
    # label_loss is the CE of the *noisy* training label under predict
    method, _, _ = load_run_method(run / "checkpoints" / "last.pt", "cpu")
    from ferlab.data import build_dataset
    ds = build_dataset("synthetic", None, "train", n=64, image_size=32)
    x = method.prepare(ds.get_batch(np.arange(3))["image"])
    with torch.no_grad():
        ce = F.cross_entropy(method.predict(x), state["labels"][:3], reduction="none").numpy()
    # the network ran under the default autocast (bf16 where the CPU computes it), the CE in float32
    tol = 1e-5 if precision.amp_dtype("auto", "cpu") is None else 0.05
    assert np.allclose(sig["label_loss"][:3], ce, atol=tol, rtol=tol)
    # cached: a second call reads signals.npz
    (run / "signals.npz").touch()
    again = run_signals(run, progress=False)
    assert all(np.array_equal(again[k], sig[k]) for k in sig)
