"""Predictor: every input type users hold gives the training pipeline's own predictions."""
import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ferlab.cli import main
from ferlab.data import DatasetError, build_dataset
from ferlab.engine.config import TrainConfig
from ferlab.engine.trainer import fit, load_run_method
from ferlab.predictor import Predictor


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A one-epoch baseline on a 3-class folder of 40 px PNGs, cached at 32 px, input 24 px (so both
    resizes of the eval transform happen)."""
    from ferlab.data.synthetic import render_faces
    root = tmp_path_factory.mktemp("pred")
    d = render_faces(90, 3, 40)
    for split, rows in (("train", range(0, 60)), ("test", range(60, 90))):
        for i in rows:
            lab = int(d["labels"][i]) % 3
            folder = root / "faces" / split / ("abc"[lab] + "-class")
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(d["images"][i]).save(folder / f"{i:03d}.png")
    Image.fromarray(d["images"][0][..., 0]).save(root / "gray.png")                # a single-channel file
    fit(TrainConfig(name="r", out_dir=str(root / "runs"), method="baseline", dataset="folder",
                    data_root=str(root / "faces"), dataset_args={"image_size": 32}, backbone="resnet10",
                    input_size=24, epochs=1, batch_size=16, progress=False))
    yield root
    shutil.rmtree(root, ignore_errors=True)             # module-scoped: free the disk before the session ends


@pytest.mark.slow
def test_every_input_type_gives_the_same_probabilities(run):
    p = Predictor.load(run / "runs" / "r")
    assert p.classes == ("a-class", "b-class", "c-class") and p.image_size == 32 and p.input_size == 24
    f = sorted((run / "faces" / "test").rglob("*.png"))[0]
    arr = np.array(Image.open(f).convert("RGB"))
    ref = p(str(f)).probs
    assert ref.shape == (1, 3) and ref.sum() == pytest.approx(1, abs=1e-6)
    for x in (f, Image.open(f), arr, torch.from_numpy(arr).permute(2, 0, 1).contiguous(),
              torch.from_numpy(arr).permute(2, 0, 1)[None]):
        assert np.array_equal(p(x).probs, ref), type(x)
    gray = run / "gray.png"
    g = np.array(Image.open(gray))
    assert g.ndim == 2
    for x in (gray, Image.open(gray), g, g[..., None], torch.from_numpy(g), torch.from_numpy(g)[None]):
        assert np.array_equal(p(x).probs, p(str(gray)).probs), type(x)
    out = p([f, arr, gray])
    assert out.labels == [p.classes[i] for i in out.probs.argmax(1)] and len(out) == 3
    assert out.to_dicts()[0]["probs"] == pytest.approx(dict(zip(p.classes, ref[0].tolist())))


@pytest.mark.slow
def test_predictions_equal_the_training_pipeline_and_the_export(run, tmp_path):
    """File in -> the logits evaluation computes from the dataset cache; export -> the same."""
    ck = run / "runs" / "r" / "checkpoints" / "last.pt"
    method, _, _ = load_run_method(ck, "cpu")
    ds = build_dataset("folder", run / "faces", "test", image_size=32).preload(progress=False)
    with torch.no_grad():
        ref = method.predict(method.prepare(ds.get_batch(np.arange(len(ds)))["image"])).softmax(1).numpy()
    from_files = Predictor.load(ck, amp="off").predict(ds.paths, batch_size=7)          # several batches
    assert np.allclose(from_files.probs, ref, atol=1e-6)
    # the default (bf16 autocast where the CPU computes it) stays within bf16's precision of float32
    assert np.abs(Predictor.load(ck).predict(ds.paths).probs - ref).max() < 0.03
    out = tmp_path / "model.pt"
    assert main(["export", str(run / "runs" / "r"), "--out", str(out)]) == 0
    exported = Predictor.load(out, amp="off")
    assert exported.classes == from_files.classes and exported.image_size == 32
    assert np.allclose(exported.predict(ds.paths).probs, ref, atol=1e-6)


def test_predict_cli_globs_and_batches(run, tmp_path, capsys):
    out = tmp_path / "p.csv"
    pattern = str(run / "faces" / "test" / "a-class" / "*.png")
    assert main(["predict", str(run / "runs" / "r"), pattern, str(run / "gray.png"), "--out", str(out),
                 "--batch-size", "3", "--no-progress"]) == 0
    with open(out) as f:
        rows = list(csv.DictReader(f))
    files = sorted(Path(pattern).parent.glob("*.png")) + [run / "gray.png"]
    assert [r["path"] for r in rows] == [str(f) for f in files]
    probs = Predictor.load(run / "runs" / "r").predict(files).probs
    assert np.allclose([[float(r[f"prob_{c}"]) for c in ("a-class", "b-class", "c-class")] for r in rows], probs,
                       atol=1e-6)
    capsys.readouterr()
    assert main(["predict", str(run / "runs" / "r"), str(tmp_path / "missing*.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "matches no image file" in err


def test_bad_inputs_are_named(run):
    p = Predictor.load(run / "runs" / "r")
    with pytest.raises(TypeError, match="uint8"):
        p(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        p(np.zeros((8, 8, 4), dtype=np.uint8))
    with pytest.raises(DatasetError, match="nope.png: image file not found"):
        p(run / "nope.png")
