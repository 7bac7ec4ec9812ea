"""A write that fails on the machine -- no space left on device, permission denied, read-only file
system, and PyTorch's serializer reporting a full disk as ``RuntimeError: [enforce fail at
inline_container.cc] unexpected pos`` -- at each kind of file ferlab writes: one line naming the
file and the reason, exit status 2, the earlier file unchanged, no temp file left.

The failures are injected where ferlab opens files (:mod:`ferlab.atomic`'s ``open``): at the open
(EACCES, EROFS) or half-way through the write (ENOSPC). One case fills a real 80 MiB tmpfs (needs
unprivileged user namespaces; skipped where there are none)."""
import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ferlab.atomic
from ferlab.atomic import TEMP_NAME, append_text, save_atomic, write_text_atomic
from ferlab.cli import main
from ferlab.engine.checkpoint import save_cache_npz, save_npz_atomic
from ferlab.errors import WriteError

REASON = {errno.ENOSPC: "No space left on device", errno.EACCES: "Permission denied",
          errno.EROFS: "Read-only file system"}


def target_name(path) -> str:
    """The file a path is written for: ``.last.pt.tmp123`` -> ``last.pt``."""
    name = Path(path).name
    m = TEMP_NAME.match(name)
    return name[1:name.rindex(".tmp")] if m else name


class _FullFile:
    """A file whose writes stop half-way with ``code`` (a disk filling up)."""

    def __init__(self, f, code):
        self._f, self._code = f, code

    def write(self, data):
        self._f.write(data[: len(data) // 2])
        raise OSError(self._code, os.strerror(self._code))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()

    def __getattr__(self, name):
        return getattr(self._f, name)


def inject(monkeypatch, name: str, code: int) -> None:
    """Writes of the file named ``name`` fail with ``code``: ENOSPC half-way, others at the open."""
    real = open

    def fake_open(path, mode="r", *args, **kw):
        if any(c in mode for c in "wax") and target_name(path) == name:
            if code != errno.ENOSPC:
                raise OSError(code, os.strerror(code), str(path))
            return _FullFile(real(path, mode, *args, **kw), code)
        return real(path, mode, *args, **kw)
    monkeypatch.setattr(ferlab.atomic, "open", fake_open, raising=False)


def no_temp_files(folder: Path) -> list[Path]:
    return [p for p in Path(folder).rglob("*") if TEMP_NAME.match(p.name)]


def one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith(f"ferlab {command}:")]
    assert len(lines) == 1, err
    return lines[0]


# -- the atomic writers themselves ---------------------------------------------------------------------

WRITERS = {
    "checkpoint.pt": lambda p: save_atomic({"w": torch.zeros(1000)}, p),
    "summary.json": lambda p: write_text_atomic(json.dumps({"a": 1}), p),
    "signals.npz": lambda p: save_npz_atomic(p, x=np.zeros(1000)),
    "metrics.jsonl": lambda p: append_text(p, '{"epoch": 2}\n'),
}


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS])
@pytest.mark.parametrize("name", list(WRITERS))
def test_each_writer_names_the_file_keeps_the_earlier_one_and_leaves_no_temp_file(tmp_path, monkeypatch, name, code):
    path = tmp_path / name
    path.write_bytes(b"earlier\n")
    inject(monkeypatch, name, code)
    with pytest.raises(WriteError) as info:
        WRITERS[name](path)
    e = info.value
    assert str(e).startswith(f"{path}: cannot write it: {REASON[code]}")
    assert str(e).endswith(f"the previous {name} is unchanged")
    assert "\n" not in str(e) and e.errno == code and e.filename == str(path) and isinstance(e, OSError)
    assert path.read_bytes() == b"earlier\n"
    assert not no_temp_files(tmp_path)


def test_torch_serializer_error_on_a_full_disk(tmp_path, monkeypatch):
    """torch.save's own short-write error (no OSError reaches ferlab): a disk with no space left is
    said to be full; otherwise torch's first line is kept."""
    def short_write(obj, f):
        f.write(b"PK" * 100)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
    monkeypatch.setattr(torch, "save", short_write)
    path = tmp_path / "last.pt"
    path.write_bytes(b"earlier")
    monkeypatch.setattr(ferlab.atomic, "_free", lambda folder: 0)
    with pytest.raises(WriteError, match=r"last.pt: cannot write it: No space left on device \(torch.save stopped "
                                         r"short\); 0 B free in .*; the previous last.pt is unchanged$"):
        save_atomic({}, path)
    monkeypatch.setattr(ferlab.atomic, "_free", lambda folder: 10 << 30)
    with pytest.raises(WriteError, match=r"cannot write it: torch.save failed \(\[enforce fail at inline_container"):
        save_atomic({}, path)
    assert path.read_bytes() == b"earlier" and not no_temp_files(tmp_path)


