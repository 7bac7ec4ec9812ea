"""A user's own images end to end: the commands of the docs page "Train on your own data", run as written.

A class-folder dataset of real PNG files with only ``train/`` and ``test/``; two methods trained with
30% symmetric noise through the CLI from method recipes written for FERPlus, evaluated, exported,
a flat folder predicted to CSV, and figures rebuilt from the runs by path.
"""
import csv
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ferlab.cli import main

REPO = Path(__file__).resolve().parents[1]
CLASSES = {"happiness": "happy", "sadness": "sad", "surprise": "surprise"}
#: what the test adds to each documented `ferlab train` command so that CI takes seconds (the page says so)
TINY = ["--backbone", "resnet10", "--input-size", "32", "--image-size", "32", "--epochs", "2", "--batch-size", "8",
        "--no-progress"]


def readme_commands() -> list[str]:
    """The `ferlab ...` lines of the section "Commands" of docs/own-data.md (`\\` joined)."""
    text = (REPO / "docs" / "own-data.md").read_text()
    section = text.split("## Commands", 1)[1].split("\n## ", 1)[0]
    lines, cmds = section.splitlines(), []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("ferlab "):
            cmd = line.strip()
            while cmd.endswith("\\"):
                i += 1
                cmd = cmd[:-1].rstrip() + " " + lines[i].strip()
            cmds.append(cmd)
        i += 1
    return cmds


def write_faces(root: Path, per_class: dict[str, int], size: int = 48, seed: int = 7) -> None:
    """Synthetic faces of three expressions as PNG files: ``root/<split>/<class>/<class>NNN.png`` and a
    flat ``root/../new_faces`` folder (``per_class["new"]`` images per class)."""
    from ferlab import classes as C
    from ferlab.data.synthetic import render_faces
    want = {C.BASIC7.index(k): v for k, v in CLASSES.items()}
    need = sum(per_class.values())
    d = render_faces(12 * need, seed, size)
    count = {}
    for img, lab in zip(d["images"], d["labels"]):
        if int(lab) not in want:
            continue
        name = want[int(lab)]
        i = count[name] = count.get(name, -1) + 1
        edges = np.cumsum(list(per_class.values()))
        split = list(per_class)[int(np.searchsorted(edges, i, side="right"))] if i < edges[-1] else None
        if split is None:
            continue
        folder = root.parent / "new_faces" if split == "new" else root / split / name
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{name}{i:03d}.png")
    assert all(count.get(n, 0) >= edges[-1] - 1 for n in CLASSES.values()), count


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    write_faces(tmp_path / "faces", {"train": 10, "test": 4, "new": 2})
    (tmp_path / "recipes").symlink_to(REPO / "recipes")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.slow
