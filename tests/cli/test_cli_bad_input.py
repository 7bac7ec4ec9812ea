"""Malformed input through the ``ferlab`` command: every case ends with exit status 2, no traceback,
and one stderr line ``ferlab <command>: error: ...`` that names the offending file (and line), key
or argument. Real files are written once per module (PNGs, CSVs, .npz, YAML, torch files); almost
every case fails before any data is decoded or any model is built."""
import json
import os
import pickle
import shlex
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from ferlab.cli import main
from ferlab.engine.checkpoint import RUN_KEYS
from ferlab.engine.config import TrainConfig
from ferlab.engine.run_lock import RunLock
from ferlab.methods import build_method
from ferlab.models import create_backbone


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def _png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _bomb_png(path):
    """A valid 10x10 PNG whose header claims 40000 x 40000 pixels (CRC fixed)."""
    _png(path, np.zeros((10, 10), np.uint8))
    b = bytearray(path.read_bytes())
    b[16:24] = struct.pack(">II", 40000, 40000)
    b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(b))


def _ferplus(root, label_csv: str, images=("a.png", "b.png")):
    split = root / "FER2013Train"
    split.mkdir(parents=True)
    (split / "label.csv").write_text(label_csv)
    for i, name in enumerate(images):
        _png(split / name, np.full((48, 48), 30 * i, np.uint8))
    return root


def _rafdb(root, lines, n=3):
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("".join(line + "\n" for line in lines))
    for i in range(1, n + 1):
        _png(root / "Image" / "aligned" / f"train_{i:05d}_aligned.jpg", np.full((100, 100, 3), 40 * i, np.uint8))
    return root


def _affectnet(root, rows):
    root.mkdir(parents=True)
    text = "subDirectory_filePath,expression,valence,arousal\n" + "".join(r + "\n" for r in rows)
    (root / "training.csv").write_text(text)
    _png(root / "Manually_Annotated_Images" / "1" / "a.jpg", np.zeros((64, 64, 3), np.uint8))
    return root


def _folder(root, files: dict):
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, np.ndarray):
            _png(p, data)
        elif callable(data):
            data(p)
        else:
            p.write_bytes(data)
    return root


def _run_state(model_sd: dict, cfg: TrainConfig, n_labels: int = 32) -> dict:
    state = {k: {} for k in RUN_KEYS}
    state.update(model=model_sd, config=cfg.to_dict(), num_classes=7, epoch=1, step_in_epoch=0, global_step=2,
                 history=[], labels=torch.zeros(n_labels, dtype=torch.long))
    return state