def test_an_unwritable_folder_is_named(tmp_path, monkeypatch):
    def refuse(self, *a, **kw):
        raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(self))
    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(WriteError, match=r"out/a.json: cannot write it: Permission denied \(creating the folder "):
        write_text_atomic("{}", tmp_path / "out" / "a.json")


def test_other_errors_keep_their_type_and_leave_no_temp_file(tmp_path):
    def bug(f):
        f.write(b"x")
        raise ValueError("a bug")
    with pytest.raises(ValueError, match="a bug"):
        ferlab.atomic.write_atomic(tmp_path / "a.bin", bug)
    assert not list(tmp_path.iterdir())


def test_a_cache_that_cannot_be_written_is_a_note(tmp_path, monkeypatch, capsys):
    inject(monkeypatch, "signals.npz", errno.EROFS)
    assert save_cache_npz(tmp_path / "signals.npz", x=np.zeros(3)) is False
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"note: {tmp_path / 'signals.npz'}: cannot write it: Read-only file system")
    assert not list(tmp_path.iterdir())


# -- the run files of `ferlab train` ---------------------------------------------------------------------

TRAIN_FULL_SIZE = ["train", "--dataset", "synthetic", "--set", "dataset_args.n=96", "--image-size", "32", "--backbone",
                   "resnet10", "--input-size", "32", "--batch-size", "32", "--lr", "0.001", "--device", "cpu",
                   "--noise", "symmetric", "--noise-rate", "0.3", "--limit-eval", "16", "--no-progress", "--name", "r"]
