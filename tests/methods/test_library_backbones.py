"""Every method on timm and torchvision networks (``--backbone timm:<model>`` / ``tv:<model>``): 2-epoch runs
on synthetic faces from random init resume bit-exactly, under the trainer's default precision (bf16 autocast and
channels_last where the CPU computes bf16) as on the built-in backbones; a ViT trains or is refused in one line
per method; a timm run exports to a standalone file whose Predictor gives the run's own evaluation."""
import json
from importlib.util import find_spec

import numpy as np
import pytest
import torch
from test_backbones import METHOD_ARGS, METHODS, cfg

from ferlab.cli import main
from ferlab.data.synthetic import synthetic
from ferlab.engine.trainer import Trainer, fit, load_run_method
from ferlab.methods import build_method
from ferlab.models import create_backbone

#: the timm networks' tests need the optional timm package (ferlab[timm]); the torchvision ones run without it
needs_timm = pytest.mark.skipif(find_spec("timm") is None, reason="needs timm (pip install 'ferlab[timm]')")

SIZE = 32
BACKBONES = ["timm:convnext_atto", "timm:efficientnet_b0", "timm:regnety_002", "tv:resnet18", "timm:resnet50"]
#: every method on every backbone; ConvNeXt-atto's runs take seconds, the others up to a minute or two (slow)
CASES = [pytest.param(m, b, id=f"{m}-{b}", marks=[*([] if b == "timm:convnext_atto" else [pytest.mark.slow]),
                                                  *([needs_timm] if b.startswith("timm:") else [])])
         for b in BACKBONES for m in METHODS]


def library_cfg(tmp_path, method, backbone, **kw):
    """The dlib tests' run (:func:`test_backbones.cfg`) on ``backbone`` from random init: 16 faces of 32 px,
    one batch of 16 per epoch (DMUE and LA-Net: 32 faces, so that DMUE's stratified batches hold every class
    twice and LA-Net's progressive sampler, which draws fewer images in its second epoch, fills a batch)."""
    n = 32 if method in ("dmue", "lanet") else 16
    base = {"backbone": backbone, "weights": None, "input_size": SIZE, "dataset_args": {"n": n, "image_size": SIZE}}
    return cfg(tmp_path, method, **{**base, **kw})


@pytest.mark.parametrize("method,backbone", CASES)
def test_method_trains_and_resumes_bit_exactly(tmp_path, method, backbone):
    full = fit(library_cfg(tmp_path, method, backbone, name="full"))
    first = Trainer(library_cfg(tmp_path, method, backbone, name="part"))
    init = {k: v.clone() for k, v in first.method.state_dict().items()}     # the full run started from these too
    first.cfg.epochs = 1                       # stop after one epoch, as if killed at the epoch boundary
    first.fit()
    rest = Trainer(library_cfg(tmp_path, method, backbone, name="part"), resume=True).fit()
    a = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "part" / "checkpoints" / "last.pt", weights_only=True)
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k].nan_to_num(-1), b["model"][k].nan_to_num(-1)), k
    assert rest["protocol"]["last"] == full["protocol"]["last"]
    rows = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and all(np.isfinite(r["loss"]) for r in rows)
    # the network's own parameters trained, its first stage's included, under their library's names
    net = first.method.backbone
    first_stage = tuple(f"backbone.model.{n}." for n in net.stage_pieces[0])
    assert any(k.startswith(first_stage) and not torch.equal(a["model"][k], init[k]) for k in init
               if init[k].is_floating_point()), "the first stage did not train"
    if method == "dmue":
        assert [r["skipped_batches"] for r in rows] == [0, 0]
        last = net.stages[-1].state_dict()
        assert a["model"].keys() >= {f"aux_branches.6.{k}" for k in last}         # C copies of the last stage


def vit():
    """A ViT-Tiny at 32 px: 2 x 2 patch tokens on a grid, no stages."""
    return create_backbone("timm:vit_tiny_patch16_224", num_classes=7, img_size=SIZE)


@needs_timm
@pytest.mark.parametrize("method", METHODS)
def test_vit_trains_on_its_token_grid_or_is_refused_in_one_line(method):
    torch.manual_seed(0)
    net = vit()
    if method in ("dmue", "lanet"):
        name = {"dmue": "DMUE", "lanet": "LA-Net"}[method]
        with pytest.raises(ValueError) as e:
            build_method(method, net, 7, input_size=SIZE, **METHOD_ARGS[method])
        text = str(e.value)
        assert "\n" not in text and text.startswith(f"{name} cannot run on timm:vit_tiny_patch16_224: ")
        assert "no stages" in text and "tokens" in text
        return
    m = build_method(method, net, 7, input_size=SIZE, **METHOD_ARGS[method])
    train = synthetic("train", n=14, image_size=SIZE)
    m.setup_train(train)
    batch = train.get_batch(np.arange(14))
    batch["label"] = torch.arange(14) % 7
    out = m.train().training_step(batch)
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    assert net.model.patch_embed.proj.weight.grad.abs().sum() > 0 and net.model.cls_token.grad is not None
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        f = net.eval().forward_features(x)
        assert f.shape == (2, 192, 2, 2)
        tokens = net.model.forward_features(x)                       # (2, 1 + 4, 192): class token, 2 x 2 patches
        torch.testing.assert_close(f.flatten(2).transpose(1, 2), tokens[:, 1:])
        assert m.eval().predict(x).shape == (2, 7)


