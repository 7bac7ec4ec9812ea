"""Every method on dlib's face-recognition ResNet-29 (``--backbone dlib_resnet29 --weights dlib``): 2-epoch
runs on synthetic faces resume exactly and export a standalone model, Grad-CAM and the classifier CAM
work on it and release their hooks; DMUE and LA-Net build from the stage description at any depth."""
import json

import numpy as np
import pytest
import torch

from ferlab.data.synthetic import synthetic
from ferlab.engine.config import TrainConfig
from ferlab.engine.trainer import Trainer, fit, load_run_method
from ferlab.methods import build_method
from ferlab.models import create_backbone
from ferlab.models.dlib_resnet import stage_sizes
from ferlab.viz.cam import MethodCAM, classifier_cam

METHODS = ["baseline", "eac", "rul", "dmue", "ldlva", "lanet"]
METHOD_ARGS = {"baseline": {}, "eac": {}, "rul": {"relabel": True, "relabel_start_epoch": 1, "relabel_margin": 0.0},
               "dmue": {"ramp_a": 1}, "ldlva": {}, "lanet": {"queue_size": 32}}
SIZE = 55          # the smallest input dlib_resnet29 takes at its default out_stage 4 (its convs are unpadded)


def cfg(tmp_path, method, **kw):
    """32 images, batches of 16, a fine-tuning lr (LA-Net's official 1e-3 diverges within 2 steps on these
    weights with their frozen affine layers). DMUE trains on clean labels: 30% noise leaves one class
    without images, and its stratified batches need every class twice (else its filter skips them all)."""
    base = {"out_dir": str(tmp_path), "method": method, "method_args": METHOD_ARGS[method],
            "dataset_args": {"n": 32, "image_size": SIZE}, "backbone": "dlib_resnet29", "weights": "dlib",
            "input_size": SIZE, "epochs": 2, "batch_size": 16, "lr": 1e-4, "progress": False, "limit_eval": 16,
            "noise": "none" if method == "dmue" else "symmetric", "noise_rate": 0.3,
            "sampler": "stratified" if method == "dmue" else None}
    base.update(kw)
    return TrainConfig(**base)


def face_backbone(**kw):
    return create_backbone("dlib_resnet29", weights="dlib", num_classes=7, verbose=False, **kw)


def build(method, size=SIZE, **backbone_args):
    torch.manual_seed(0)
    net = face_backbone(**backbone_args)
    cfg = net.pretrained_cfg
    return build_method(method, net, 7, input_size=size, mean=cfg["mean"], std=cfg["std"], **METHOD_ARGS[method])


def hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.slow
def test_method_on_dlib_faces_trains_resumes_exactly_and_exports(tmp_path, method):
    full = fit(cfg(tmp_path, method, name="full"))
    first = Trainer(cfg(tmp_path, method, name="part"))
    first.cfg.epochs = 1                       # stop after one epoch, as if killed at the epoch boundary
    first.fit()
    rest = Trainer(cfg(tmp_path, method, name="part"), resume=True).fit()
    a = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "part" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k].nan_to_num(-1), b[k].nan_to_num(-1)), k
    assert rest["protocol"]["last"] == full["protocol"]["last"]
    rows = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and all(np.isfinite(r["loss"]) for r in rows)
    if method == "dmue":
        assert [r["skipped_batches"] for r in rows] == [0, 0]
    # trained from the face weights: the convs moved, dlib's frozen affine layers (buffers) kept the file's values
    src = face_backbone().state_dict()
    assert not torch.equal(a["backbone.layer1.0.conv1.weight"], src["layer1.0.conv1.weight"])
    for k in ("layer1.0.bn1.weight", "layer4.2.bn2.bias"):
        assert torch.equal(a[f"backbone.{k}"], src[k]), k

    from ferlab.cli import main
    from ferlab.models.export import load_inference_model
    model, _, _ = load_run_method(tmp_path / "full" / "checkpoints" / "last.pt", "cpu")
    code = main(["export", str(tmp_path / "full"), "--out", str(tmp_path / "inf.pt")])
    if method == "rul":                        # RUL's head reads the flattened map: not a plain classifier
        assert code == 2 and not (tmp_path / "inf.pt").exists()
        return
    assert code == 0
    net, meta = load_inference_model(tmp_path / "inf.pt")
    assert (meta["backbone"], meta["backbone_args"], meta["input_size"]) == ("dlib_resnet29", {}, SIZE)
    assert tuple(meta["mean"]) == model.mean == tuple(face_backbone().pretrained_cfg["mean"])
    x = torch.randn(4, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(net(x), model.predict(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_cams_on_dlib_faces_read_the_stage_feeding_the_head_and_release_hooks(method):
    """At 112 px the default out_stage 4 ends on a 3x3 map. Grad-CAM is the hand computation on the
    last stage's output: relu(sum_c mean_hw(dy/dA_c) A_c), then pytorch-grad-cam's scaling (min-max,
    resize, min-max again over its layers). A classifier CAM's spatial mean plus the bias is the logit."""
    from pytorch_grad_cam.utils.image import scale_cam_image
    m = build(method, size=112).train()
    assert m.cam_target_layer is m.backbone.stages[-1][-1]
    x, cls = torch.randn(2, 3, 112, 112), torch.tensor([0, 4])
    assert hooks(m) == 0
    with MethodCAM(m, "gradcam") as cam:
        assert hooks(m) > 0
        maps = cam(x, cls)
    assert hooks(m) == 0 and m.training
    m.eval()
    a = m.backbone.forward_features(x)                                      # (2, 256, 3, 3)
    a.retain_grad()
    y = {"dmue": lambda: m.classifier(m.neck(7)(m.backbone.forward_head(a, pre_logits=True))),
         "rul": lambda: m.fc(m.mu_head(a))}.get(method, lambda: m.backbone.forward_head(a))()
    y[torch.arange(2), cls].sum().backward()
    hand = torch.relu((a.grad.mean((2, 3), keepdim=True) * a).sum(1)).detach().numpy()
    np.testing.assert_allclose(maps, scale_cam_image(scale_cam_image(hand, (112, 112))), atol=1e-5)
    torch.testing.assert_close(y.detach(), m.predict(x).detach())
    head = m.cam_classifier()
    if method == "rul":
        assert head is None
        return
    with torch.no_grad():
        raw = classifier_cam(m, x, cls)
        logits = m.predict(x)
    assert raw.shape == (2, 3, 3)
    torch.testing.assert_close(raw.mean((1, 2)) + head[1][cls], logits[torch.arange(2), cls], rtol=1e-4, atol=1e-4)


def one_step(m, size):
    """One training step on 14 synthetic faces, every class twice (DMUE's batch filter)."""
    train = synthetic("train", n=14, image_size=size)
    m.setup_train(train)
    batch = train.get_batch(np.arange(14))
    batch["label"] = torch.arange(14) % 7
    torch.manual_seed(1)
    out = m.train().training_step(batch)
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    assert m.backbone.stages[0][0].conv1.weight.grad.abs().sum() > 0      # the first stage learns
    return out


@pytest.mark.parametrize("out_stage,size", [(2, 31), (3, 31), (5, 103)])
def test_dmue_on_any_number_of_stages(out_stage, size):
    m = build("dmue", size=size, out_stage=out_stage)
    b = m.backbone
    assert len(b.stages) == out_stage and len(m.aux_branches) == 7
    assert m.cam_target_layer is b.stages[-1][-1]                        # the target branch's last block
    last = b.stages[-1].state_dict()
    for branch in m.aux_branches:                                       # copies of the last stage, not views
        assert branch is not b.stages[-1] and branch.state_dict().keys() == last.keys()
        assert all(torch.equal(v, last[k]) for k, v in branch.state_dict().items())
    x = torch.randn(2, 3, size, size)
    t = m.trunk(x)
    assert t.shape[1] == b.feature_info[-2]["channels"] and t.shape[-1] == stage_sizes(size, out_stage)[-2]
    one_step(m, size)
    assert m.aux_branches[0][0].conv1.weight.grad is not None                # the auxiliary copies train
    assert m.eval().predict(x).shape == (2, 7)


@pytest.mark.parametrize("out_stage,size", [(2, 31), (3, 31), (5, 103)])
def test_lanet_landmark_branch_on_any_number_of_stages(out_stage, size):
    m = build("lanet", size=size, out_stage=out_stage)
    branch = m.query.landmarks
    n = out_stage
    names = [f"layer{i}" for i in range(2, n + 1)] + [f"lateral{i}" for i in range(n, 0, -1)] + ["heatmap"]
    assert [k for k, _ in branch.named_children()] == names
    assert m.cam_target_layer is m.backbone.stages[-1][-1]               # the expression branch, not a copy
    channels = [d["channels"] for d in m.backbone.feature_info]
    assert [getattr(branch, f"lateral{i + 1}").in_channels for i in range(n)] == channels
    out = m.query(torch.randn(2, 3, size, size))
    side = stage_sizes(size, out_stage)[1]                                # heatmaps at the first stage's map
    assert out["heatmaps"].shape == (2, 68, side, side) and out["v"].shape == (2, channels[0])
    one_step(m, size)
    assert branch.lateral1.weight.grad is not None and getattr(branch, f"layer{n}")[0].conv1.weight.grad is not None


def test_lanet_keeps_its_resnet_parameter_names_and_refuses_a_single_stage():
    """Checkpoints of LA-Net on a ResNet keep their keys and parameter order after the stage refactor."""
    m = build_method("lanet", create_backbone("resnet10", num_classes=7), 7, input_size=32)
    names = [k for k, _ in m.query.landmarks.named_parameters()]
    assert [k.split(".")[0] for k in names if not k.startswith("layer")] == \
        ["lateral4", "lateral3", "lateral2", "lateral1", "heatmap"]
    assert names[0].startswith("layer2.0.") and names.index("lateral4.weight") > max(
        i for i, k in enumerate(names) if k.startswith("layer4."))
    with pytest.raises(ValueError, match="at least 2 stages"):
        build("lanet", size=31, out_stage=1)