#: the same run on a ResNet-10 of widths 8-64: checkpoints of ~1 MB instead of 59 MB
TRAIN = [*TRAIN_FULL_SIZE, "--set", "backbone_args.widths=[8, 16, 32, 64]"]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A finished one-epoch run (every run file exists)."""
    out = tmp_path_factory.mktemp("runs")
    assert main([*TRAIN, "--epochs", "1", "--out-dir", str(out)]) == 0
    return out


@pytest.mark.parametrize("name,code", [("config.yaml", errno.EROFS), ("noise.json", errno.EACCES),
                                       ("last.pt", errno.ENOSPC), ("last.pt", errno.EACCES),
                                       ("metrics.jsonl", errno.ENOSPC), ("metrics.csv", errno.EACCES),
                                       ("summary.json", errno.EROFS)])
def test_train_run_file_write_error(tmp_path, monkeypatch, capsys, base_run, name, code):
    """`ferlab train --resume` to a second epoch with one run file failing: exit 2, one line naming
    the file, every run file as the first epoch left it, no temp file; once the file can be written,
    --resume finishes."""
    shutil.copytree(base_run, tmp_path, dirs_exist_ok=True)
    run = tmp_path / "r"
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    target = next(p for p in before if p.name == name)
    capsys.readouterr()
    inject(monkeypatch, name, code)
    assert main([*TRAIN, "--epochs", "2", "--out-dir", str(tmp_path), "--resume"]) == 2
    line = one_error_line(capsys, "train")
    assert line.startswith(f"ferlab train: error: {target}: cannot write it: {REASON[code]}"), line
    if name == "last.pt":
        assert line.endswith("last.pt holds the end of epoch 1: --resume continues from there once the file "
                             "can be written")
    assert target.read_bytes() == before[target]
    assert not no_temp_files(run)
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"] in (1, 2)
    monkeypatch.undo()
    assert main([*TRAIN, "--epochs", "2", "--out-dir", str(tmp_path), "--resume"]) == 0
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 2


# -- the other commands' outputs -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def face(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "face.png"
    Image.fromarray(np.full((32, 32, 3), 120, np.uint8)).save(path)
    return path


NOISE = ["noise", "--dataset", "synthetic", "--split", "val", "--image-size", "16", "--out", "{out}/labels.txt"]
CASES = {
    "predict": (["predict", "{run}", "{face}", "--out", "{out}/preds.csv", "--no-progress"], "preds.csv"),
    "predict-cam": (["predict", "{run}", "{face}", "--out", "{out}/preds.csv", "--cam", "{out}", "--no-progress"],
                    "face-{cls}.png"),
    "export": (["export", "{run}", "--out", "{out}/model.pt"], "model.pt"),
    "noise": (NOISE, "labels.txt"),
    "noise-manifest": (NOISE, "labels.txt.json"),
    "figures": (["figures", "curves", "{run}", "--out", "{out}"], "curves.svg"),
    "figures-manifest": (["figures", "curves", "{run}", "--out", "{out}"], "manifest.json"),
    "audit": (["audit", "{run}", "--out", "{out}", "--no-progress"], "label-audit.csv"),
}


@pytest.mark.filterwarnings("ignore:class activation maps")
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_command_output_write_error(tmp_path, monkeypatch, capsys, base_run, face, case, code):
    args, name = CASES[case]
    out = tmp_path / "out"
    out.mkdir()
    run = tmp_path / "r"
    shutil.copytree(base_run / "r", run)
    if "{cls}" in name:           # the overlay is named by the predicted class
        assert main(["predict", str(run), str(face), "--out", str(tmp_path / "p.csv"), "--no-progress"]) == 0
        name = name.format(cls=(tmp_path / "p.csv").read_text().splitlines()[1].split(",")[1])
    target = out / name
    earlier = json.dumps({"figures": {}}) if name == "manifest.json" else "earlier\n"
    target.write_text(earlier)
    capsys.readouterr()
    inject(monkeypatch, name, code)
    argv = [a.format(run=run, face=face, out=out) for a in args]
    command = argv[0]
    assert main(argv) == 2
    line = one_error_line(capsys, command)
    assert line.startswith(f"ferlab {command}: error: {target}: cannot write it: {REASON[code]}"), line
    assert line.endswith(f"the previous {name} is unchanged")
    assert target.read_text() == earlier
    assert not no_temp_files(tmp_path)


# -- a real full disk ------------------------------------------------------------------------------------

FILL = """
set -e
mkdir -p "$MNT" && mount -t tmpfs -o size=80m tmpfs "$MNT"
"$PY" -m ferlab.cli $ARGS --epochs 1 --out-dir "$MNT" > /dev/null 2>&1
"$PY" -c "import torch; print(torch.load('$MNT/r/checkpoints/last.pt', weights_only=True)['epoch'])" > "$OUT/before"
set +e
"$PY" -m ferlab.cli $ARGS --epochs 2 --out-dir "$MNT" --resume > /dev/null 2> "$OUT/err"
echo $? > "$OUT/rc"
"$PY" -c "import torch; print(torch.load('$MNT/r/checkpoints/last.pt', weights_only=True)['epoch'])" > "$OUT/after"
ls -A "$MNT/r" "$MNT/r/checkpoints" > "$OUT/files"
"""


@pytest.mark.slow
def test_a_real_full_disk(tmp_path):
    """An 80 MiB tmpfs holds one checkpoint of the run (59 MB) but not a second beside it: the
    resumed run's epoch-2 checkpoint fails in torch.save; the user gets one line, exit 2, and the
    epoch-1 checkpoint."""
    if not shutil.which("unshare"):
        pytest.skip("no unshare")
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True,
                           check=False)
    if probe.returncode:
        pytest.skip("no unprivileged user and mount namespaces here")
    args = " ".join(a for a in TRAIN_FULL_SIZE if a != "--no-progress") + " --no-progress --set val_split=null"
    env = {**os.environ, "MNT": str(tmp_path / "mnt"), "OUT": str(tmp_path), "PY": sys.executable, "ARGS": args,
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", FILL], env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    err = (tmp_path / "err").read_text()
    lines = [line for line in err.splitlines() if line.startswith("ferlab train:")]
    assert (tmp_path / "rc").read_text().strip() == "2", err[-3000:]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    assert lines[0].startswith(f"ferlab train: error: {tmp_path / 'mnt' / 'r' / 'checkpoints' / 'last.pt'}: cannot "
                               f"write it: No space left on device"), lines[0]
    assert (tmp_path / "before").read_text().strip() == (tmp_path / "after").read_text().strip() == "1"
    assert not [f for f in (tmp_path / "files").read_text().split() if ".tmp" in f]