@needs_timm
def test_vit_trains_through_the_cli_and_refuses_dmue_with_one_line(tmp_path, capsys):
    common = ["--dataset", "synthetic", "--set", "dataset_args.n=16", "--set", f"dataset_args.image_size={SIZE}",
              "--backbone", "timm:vit_tiny_patch16_224", "--set", f"backbone_args.img_size={SIZE}",
              "--input-size", str(SIZE), "--epochs", "1", "--batch-size", "16", "--limit-eval", "8",
              "--out-dir", str(tmp_path), "--no-progress"]
    assert main(["train", "--method", "eac", "--name", "eac", *common]) == 0
    capsys.readouterr()
    assert main(["train", "--method", "dmue", "--name", "dmue", *common]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "DMUE cannot run on timm:vit_tiny_patch16_224" in err


@needs_timm
@pytest.mark.parametrize("method", ["baseline", "dmue"])
def test_export_and_predictor_give_the_runs_evaluation(tmp_path, method):
    """A timm-backbone run in float32: the exported file rebuilds the network from its name alone (nothing
    registered) and its Predictor, on the test images, predicts what the run's evaluation predicted."""
    from ferlab.engine.run_data import build_eval_set
    from ferlab.predictor import Predictor
    summary = fit(library_cfg(tmp_path, method, "timm:convnext_atto", name="r", amp="off", epochs=1))
    run = tmp_path / "r"
    assert main(["export", str(run), "--out", str(tmp_path / "model.pt")]) == 0
    predictor = Predictor.load(tmp_path / "model.pt", amp="off")
    assert type(predictor.method.backbone).__name__ == "TimmBackbone"
    trained, run_cfg, _ = load_run_method(run / "checkpoints" / "last.pt", "cpu")
    ds = build_eval_set(run_cfg, "test").preload(progress=False)            # the run's own test images
    images = ds.get_batch(np.arange(len(ds)))["image"]                       # (16, 3, 32, 32) uint8
    probs = predictor.predict(images, batch_size=5).probs
    with torch.no_grad():
        ref = trained.predict(trained.prepare(images)).softmax(1).numpy()
    np.testing.assert_allclose(probs, ref, atol=1e-6)
    assert len(ds) == 16 and (probs.argmax(1) == ds.labels).mean() == summary["protocol"]["last"]


@needs_timm
@pytest.mark.ddp
@pytest.mark.slow
@pytest.mark.parametrize("method,args", [("eac", ["--config", "recipes/eac/ferplus.yaml", "--preset", "cpu"]),
                                         ("dmue", ["--sampler", "stratified"])])
def test_torchrun_on_a_timm_backbone(tmp_path, method, args):
    """2-process DDP (gloo) on timm's ConvNeXt, through a recipe (EAC's, on synthetic faces) and DMUE's copies of
    the last stage: the run's test accuracy equals a single-process evaluation of its checkpoint."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from ferlab.engine.trainer import evaluate_checkpoint
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "ferlab.cli",
           "train", "--method", method, *args, "--dataset", "synthetic", "--backbone", "timm:convnext_atto",
           "--input-size", str(SIZE), "--image-size", str(SIZE), "--epochs", "1", "--batch-size", "32",
           "--device", "cpu", "--noise", "none", "--out-dir", str(tmp_path), "--name", "ddp", "--set",
           "dataset_args.n=64", "--set", "val_split=null", "--limit-eval", "32", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, cwd=repo)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    run = tmp_path / "ddp"
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert np.isfinite(row["loss"]) and row.get("skipped_batches", 0) == 0
    single = evaluate_checkpoint(run / "checkpoints" / "last.pt", "test", device="cpu", progress=False)
    assert single["n"] == 32 and single["acc"] == row["test_acc"]


@pytest.mark.parametrize("backbone,linear", [pytest.param("timm:regnety_002", True, marks=needs_timm),
                                             ("tv:efficientnet_b0", True),
                                             pytest.param("timm:convnext_atto", False, marks=needs_timm)])
def test_classifier_cam_only_where_it_splits_the_logits_and_gradcam_everywhere(backbone, linear):
    """Where the pooled features are the mean of the last map, a classifier CAM's spatial mean plus the bias is
    the logit; ConvNeXt's head normalises the pooled features, so it offers no classifier CAM (Grad-CAM instead)."""
    from ferlab.viz.cam import MethodCAM, classifier_cam
    torch.manual_seed(0)
    m = build_method("baseline", create_backbone(backbone, num_classes=7), 7, input_size=64).eval()
    x, cls = torch.randn(2, 3, 64, 64), torch.tensor([0, 4])
    head = m.cam_classifier()
    assert (head is not None) == linear
    if linear:
        with torch.no_grad():
            raw, logits = classifier_cam(m, x, cls), m.predict(x)
        assert raw.shape == (2, 2, 2)
        torch.testing.assert_close(raw.mean((1, 2)) + head[1][cls], logits[torch.arange(2), cls], rtol=1e-4, atol=1e-4)
    with MethodCAM(m, "gradcam") as cam:
        maps = cam(x, cls)
    assert maps.shape == (2, 64, 64) and np.isfinite(maps).all()