def test_readme_own_data_commands_end_to_end(workdir, capsys):
    cmds = readme_commands()
    assert [c.split()[1] for c in cmds] == ["datasets", "noise", "train", "train", "eval", "eval", "export", "predict",
                                           "figures", "figures", "figures"]
    outputs = []
    for cmd in cmds:
        argv = shlex.split(cmd)[1:]
        if argv[0] == "train":
            argv += TINY
        assert main(argv) == 0, cmd
        out = capsys.readouterr()
        outputs.append(out.out + out.err)
        assert "Traceback" not in outputs[-1] and not re.search(r"\bnan\b", outputs[-1], re.I), (cmd, outputs[-1])
    datasets, _, train_base, train_eac, eval_test, eval_val, _, predict = outputs[:8]

    # every split counted; noise names are <class>/<file>, as `--noise from_file` matches them
    assert "folder train: 30 images, 3 classes {'happy': 10, 'sad': 10, 'surprise': 10}" in datasets
    assert "folder test: 12 images" in datasets and "val" not in datasets
    names = [line.split()[0] for line in Path("faces-noise30.txt").read_text().splitlines()]
    assert names[0] == "happy/happy000.png" and len(set(names)) == 30

    # the FERPlus recipes trained on the folder: their dataset keys ignored with one note, honest summary
    for out, name in ((train_base, "baseline-faces"), (train_eac, "eac-faces")):
        assert re.search(r"note: recipes/\w+/ferplus.yaml is written for dataset ferplus; its dataset settings "
                         r"\(dataset_args=.*\) do not apply to dataset folder and are ignored", out)
        assert "mean of all 2 epochs" in out and "mean of last 5" not in out
        assert re.search(r"at best val \(epoch [12]\)", out)
        assert "hold-out 0.2 of train (seed 0)" in out and "lr per group" in out
        run = Path("runs") / name
        summary = json.loads((run / "summary.json").read_text())
        assert summary["classes"] == ["happy", "sad", "surprise"]
        assert summary["dataset"] == "folder-train"
        for f in ("metrics.csv", "checkpoints/last.pt", "checkpoints/best.pt"):
            assert (run / f).is_file(), f
        history = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        best = max(history, key=lambda r: (r["val_acc"], -r["epoch"]))
        assert summary["val"]["best_epoch"] == best["epoch"]
        assert torch.load(run / "checkpoints" / "best.pt", weights_only=True)["epoch"] == best["epoch"]

    # eval of the test split and of the best checkpoint on the hold-out validation split
    assert re.search(r"test \(test, 12 images\): accuracy", eval_test)
    history = [json.loads(x) for x in Path("runs/eac-faces/metrics.jsonl").read_text().splitlines()]
    best_val = max(r["val_acc"] for r in history)
    m = re.search(r"val \(hold-out 0.2 of train, 6 images\): accuracy ([0-9.]+)", eval_val)
    assert m and float(m.group(1)) == pytest.approx(best_val, abs=1e-4)

    # the exported file carries the classes; predictions of the flat folder name them
    meta = torch.load("eac-faces.pt", weights_only=True)
    assert meta["classes"] == ["happy", "sad", "surprise"] and meta["image_size"] == 32
    with open("preds.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["path", "prediction", "prob_happy", "prob_sad", "prob_surprise"]
    assert len(rows) == 6 and all(Path(r["path"]).parent.name == "new_faces" for r in rows)
    for r in rows:
        probs = [float(r[f"prob_{c}"]) for c in ("happy", "sad", "surprise")]
        assert sum(probs) == pytest.approx(1, abs=1e-5)
        assert r["prediction"] == ("happy", "sad", "surprise")[int(np.argmax(probs))]
    cams = sorted(Path("cams").glob("*.png"))
    assert len(cams) == 6 and Image.open(cams[0]).size == (48, 48)     # overlays at the original image size
    assert "6 images -> preds.csv" in predict

    # figures from the two runs, by path
    manifest = json.loads(Path("figures-faces/manifest.json").read_text())["figures"]
    assert set(manifest) == {"curves", "attention", "confusion"}
    for entry in manifest.values():
        assert entry["runs"] == ["runs/baseline-faces", "runs/eac-faces"]
        assert all(Path(f).stat().st_size > 0 for f in entry["files"])


@pytest.mark.slow
def test_folder_without_val_trains_without_validation(workdir, capsys):
    argv = ["train", "--method", "baseline", "--dataset", "folder", "--data-root", "faces", "--name", "noval",
            *TINY[:-5], "--epochs", "1", "--batch-size", "8", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr()
    text = out.out + out.err
    assert "folder has no split 'val' under faces: training without validation" in text
    assert "no validation split" in text and "best val" not in text and not re.search(r"\bnan\b", text, re.I)
    assert "mean of all 1 epoch " in text
    run = Path("runs/noval")
    assert not (run / "checkpoints" / "best.pt").exists()
    summary = json.loads((run / "summary.json").read_text())
    assert "val" not in summary and "best_val" not in summary["protocol"]
    assert main(["eval", "runs/noval", "--split", "val", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "the run has no val split" in err