# a tiny synthetic training split and no evaluation splits: the cases that build data stay cheap
SYN = ("--dataset synthetic --set dataset_args.n=32 --set dataset_args.image_size=32 --backbone resnet10 "
       "--input-size 32 --epochs 1 --batch-size 16 --set val_split=null --set test_split=null --no-progress")


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    """Every malformed file the cases read, written once."""
    d = tmp_path_factory.mktemp("bad")
    cfg = TrainConfig(method="baseline", backbone="resnet10", input_size=32, dataset="synthetic",
                      dataset_args={"n": 32, "image_size": 32}, limit_eval=8)
    method = build_method("baseline", create_backbone("resnet10", num_classes=7), 7, input_size=32)
    good = {"model": method.state_dict(), "config": cfg.to_dict(), "num_classes": 7}
    torch.save(good, d / "good.pt")
    raw = (d / "good.pt").read_bytes()
    (d / "empty.pt").write_bytes(b"")
    (d / "half.pt").write_bytes(raw[: len(raw) // 2])
    (d / "text.pt").write_text("not a checkpoint\n")
    torch.save({"state_dict": {"x": _Evil()}}, d / "evil.pt")
    torch.save(create_backbone("resnet18", num_classes=7).state_dict(), d / "r18_weights.pt")
    torch.save({"format": "ferlab-inference-v1", "state_dict": {}}, d / "inference.pt")
    torch.save({**good, "config": {**cfg.to_dict(), "epochs": 0}}, d / "badcfg.pt")
    torch.save({**good, "model": {k: v for k, v in list(good["model"].items())[:-3]}}, d / "partial_model.pt")
    torch.save({"model": good["model"]}, d / "noconfig.pt")
    (d / "run_no_ckpt").mkdir()
    # --resume targets: runs/<name>/checkpoints/last.pt
    runs = d / "runs"
    resnet10 = good["model"]
    other = TrainConfig(method="eac", backbone="resnet18", dataset="synthetic")
    for name, content in {
        "r_empty": b"", "r_half": raw[: len(raw) // 2],
        "r_weights": (d / "r18_weights.pt").read_bytes(), "r_evil": (d / "evil.pt").read_bytes(),
    }.items():
        (runs / name / "checkpoints").mkdir(parents=True)
        (runs / name / "checkpoints" / "last.pt").write_bytes(content)
    for name, state in {
        "r_other": _run_state({}, other),
        "r_incomplete": {"model": resnet10, "config": cfg.to_dict(), "num_classes": 7},
        "r_shapes": _run_state({k: v[:1] if v.ndim else v for k, v in resnet10.items()}, cfg),
        "r_labels": _run_state(resnet10, cfg, n_labels=20),
    }.items():
        (runs / name / "checkpoints").mkdir(parents=True)
        torch.save(state, runs / name / "checkpoints" / "last.pt")
    (runs / "r_nodir_ckpt").mkdir()
    # config files
    (d / "syntax.yaml").write_text("method: baseline\nepochs: [1, 2\nlr: 0.1\n")
    (d / "tabs.yaml").write_text("method: baseline\n\tepochs: 3\n")
    (d / "list.yaml").write_text("- method: baseline\n- epochs: 3\n")
    (d / "scalar.yaml").write_text("just a string\n")
    (d / "unknown.yaml").write_text("method: baseline\nepochz: 3\n")
    (d / "epochs_str.yaml").write_text("method: baseline\nepochs: ten\n")
    (d / "lr_str.yaml").write_text("lr: x\n")
    (d / "lr_neg.yaml").write_text("method: baseline\n\nlr: -0.1\n")
    (d / "bs_float.yaml").write_text("batch_size: 2.5\n")
    (d / "bool_str.yaml").write_text("deterministic: maybe\n")
    (d / "method_args.yaml").write_text("method: eac\nmethod_args:\n  lam: 5\n  lamda: 3\n")
    (d / "dataset_args.yaml").write_text("dataset: synthetic\ndataset_args:\n  n: 32\n  size: 3\n")
    (d / "method_args_list.yaml").write_text("method_args: [1, 2]\n")
    (d / "noise_kind.yaml").write_text("noise: gaussian\n")
    (d / "recipe.yaml").write_text("method: baseline\npresets:\n  cpu:\n    epochs: 2\n  paper:\n    epochs: x\n")
    (d / "presets_list.yaml").write_text("method: baseline\npresets: [cpu, paper]\n")
    (d / "binary.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00binary")
    (d / "cfg_dir.yaml").mkdir()
    # data roots
    ok_votes = '"(0, 0, 48, 48)",0,10,0,0,0,0,0,0,0,0'
    _ferplus(d / "fp_empty", "")
    _ferplus(d / "fp_cols", 'a.png,"(0, 0, 48, 48)",1,2,3\n')
    _ferplus(d / "fp_int", f"a.png,{ok_votes}\nb.png,\"(0, 0, 48, 48)\",0,x,0,0,0,0,0,0,0,0\n")
    _ferplus(d / "fp_neg", f"a.png,{ok_votes}\nb.png,\"(0, 0, 48, 48)\",0,10,0,0,-1,0,0,0,0,0\n")
    _ferplus(d / "fp_missing", f"a.png,{ok_votes}\nzz.png,{ok_votes}\n")
    (d / "fp_nosplit").mkdir()
    _rafdb(d / "raf_dup", ["train_00001.jpg 1", "train_00002.jpg 2", "train_00001.jpg 3"])
    _rafdb(d / "raf_split", ["train_00001.jpg 1", "valid_00002.jpg 2"])
    _rafdb(d / "raf_range", ["train_00001.jpg 1", "train_00002.jpg 8"])
    _rafdb(d / "raf_int", ["train_00001.jpg 1", "train_00002.jpg happy"])
    _rafdb(d / "raf_cols", ["train_00001.jpg 1 2"])
    _rafdb(d / "raf_ok", ["train_00001.jpg 1", "train_00002.jpg 2", "train_00003.jpg 3", "test_00001.jpg 4"])
    _png(d / "raf_ok" / "Image" / "aligned" / "test_00001_aligned.jpg", np.zeros((100, 100, 3), np.uint8))
    _affectnet(d / "an_nan", ["1/a.jpg,1,nan,0.2"])
    _affectnet(d / "an_range", ["1/a.jpg,1,0.1,1.7"])
    _affectnet(d / "an_expr", ["1/a.jpg,12,0.1,0.2"])
    _affectnet(d / "an_text", ["1/a.jpg,happy,0.1,0.2"])
    (d / "an_cols").mkdir()
    (d / "an_cols" / "training.csv").write_text("path,expression\n1/a.jpg,1\n")
    pix = " ".join(["0"] * 2304)
    (d / "f13_nosplit.csv").write_text(f"emotion,pixels,Usage\n0,{pix},PublicTest\n")
    (d / "f13_header.csv").write_text(f"label,pixels,Usage\n0,{pix},Training\n")
    (d / "f13_pixels.csv").write_text(f"emotion,pixels,Usage\n0,{pix},Training\n1,0 1 2,Training\n")
    (d / "f13_emotion.csv").write_text(f"emotion,pixels,Usage\n9,{pix},Training\n")
    (d / "f13_empty.csv").write_text("")
    face = np.full((32, 32, 3), 128, np.uint8)
    good_png = (d / "g.png")
    _png(good_png, face)
    _folder(d / "fo_trunc", {"train/happy/a.png": face, "train/sad/b.png": good_png.read_bytes()[:60]})
    _folder(d / "fo_text", {"train/happy/a.png": face, "train/sad/notes.jpg": b"plain text, not an image"})
    _folder(d / "fo_bomb", {"train/happy/a.png": face, "train/sad/huge.png": _bomb_png})
    _folder(d / "fo_noclass", {"train/a.png": face})
    _folder(d / "fo_noimg", {"train/happy/readme.txt": b"x", "train/sad/list.csv": b"x"})
    _folder(d / "fo_ok", {"train/happy/a.png": face, "train/happy/b.png": face, "train/sad/c.png": face})
    # noise files for raf_ok's three training images
    (d / "noise_missing.txt").write_text("train_00001.jpg 1\ntrain_00002.jpg 2\ntrain_99999.jpg 3\n")
    (d / "noise_dup.txt").write_text("train_00001.jpg 1\ntrain_00002.jpg 2\ntrain_00003.jpg 3\ntrain_00002.jpg 5\n")
    (d / "noise_short.txt").write_text("train_00002.jpg 2\n")
    (d / "noise_label.txt").write_text("train_00001.jpg 1\ntrain_00002.jpg 0\ntrain_00003.jpg 3\n")
    (d / "noise_empty.txt").write_text("\n\n")
    # neighbour / landmark / coordinate files for synthetic n=32
    np.savez(d / "nb_object.npz", knn=np.array([[1], [0]], dtype=object), similarity=np.ones((2, 1)), space="va")
    (d / "nb_text.npz").write_text("knn,similarity\n1,0.5\n")
    (d / "nb_header.csv").write_text("knn\n")
    knn = (np.arange(32)[:, None] + np.arange(1, 5)[None]) % 32
    np.savez(d / "nb_nan.npz", knn=knn, similarity=np.where(knn == 3, np.nan, 0.5), space="va")
    np.savez(d / "nb_rows.npz", knn=knn[:20] % 20, similarity=np.ones((20, 4)), space="va")
    np.savez(d / "nb_nosim.npz", knn=knn, space="va")
    np.savez(d / "lm_nometa.npz", points=np.zeros((32, 68, 2), np.float32), detected=np.ones(32, bool),
             names=np.array([f"{i:06d}" for i in range(32)]))
    meta = json.dumps({"image_size": 32})
    np.savez(d / "lm_nan.npz", points=np.where(np.arange(32)[:, None, None] == 5, np.nan, 1.0) * np.ones((32, 68, 2)),
             detected=np.ones(32, bool), names=np.array([f"{i:06d}" for i in range(32)]), meta=meta)
    np.savez(d / "lm_size.npz", points=np.zeros((32, 68, 2)), detected=np.ones(32, bool),
             names=np.array([f"{i:06d}" for i in range(32)]), meta=json.dumps({"detector": "x"}))
    np.savez(d / "lm_rows.npz", points=np.zeros((10, 68, 2)), detected=np.ones(10, bool),
             names=np.array([f"{i:06d}" for i in range(10)]), meta=meta)
    (d / "lm_text.npz").write_text("points\n")
    (d / "coords.txt").write_text("0.1 0.2\n")
    np.save(d / "coords_1d.npy", np.zeros(32))
    for name, extra in {"cfg_syn": "", "cfg_lm_nan": f"  landmarks: {d / 'lm_nan.npz'}\n",
                        "cfg_lm_meta": f"  landmarks: {d / 'lm_nometa.npz'}\n",
                        "cfg_lm_size": f"  landmarks: {d / 'lm_size.npz'}\n",
                        "cfg_lm_rows": f"  landmarks: {d / 'lm_rows.npz'}\n",
                        "cfg_lm_text": f"  landmarks: {d / 'lm_text.npz'}\n",
                        "cfg_lm_missing": f"  landmarks: {d / 'nope.npz'}\n"}.items():
        (d / f"{name}.yaml").write_text(f"dataset: synthetic\ndataset_args:\n  n: 32\n  image_size: 32\n{extra}")
    (d / "not_json.txt").write_text("{")
    yield d
    shutil.rmtree(d, ignore_errors=True)              # module-scoped: free the disk before the session ends


# (id, command line with {d} for the files' folder, strings the error line must contain)
CASES = [
    # -- train: flags -----------------------------------------------------------------------------
    ("epochs-0", "train --epochs 0", ["--epochs", ">= 1", "got 0"]),
    ("epochs-negative", "train --epochs -3", ["--epochs", "got -3"]),
    ("epochs-text", "train --epochs ten", ["--epochs", "'ten'"]),
    ("lr-0", "train --lr 0", ["--lr", "> 0"]),
    ("lr-negative", "train --lr -0.01", ["--lr", "> 0"]),
    ("lr-text", "train --lr x", ["--lr", "'x'"]),
    ("batch-0", "train --batch-size 0", ["--batch-size", ">= 1"]),
    ("batch-negative", "train --batch-size -4", ["--batch-size", "got -4"]),
    ("noise-rate-high", "train --noise symmetric --noise-rate 1.5", ["--noise-rate", "[0, 1]"]),
    ("noise-rate-negative", "train --noise-rate -0.1", ["--noise-rate", "[0, 1]"]),
    ("input-size-0", "train --input-size 0", ["--input-size", ">= 8"]),
    ("log-every-0", "train --log-every 0", ["--log-every", ">= 1"]),
    ("checkpoint-every-negative", "train --checkpoint-every -1", ["--checkpoint-every", ">= 0"]),
    ("mean-last-k-0", "train --mean-last-k 0", ["--mean-last-k"]),
    ("limit-train-0", "train --limit-train 0", ["--limit-train"]),
    ("weight-decay-negative", "train --weight-decay -1", ["--weight-decay", ">= 0"]),
    ("gamma-0", "train --gamma 0", ["--gamma", "> 0"]),
    ("seed-negative", "train --seed -1", ["--seed"]),
    ("noise-seed-negative", "train --noise-seed -2", ["--noise-seed"]),
    ("noise-from-file-without-file", "train --noise from_file", ["--noise", "noise_file"]),
    ("method-unknown", "train --method mixup", ["--method", "'mixup'"]),
    ("backbone-unknown", "train --backbone vgg16", ["--backbone", "'vgg16'"]),
    ("dataset-unknown", "train --dataset imagenet", ["--dataset", "'imagenet'"]),
    ("optimizer-unknown", "train --optimizer lion", ["--optimizer", "'lion'"]),
    ("amp-unknown", "train --amp fp8", ["--amp", "'fp8'"]),
    ("scheduler-unknown", "train --scheduler warmup", ["--scheduler", "warmup"]),
    ("device-unknown", "train --device tpu", ["--device", "'tpu'"]),
    ("preset-without-config", "train --preset cpu", ["--preset cpu", "--config"]),
    # -- train: --set ------------------------------------------------------------------------------
    ("set-no-equals", "train --set epochs", ["--set", "KEY=VALUE", "'epochs'"]),
    ("set-empty-key", "train --set =3", ["--set", "KEY=VALUE"]),
    ("set-unknown-key", "train --set epochz=3", ["--set epochz=3", "unknown config key epochz (did you mean epochs?)"]),
    ("set-int-text", "train --set epochs=ten", ["--set epochs=ten", "integer", "'ten'"]),
    ("set-float-text", "train --set lr=fast", ["--set lr=fast", "number", "'fast'"]),
    ("set-lr-nan", "train --set lr=.nan", ["--set lr=.nan", "> 0", "nan"]),
    ("set-batch-float", "train --set batch_size=2.5", ["--set batch_size=2.5", "integer"]),
    ("set-bool-text", "train --set deterministic=maybe", ["--set deterministic=maybe", "true or false"]),
    ("set-yaml-broken", "train --set milestones=[1,", ["--set milestones=[1,", "not a valid value"]),
    ("set-milestones-text", "train --set milestones=[a]", ["--set milestones=[a]", "epoch numbers"]),
    ("set-method-args-unknown", "train --set method=eac --set method_args.lamda=3",
     ["--set method_args.lamda=3", "method eac has no option lamda", "lam", "pairing"]),
    ("set-dataset-args-unknown", "train --set dataset_args.size=3",
     ["--set dataset_args.size=3", "dataset synthetic has no option size", "image_size"]),
    ("set-eval-dataset-args-unknown", "train --set eval_dataset_args.label=x",
     ["--set eval_dataset_args.label=x", "no option label"]),
    ("set-method-args-scalar", "train --set method_args=3", ["--set method_args=3", "mapping"]),
    ("set-nested-into-int", "train --set epochs.x=1", ["--set epochs.x=1", "integer"]),
    ("set-too-deep", "train --set method_args.a.b=1", ["--set method_args.a.b=1", "one level deep"]),
    ("set-amp", "train --set amp=fast", ["--set amp=fast", "auto, bf16, fp16, off"]),
    ("set-cache", "train --set cache=disk", ["--set cache=disk", "ram, gpu"]),
    ("set-channels-last", "train --set channels_last=sometimes", ["--set channels_last=sometimes", "auto, on, off"]),
    ("set-optimizer-impl", "train --set optimizer_impl=fast", ["--set optimizer_impl=fast", "fused"]),
    ("set-sampler", "train --set sampler=weighted", ["--set sampler=weighted", "balanced"]),
    ("set-trainer-owned-arg", "train --set method_args.input_size=64", ["--set method_args.input_size=64", "trainer"]),
    ("set-noise-kind", "train --set noise=gaussian", ["--set noise=gaussian", "symmetric"]),
    ("set-min-weight-match", "train --set min_weight_match=2", ["--set min_weight_match=2", "[0, 1]"]),
    ("set-eval-batch", "train --set eval_batch_size=0", ["--set eval_batch_size=0", ">= 1"]),
    ("set-limit-eval", "train --set limit_eval=-5", ["--set limit_eval=-5"]),
    # -- train: config files -----------------------------------------------------------------------
    ("config-missing", "train --config {d}/nope.yaml", ["{d}/nope.yaml", "not found"]),
    ("config-directory", "train --config {d}/cfg_dir.yaml", ["{d}/cfg_dir.yaml", "directory"]),
    ("config-binary", "train --config {d}/binary.yaml", ["{d}/binary.yaml"]),
    ("config-syntax", "train --config {d}/syntax.yaml", ["{d}/syntax.yaml:3", "YAML syntax error", "line 2"]),
    ("config-tab", "train --config {d}/tabs.yaml", ["{d}/tabs.yaml:2", "YAML syntax error"]),
    ("config-top-level-list", "train --config {d}/list.yaml", ["{d}/list.yaml", "mapping", "a list"]),
    ("config-top-level-scalar", "train --config {d}/scalar.yaml", ["{d}/scalar.yaml", "mapping", "a string"]),
    ("config-unknown-key", "train --config {d}/unknown.yaml", ["{d}/unknown.yaml:2", "unknown config key epochz"]),
    ("config-epochs-text", "train --config {d}/epochs_str.yaml",
     ["{d}/epochs_str.yaml:2", "epochs", "integer", "'ten'"]),
    ("config-lr-text", "train --config {d}/lr_str.yaml", ["{d}/lr_str.yaml:1", "lr", "number"]),
    ("config-lr-negative", "train --config {d}/lr_neg.yaml", ["{d}/lr_neg.yaml:3", "lr", "> 0"]),
    ("config-batch-float", "train --config {d}/bs_float.yaml", ["{d}/bs_float.yaml:1", "batch_size", "integer"]),
    ("config-bool-text", "train --config {d}/bool_str.yaml", ["{d}/bool_str.yaml:1", "deterministic"]),
    ("config-method-args-unknown", "train --config {d}/method_args.yaml",
     ["{d}/method_args.yaml:4", "method_args.lamda", "accepted: lam, pairing"]),
    ("config-dataset-args-unknown", "train --config {d}/dataset_args.yaml",
     ["{d}/dataset_args.yaml:4", "dataset_args.size", "image_size, landmarks, n, seed"]),
    ("config-method-args-list", "train --config {d}/method_args_list.yaml", ["{d}/method_args_list.yaml:1", "mapping"]),
    ("config-noise-kind", "train --config {d}/noise_kind.yaml", ["{d}/noise_kind.yaml:1", "noise", "'gaussian'"]),
    ("recipe-no-preset", "train --config {d}/recipe.yaml", ["{d}/recipe.yaml", "--preset", "cpu, paper"]),
    ("recipe-unknown-preset", "train --config {d}/recipe.yaml --preset gpu",
     ["{d}/recipe.yaml", "'gpu'", "cpu, paper"]),
    ("recipe-preset-bad-value", "train --config {d}/recipe.yaml --preset paper", ["{d}/recipe.yaml:6", "epochs"]),
    ("recipe-presets-list", "train --config {d}/presets_list.yaml --preset cpu",
     ["{d}/presets_list.yaml:2", "presets"]),
    ("config-plain-with-preset", "train --config {d}/unknown.yaml --preset cpu", ["{d}/unknown.yaml", "no presets"]),
    # -- train: --resume and checkpoints of a run (after the data and model are built) --------------
    ("resume-no-run", "train " + SYN + " --out-dir {d}/runs --name r_none --resume",
     ["--resume: no checkpoint at {d}/runs/r_none/checkpoints/last.pt", "no such run directory", "r_empty"]),
    ("resume-run-without-checkpoint", "train " + SYN + " --out-dir {d}/runs --name r_nodir_ckpt --resume",
     ["{d}/runs/r_nodir_ckpt/checkpoints/last.pt", "the run directory has none"]),
    ("resume-empty", "train " + SYN + " --out-dir {d}/runs --name r_empty --resume",
     ["{d}/runs/r_empty/checkpoints/last.pt", "empty file"]),
    ("resume-truncated", "train " + SYN + " --out-dir {d}/runs --name r_half --resume",
     ["{d}/runs/r_half/checkpoints/last.pt", "truncated or not a torch checkpoint"]),
    ("resume-weights-file", "train " + SYN + " --out-dir {d}/runs --name r_weights --resume",
     ["{d}/runs/r_weights/checkpoints/last.pt", "a weights file", "--weights"]),
    ("resume-unsafe-pickle", "train " + SYN + " --out-dir {d}/runs --name r_evil --resume",
     ["{d}/runs/r_evil/checkpoints/last.pt", "refused", "never executes code"]),
    ("resume-other-architecture", "train " + SYN + " --out-dir {d}/runs --name r_other --resume",
     ["{d}/runs/r_other/checkpoints/last.pt", "eac / resnet18 run", "baseline / resnet10"]),
    ("resume-incomplete", "train " + SYN + " --out-dir {d}/runs --name r_incomplete --resume",
     ["{d}/runs/r_incomplete/checkpoints/last.pt", "incomplete", "optimizer"]),
    ("resume-shapes", "train " + SYN + " --out-dir {d}/runs --name r_shapes --resume",
     ["{d}/runs/r_shapes/checkpoints/last.pt", "does not fit", "shape"]),
    ("resume-other-labels", "train " + SYN + " --out-dir {d}/runs --name r_labels --resume",
     ["{d}/runs/r_labels/checkpoints/last.pt", "training labels differ", "20 vs 32 images"]),
    ("weights-missing", "train " + SYN + " --out-dir {d}/runs --name w1 --weights {d}/nope.pth",
     ["{d}/nope.pth", "not found"]),
    ("weights-text", "train " + SYN + " --out-dir {d}/runs --name w2 --weights {d}/text.pt", ["{d}/text.pt"]),
    ("weights-unsafe", "train " + SYN + " --out-dir {d}/runs --name w3 --weights {d}/evil.pt",
     ["{d}/evil.pt", "refused", "posix.system"]),
    ("weights-other-architecture", "train " + SYN + " --out-dir {d}/runs --name w4 --weights {d}/r18_weights.pt",
     ["{d}/r18_weights.pt", "% of the backbone's tensors match", "unexpected", "layer1.1.conv1.weight"]),
    ("ldlva-neighbours-object-arrays", "train " + SYN + " --out-dir {d}/runs --name n1 --set method=ldlva "
     "--set method_args.neighbors={d}/nb_object.npz",
     ["{d}/nb_object.npz", "not a readable .npz", "pickled Python objects"]),
    ("ldlva-neighbours-csv-header-only", "train " + SYN + " --out-dir {d}/runs --name n2 --set method=ldlva "
     "--set method_args.neighbors={d}/nb_header.csv", ["{d}/nb_header.csv", "no rows"]),
    ("folder-truncated-png", "train --dataset folder --data-root {d}/fo_trunc --backbone resnet10 --input-size 32 "
     "--set test_split=null --out-dir {d}/runs --name f1 --no-progress",
     ["{d}/fo_trunc/train/sad/b.png", "corrupt or truncated"]),
    # -- eval / export ------------------------------------------------------------------------------
    ("eval-missing", "eval {d}/nope.pt", ["{d}/nope.pt", "no checkpoint"]),
    ("eval-run-without-checkpoint", "eval {d}/run_no_ckpt",
     ["{d}/run_no_ckpt/checkpoints/last.pt", "no checkpoints/last.pt"]),
    ("eval-empty", "eval {d}/empty.pt", ["{d}/empty.pt", "empty file"]),
    ("eval-truncated", "eval {d}/half.pt", ["{d}/half.pt", "truncated"]),
    ("eval-text", "eval {d}/text.pt", ["{d}/text.pt", "truncated or not a torch checkpoint"]),
    ("eval-weights-file", "eval {d}/r18_weights.pt", ["{d}/r18_weights.pt", "a weights file"]),
    ("eval-unsafe", "eval {d}/evil.pt", ["{d}/evil.pt", "refused", "posix.system"]),
    ("eval-inference-model", "eval {d}/inference.pt", ["{d}/inference.pt", "exported inference model"]),
    ("eval-config-invalid", "eval {d}/badcfg.pt", ["{d}/badcfg.pt", "run config", "epochs", ">= 1"]),
    ("eval-model-does-not-fit", "eval {d}/partial_model.pt", ["{d}/partial_model.pt", "does not fit", "missing"]),
    ("eval-no-config", "eval {d}/noconfig.pt", ["{d}/noconfig.pt", "not a ferlab run checkpoint"]),
    ("eval-dataset-arg-no-equals", "eval {d}/good.pt --dataset-arg n", ["--dataset-arg", "KEY=VALUE"]),
    ("eval-dataset-arg-unknown", "eval {d}/good.pt --dataset-arg sizes=3 --no-progress", ["sizes", "image_size"]),
    ("export-missing", "export {d}/nope.pt", ["{d}/nope.pt", "no checkpoint"]),
    ("export-unsafe", "export {d}/evil.pt", ["{d}/evil.pt", "refused"]),
    ("export-weights-file", "export {d}/r18_weights.pt", ["{d}/r18_weights.pt", "a weights file"]),
    # -- datasets: label files and roots ------------------------------------------------------------
    ("root-missing", "datasets ferplus --data-root {d}/nowhere", ["{d}/nowhere", "not found"]),
    ("root-missing-hidden-alias", "datasets ferplus --root {d}/nowhere", ["{d}/nowhere", "not found"]),
    ("ferplus-no-split-folder", "datasets ferplus --data-root {d}/fp_nosplit", ["{d}/fp_nosplit/FER2013Train"]),
    ("ferplus-empty-label-csv", "datasets ferplus --data-root {d}/fp_empty",
     ["{d}/fp_empty/FER2013Train/label.csv", "no rows"]),
    ("ferplus-columns", "datasets ferplus --data-root {d}/fp_cols", ["label.csv:1", "12 columns"]),
    ("ferplus-votes-text", "datasets ferplus --data-root {d}/fp_int", ["label.csv:2", "integers"]),
    ("ferplus-votes-negative", "datasets ferplus --data-root {d}/fp_neg", ["label.csv:2", "negative"]),
    ("ferplus-image-missing", "datasets ferplus --data-root {d}/fp_missing", ["zz.png", "not found"]),
    ("rafdb-duplicate", "datasets rafdb --data-root {d}/raf_dup", ["list_patition_label.txt:3", "train_00001.jpg",
                                                                   "line 1 with label 1, here 3"]),
    ("rafdb-neither-split", "datasets rafdb --data-root {d}/raf_split",
     ["list_patition_label.txt:2", "valid_00002.jpg"]),
    ("rafdb-label-range", "datasets rafdb --data-root {d}/raf_range", ["list_patition_label.txt:2", "outside 1..7"]),
    ("rafdb-label-text", "datasets rafdb --data-root {d}/raf_int", ["list_patition_label.txt:2", "'happy'"]),
    ("rafdb-columns", "datasets rafdb --data-root {d}/raf_cols", ["list_patition_label.txt:1"]),
    ("affectnet-va-nan", "datasets affectnet --data-root {d}/an_nan", ["training.csv:2", "valence nan"]),
    ("affectnet-va-range", "datasets affectnet --data-root {d}/an_range", ["training.csv:2", "arousal 1.7", "[-1, 1]"]),
    ("affectnet-expression", "datasets affectnet --data-root {d}/an_expr", ["training.csv:2", "expression 12"]),
    ("affectnet-expression-text", "datasets affectnet --data-root {d}/an_text", ["training.csv:2"]),
    ("affectnet-columns", "datasets affectnet --data-root {d}/an_cols", ["training.csv:1", "missing columns"]),
    ("fer2013-no-rows-for-split", "datasets fer2013 --data-root {d}/f13_nosplit.csv",
     ["f13_nosplit.csv", "'Training'"]),
    ("fer2013-header", "datasets fer2013 --data-root {d}/f13_header.csv", ["f13_header.csv:1", "header"]),
    ("fer2013-pixel-count", "datasets fer2013 --data-root {d}/f13_pixels.csv", ["f13_pixels.csv:3", "2304", "got 3"]),
    ("fer2013-emotion", "datasets fer2013 --data-root {d}/f13_emotion.csv", ["f13_emotion.csv:2", "emotion 9"]),
    ("fer2013-empty", "datasets fer2013 --data-root {d}/f13_empty.csv", ["f13_empty.csv:1"]),
    ("folder-no-classes", "datasets folder --data-root {d}/fo_noclass", ["{d}/fo_noclass", "no split folder"]),
    ("folder-no-images", "datasets folder --data-root {d}/fo_noimg", ["{d}/fo_noimg/train", "no images"]),
    ("split-unknown", "noise --dataset rafdb --data-root {d}/raf_ok --split valid", ["'valid'", "train, test"]),
    # -- images decoded (landmarks decodes a split before detecting) --------------------------------
    ("image-text", "landmarks --dataset folder --data-root {d}/fo_text --out {d}/o.npz --no-progress",
     ["{d}/fo_text/train/sad/notes.jpg", "not a readable image"]),
    ("image-decompression-bomb", "landmarks --dataset folder --data-root {d}/fo_bomb --out {d}/o.npz --no-progress",
     ["{d}/fo_bomb/train/sad/huge.png", "more pixels than Pillow decodes safely"]),
    # -- noise files --------------------------------------------------------------------------------
    ("noise-file-missing-name", "noise --dataset rafdb --data-root {d}/raf_ok --kind from_file "
     "--noise-file {d}/noise_missing.txt --manifest {d}/m.json", ["{d}/noise_missing.txt", "'train_00003.jpg'"]),
    ("noise-file-duplicate", "noise --dataset rafdb --data-root {d}/raf_ok --kind from_file "
     "--noise-file {d}/noise_dup.txt --manifest {d}/m.json", ["{d}/noise_dup.txt:4", "train_00002.jpg", "line 2"]),
    ("noise-file-too-few-rows", "noise --dataset rafdb --data-root {d}/raf_ok --kind from_file "
     "--noise-file {d}/noise_short.txt --manifest {d}/m.json", ["{d}/noise_short.txt", "2 of the 3 images", "1 rows"]),
    ("noise-file-label", "noise --dataset rafdb --data-root {d}/raf_ok --kind from_file "
     "--noise-file {d}/noise_label.txt --manifest {d}/m.json", ["{d}/noise_label.txt:2", "label 0"]),
    ("noise-file-empty", "noise --dataset rafdb --data-root {d}/raf_ok --kind from_file "
     "--noise-file {d}/noise_empty.txt --manifest {d}/m.json", ["{d}/noise_empty.txt", "no"]),
    ("noise-file-absent", "noise --dataset rafdb --data-root {d}/raf_ok --kind from_file "
     "--noise-file {d}/nope.txt --manifest {d}/m.json", ["{d}/nope.txt", "not found"]),
    ("noise-file-not-given", "noise --dataset rafdb --data-root {d}/raf_ok --kind from_file --manifest {d}/m.json",
     ["--kind from_file", "--noise-file"]),
    ("noise-kind", "noise --dataset rafdb --data-root {d}/raf_ok --kind gaussian", ["--kind", "'gaussian'"]),
    ("noise-rate", "noise --dataset rafdb --data-root {d}/raf_ok --rate 2 --manifest {d}/m.json", ["--rate", "[0, 1]"]),
    # -- neighbours and landmarks files -------------------------------------------------------------
    ("neighbors-k-0", "neighbors --config {d}/cfg_syn.yaml -k 0 --out {d}/o.npz", ["k must be in [1, 31]", "got 0"]),
    ("neighbors-coordinates-missing", "neighbors --config {d}/cfg_syn.yaml --space pseudo_va "
     "--coordinates {d}/nope.npy --out {d}/o.npz", ["{d}/nope.npy", "not found"]),
    ("neighbors-coordinates-text", "neighbors --config {d}/cfg_syn.yaml --space pseudo_va "
     "--coordinates {d}/coords.txt --out {d}/o.npz", ["{d}/coords.txt", "not a readable .npy"]),
    ("neighbors-coordinates-1d", "neighbors --config {d}/cfg_syn.yaml --space pseudo_va "
     "--coordinates {d}/coords_1d.npy --out {d}/o.npz", ["{d}/coords_1d.npy", "(N, A)"]),
    ("neighbors-checkpoint-unsafe", "neighbors --config {d}/cfg_syn.yaml --space features "
     "--checkpoint {d}/evil.pt --out {d}/o.npz --no-progress", ["{d}/evil.pt", "refused"]),
    ("neighbors-checkpoint-weights", "neighbors --config {d}/cfg_syn.yaml --space features "
     "--checkpoint {d}/r18_weights.pt --out {d}/o.npz --no-progress", ["{d}/r18_weights.pt", "a weights file"]),
    ("landmarks-nan", "neighbors --config {d}/cfg_lm_nan.yaml --space landmarks --out {d}/o.npz",
     ["{d}/lm_nan.npz", "NaN", "'000005'"]),
    ("landmarks-no-meta", "neighbors --config {d}/cfg_lm_meta.yaml --space landmarks --out {d}/o.npz",
     ["{d}/lm_nometa.npz", "no meta"]),
    ("landmarks-meta-no-size", "neighbors --config {d}/cfg_lm_size.yaml --space landmarks --out {d}/o.npz",
     ["{d}/lm_size.npz", "image_size"]),
    ("landmarks-rows", "neighbors --config {d}/cfg_lm_rows.yaml --space landmarks --out {d}/o.npz",
     ["{d}/lm_rows.npz", "10 landmark rows", "32 images"]),
    ("landmarks-text", "neighbors --config {d}/cfg_lm_text.yaml --space landmarks --out {d}/o.npz",
     ["{d}/lm_text.npz", "not a readable .npz"]),
    ("landmarks-missing", "neighbors --config {d}/cfg_lm_missing.yaml --space landmarks --out {d}/o.npz",
     ["{d}/nope.npz", "not found"]),
]


def _run(argv, capsys):
    try:
        rc = main(argv)
    except SystemExit as e:      # argparse's own errors
        rc = e.code
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("name,command,needles", CASES, ids=[c[0] for c in CASES])
def test_malformed_input_is_one_line_exit_2(d, capsys, name, command, needles):
    argv = shlex.split(command.format(d=d))
    rc, err = _run(argv, capsys)
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith(f"ferlab {argv[0]}: error: "), err
    for needle in needles:
        assert needle.format(d=d) in lines[-1], (needle, lines[-1])
    assert "weights_only=False" not in err and "weights_only` set to `False" not in err


def test_a_busy_run_directory_is_refused_before_any_data_is_read(d, capsys):
    run = d / "runs" / "busy"
    with RunLock(run):
        rc, err = _run(shlex.split(f"train {SYN} --out-dir {d}/runs --name busy"), capsys)
    assert rc == 2 and "Traceback" not in err
    assert f"{run} is in use by another training process: pid {os.getpid()}" in err.splitlines()[-1]
    assert not (run / "config.yaml").exists()


def test_debug_shows_the_traceback(d, capsys):
    with pytest.raises(Exception, match="empty file"):
        main(["eval", str(d / "empty.pt"), "--debug"])


@pytest.mark.slow
def test_the_installed_command_prints_one_line_and_exits_2(d):
    """The real entry point, in a fresh process, for a config and a checkpoint error."""
    for argv, needle in ((["train", "--config", str(d / "syntax.yaml")], f"{d}/syntax.yaml:3"),
                         (["eval", str(d / "evil.pt")], "refused")):
        p = subprocess.run([sys.executable, "-m", "ferlab.cli", *argv], capture_output=True, text=True,
                           env={**os.environ, "FERLAB_DEBUG": "0"}, check=False)
        assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
        assert p.stderr.strip().splitlines()[-1].startswith(f"ferlab {argv[0]}: error: ") and needle in p.stderr


def test_pickle_in_a_weights_file_never_runs(d, tmp_path):
    marker = tmp_path / "ran"

    class Touch:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    with open(tmp_path / "w.pkl", "wb") as f:
        pickle.dump({"conv1.weight": Touch()}, f)
    torch.save({"model": {"x": Touch()}, "config": {}}, tmp_path / "w.pt")
    for argv in (["eval", str(tmp_path / "w.pt")],
                 ["train", *shlex.split(SYN), "--out-dir", str(tmp_path), "--weights", str(tmp_path / "w.pkl")]):
        assert main(argv) == 2
    assert not marker.exists()
