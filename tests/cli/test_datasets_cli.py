"""``ferlab datasets NAME --data-root DIR``: the flag every command takes; ``--root`` still works, unlisted."""
import argparse

import numpy as np
from PIL import Image

from ferlab.cli import build_parser, main


def write_folder(root, counts):
    for split, per_class in counts.items():
        for cls, n in per_class.items():
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(root / split / cls / f"{i}.png")


def test_data_root_counts_every_split_and_root_is_a_hidden_alias(tmp_path, capsys):
    write_folder(tmp_path / "faces", {"train": {"happy": 3, "sad": 2}, "test": {"happy": 1, "sad": 1}})
    assert main(["datasets", "folder", "--data-root", str(tmp_path / "faces")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == ["folder train: 5 images, 2 classes {'happy': 3, 'sad': 2}",
                                "folder test: 2 images, 2 classes {'happy': 1, 'sad': 1}"]
    assert main(["datasets", "folder", "--root", str(tmp_path / "faces")]) == 0
    assert capsys.readouterr().out == out

    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    text = action.choices["datasets"].format_help()
    assert "--data-root DIR" in text and "--root" not in text
