"""FERPlus prepared from the two files its authors publish, as FERPlus' own generator writes it.

Inputs:

* ``fer2013.csv`` (Kaggle, ICML 2013 challenge): columns ``emotion`` (0 Angry ... 6 Neutral),
  ``pixels`` (2304 space-separated grey values of a 48x48 image) and ``Usage`` (``Training``,
  ``PublicTest``, ``PrivateTest``); 35,887 rows.
* ``fer2013new.csv`` (Microsoft FERPlus): one row per ``fer2013.csv`` row, in the same order:
  ``Usage``, ``Image name`` (blank where FERPlus judged the image not usable), and the 10 vote
  counts ``neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF``.

The rows are joined by position, never by file name: FERPlus' names are not row numbers (from row 60
on, ``fer0000059.png``, they lag behind the row number, and a few names occur on two rows).

Outputs (the layout :func:`ferlab.data.ferplus.ferplus` reads)::

    OUT/FER2013Train/*.png + label.csv     (Usage Training)
    OUT/FER2013Valid/*.png + label.csv     (Usage PublicTest)
    OUT/FER2013Test/*.png  + label.csv     (Usage PrivateTest)
    OUT/fer2013_labels.csv                 (the original FER2013 label of every row)

As FERPlus' generator does: a row whose image name is blank writes nothing; every other row writes
its pixels, unchanged, to ``<folder>/<image name>`` (an 8-bit greyscale PNG stored uncompressed,
``compress_level=0``); a name that two rows of a folder share ends up holding the later row's
pixels. ``label.csv`` has no header and one row per PNG, ``name,"(0, 0, 48, 48)",n0,...,n9``
(the face box is the whole image), in file-name order (for every name used once this is the csv's
order); for a name written twice its row carries the later row's votes, those of the pixels in the
file -- FERPlus' generator appends a ``label.csv`` row per csv row, listing such a file twice.

``fer2013_labels.csv`` (header ``row,usage,image_name,fer2013_emotion,status``, one row per csv row):

* ``ferplus_dropped``: blank image name, no PNG; ``fer2013_emotion`` -1.
* ``no_pixels``: a later row of the same folder reuses the name, so the PNG holds that row's
  pixels; -1.
* ``unique``: the pixels occur in no other PNG of the split; the csv's ``emotion``.
* ``dup_same_label``: several PNGs of the split hold exactly these pixels, all with this emotion.
* ``ambiguous``: several PNGs of the split hold exactly these pixels with different emotions; -1
  (the image has no single FER2013 label; ``label_mode="fer2013"`` leaves it out).
"""
from __future__ import annotations

import csv
import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import make_dirs, write_atomic
from ..errors import WriteError
from .errors import DatasetError

#: rows of the full ``fer2013.csv`` and ``fer2013new.csv``
FER2013_ROWS = 35887
#: ``Usage`` -> the folder FERPlus writes its images to
FOLDERS = {"Training": "FER2013Train", "PublicTest": "FER2013Valid", "PrivateTest": "FER2013Test"}
#: the vote columns of ``fer2013new.csv``, in ``label.csv`` order
VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                "unknown", "NF")
#: the face box FERPlus' ``label.csv`` gives every image: the whole 48x48 image
FACE_BOX = "(0, 0, 48, 48)"
LABELS_HEADER = ("row", "usage", "image_name", "fer2013_emotion", "status")
STATUSES = ("unique", "dup_same_label", "ambiguous", "ferplus_dropped", "no_pixels")
SIDE = 48


@dataclass
class Fer2013Rows:
    """The rows of a ``fer2013.csv``: ``emotion`` (N,) int64 in 0..6, ``usage`` N strings,
    ``pixels`` (N, 48, 48) uint8, ``lines`` N line numbers in the file."""
    path: Path
    emotion: np.ndarray
    usage: list[str]
    pixels: np.ndarray
    lines: list[int]


@dataclass
class FerplusRows:
    """The rows of a ``fer2013new.csv``: ``usage``, ``name`` (``""`` where blank), ``votes``
    (N, 10) int64 in :data:`VOTE_COLUMNS` order, ``lines`` N line numbers in the file."""
    path: Path
    usage: list[str]
    name: list[str]
    votes: np.ndarray
    lines: list[int]


@dataclass
class PreparedFerplus:
    """What :func:`prepare_ferplus` wrote. ``splits``: folder -> ``{"rows", "images", "dropped",
    "written_twice"}`` (csv rows of that Usage, PNG files, rows with a blank name, names two rows
    share); ``statuses``: ``fer2013_labels.csv`` status -> rows."""
    out: Path
    rows: int
    splits: dict[str, dict[str, int]] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def full(self) -> bool:
        """Whether the csvs had the 35,887 rows of the full FER2013."""
        return self.rows == FER2013_ROWS


def _columns(path: Path, header: list[str] | None, need: tuple[str, ...], what: str) -> dict[str, int]:
    """Column index of each name in ``need`` (header cells compared stripped)."""
    if header is None:
        raise DatasetError(f"{path}: empty file, expected {what}")
    cells = [h.strip() for h in header]
    missing = [c for c in need if c not in cells]
    if missing:
        raise DatasetError(f"{path}:1: header lacks {', '.join(missing)} (expected {what}; got {','.join(cells)})")
    return {c: cells.index(c) for c in need}


def _open_csv(path: Path, what: str):
    if not path.is_file():
        raise DatasetError(f"{path}: not found (expected {what})" if not path.is_dir()
                           else f"{path}: a directory, expected {what}")
    return open(path, newline="", encoding="utf-8", errors="replace")


def _usage(path: Path, line: int, text: str) -> str:
    if text not in FOLDERS:
        raise DatasetError(f"{path}:{line}: Usage {text!r}, expected one of {', '.join(FOLDERS)}")
    return text


def read_fer2013(path: str | Path) -> Fer2013Rows:
    """Read Kaggle's ``fer2013.csv`` (columns found by header name: ``emotion``, ``pixels``,
    ``Usage``); every row checked: emotion 0..6, 2304 pixel values in 0..255, a known Usage."""
    path = Path(path)
    what = "Kaggle's fer2013.csv with columns emotion, pixels, Usage"
    emotion, usage, pixels, lines = [], [], [], []
    with _open_csv(path, what) as f:
        reader = csv.reader(f)
        col = _columns(path, next(reader, None), ("emotion", "pixels", "Usage"), what)
        width = max(col.values()) + 1
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if len(row) < width:
                raise DatasetError(f"{path}:{line}: {len(row)} columns, expected emotion, pixels and Usage "
                                   f"(a truncated file?)")
            try:
                lab = int(row[col["emotion"]])
            except ValueError:
                raise DatasetError(f"{path}:{line}: emotion {row[col['emotion']]!r} is not an integer") from None
            if not 0 <= lab <= 6:
                raise DatasetError(f"{path}:{line}: emotion {lab} outside 0..6")
            try:
                pix = np.array(row[col["pixels"]].split(), dtype=np.int64)
            except ValueError:
                raise DatasetError(f"{path}:{line}: pixels must be integers 0..255 separated by spaces") from None
            if pix.size != SIDE * SIDE or pix.min() < 0 or pix.max() > 255:
                raise DatasetError(f"{path}:{line}: expected {SIDE * SIDE} pixel values in 0..255, got {pix.size}"
                                   + (f" in {pix.min()}..{pix.max()}" if pix.size else "")
                                   + (" (a truncated file?)" if pix.size < SIDE * SIDE else ""))
            emotion.append(lab)
            usage.append(_usage(path, line, row[col["Usage"]].strip()))
            pixels.append(pix.astype(np.uint8).reshape(SIDE, SIDE))
            lines.append(line)
    if not lines:
        raise DatasetError(f"{path}: no rows after the header")
    return Fer2013Rows(path, np.array(emotion, dtype=np.int64), usage, np.stack(pixels), lines)


def read_fer2013new(path: str | Path) -> FerplusRows:
    """Read Microsoft's ``fer2013new.csv`` (``Usage``, ``Image name`` and the 10 vote columns, found
    by header name; cells stripped as FERPlus' generator strips them); vote counts are checked to
    be non-negative integers and image names to be plain file names."""
    path = Path(path)
    what = "FERPlus' fer2013new.csv with columns Usage, Image name, " + ", ".join(VOTE_COLUMNS)
    usage, names, votes, lines = [], [], [], []
    with _open_csv(path, what) as f:
        reader = csv.reader(f)
        col = _columns(path, next(reader, None), ("Usage", "Image name") + VOTE_COLUMNS, what)
        width = max(col.values()) + 1
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if len(row) < width:
                raise DatasetError(f"{path}:{line}: {len(row)} columns, expected {width} (a truncated file?)")
            cells = [x.strip() for x in row]
            try:
                v = [int(cells[col[c]]) for c in VOTE_COLUMNS]
            except ValueError:
                raise DatasetError(f"{path}:{line}: vote counts must be integers, got "
                                   f"{','.join(cells[col[c]] for c in VOTE_COLUMNS)}") from None
            if min(v) < 0:
                raise DatasetError(f"{path}:{line}: negative vote count")
            name = cells[col["Image name"]]
            if name and (Path(name).name != name or name in (".", "..") or "\\" in name):
                raise DatasetError(f"{path}:{line}: image name {name!r} is not a plain file name")
            usage.append(_usage(path, line, cells[col["Usage"]]))
            names.append(name)
            votes.append(v)
            lines.append(line)
    if not lines:
        raise DatasetError(f"{path}: no rows after the header")
    return FerplusRows(path, usage, names, np.array(votes, dtype=np.int64).reshape(-1, 10), lines)


def check_rows_line_up(fer: Fer2013Rows, plus: FerplusRows) -> None:
    """Both files hold the same FER2013 rows in the same order: the same number of rows, and row by
    row the same ``Usage``. A :class:`DatasetError` names the file (and line) that breaks it."""
    n_fer, n_plus = len(fer.usage), len(plus.usage)
    if n_fer != n_plus:
        short, long_ = ((fer.path, n_fer), (plus.path, n_plus)) if n_plus == FER2013_ROWS or (
            n_fer != FER2013_ROWS and n_fer < n_plus) else ((plus.path, n_plus), (fer.path, n_fer))
        raise DatasetError(f"{short[0]}: {short[1]:,} rows, but {long_[0]} has {long_[1]:,}; the two files must list "
                           f"the same FER2013 images in the same order (the full files have {FER2013_ROWS:,} rows "
                           f"each): a truncated or different file")
    for i, (a, b) in enumerate(zip(fer.usage, plus.usage)):
        if a != b:
            raise DatasetError(f"{fer.path}:{fer.lines[i]}: row {i} has Usage {a!r} but {plus.path}:{plus.lines[i]} "
                               f"has {b!r}: the rows of the two files do not line up (a reordered or different "
                               f"file; FERPlus' rows follow fer2013.csv's order)")


def row_statuses(fer: Fer2013Rows, plus: FerplusRows) -> tuple[list[str], np.ndarray]:
    """The ``fer2013_labels.csv`` status and label of every row (module docstring): ``(statuses,
    labels)``, labels (N,) int64 in FER2013 order, -1 where the row has no single label."""
    n = len(plus.name)
    last = {}
    for i, (u, name) in enumerate(zip(plus.usage, plus.name)):
        if name:
            last[(u, name)] = i
    status = ["ferplus_dropped" if not name else "no_pixels" if last[(u, name)] != i else ""
              for i, (u, name) in enumerate(zip(plus.usage, plus.name))]
    groups: dict[tuple[str, bytes], list[int]] = defaultdict(list)
    for i in range(n):
        if not status[i]:
            groups[(plus.usage[i], hashlib.sha1(fer.pixels[i].tobytes()).digest())].append(i)
    for members in groups.values():
        emotions = {int(fer.emotion[i]) for i in members}
        kind = "unique" if len(members) == 1 else "dup_same_label" if len(emotions) == 1 else "ambiguous"
        for i in members:
            status[i] = kind
    labels = np.where([s in ("unique", "dup_same_label") for s in status], fer.emotion, -1).astype(np.int64)
    return status, labels


def _write_png(pixels: np.ndarray, path: Path) -> None:
    from PIL import Image
    try:
        Image.fromarray(pixels, mode="L").save(path, compress_level=0)
    except OSError as e:
        path.unlink(missing_ok=True)
        raise WriteError(f"{path}: cannot write it: {e.strerror or e}", e.errno, path) from e


def _label_csv_text(rows: list[tuple[str, np.ndarray]]) -> str:
    import io
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for name, votes in rows:
        w.writerow([name, FACE_BOX, *(int(v) for v in votes)])
    return buf.getvalue()


def _labels_table_text(plus: FerplusRows, status: list[str], labels: np.ndarray) -> str:
    import io
    buf = io.StringIO()
    w = csv.writer(buf)     # the csv module's own line ends, \r\n
    w.writerow(LABELS_HEADER)
    for i, (u, name) in enumerate(zip(plus.usage, plus.name)):
        w.writerow([i, u, name, int(labels[i]), status[i]])
    return buf.getvalue()


def prepare_ferplus(fer2013_csv: str | Path, ferplus_csv: str | Path, out: str | Path,
                    progress: bool = True) -> PreparedFerplus:
    """Write ``out/FER2013{Train,Valid,Test}/`` (PNGs + ``label.csv``) and ``out/fer2013_labels.csv``
    from ``fer2013.csv`` and ``fer2013new.csv`` (module docstring). Both files are read and checked
    in full before anything is written; the label files are written last, each atomically. A folder
    that already holds a ``label.csv`` or ``fer2013_labels.csv`` is refused."""
    from ..progress import progress_bar
    out = Path(out)
    targets = [out / f / "label.csv" for f in FOLDERS.values()] + [out / "fer2013_labels.csv"]
    existing = [p for p in targets if p.exists()]
    if existing:
        raise DatasetError(f"{existing[0]}: already exists; prepare FERPlus into a new folder (or remove the "
                           f"earlier label files)")
    plus = read_fer2013new(ferplus_csv)
    fer = read_fer2013(fer2013_csv)
    check_rows_line_up(fer, plus)
    status, labels = row_statuses(fer, plus)
    written = [i for i, s in enumerate(status) if s not in ("ferplus_dropped", "no_pixels")]
    for folder in FOLDERS.values():
        make_dirs(out / folder)
    for i in progress_bar(written, desc="FERPlus PNGs", unit="img", disable=not progress, leave=False):
        _write_png(fer.pixels[i], out / FOLDERS[plus.usage[i]] / plus.name[i])
    result = PreparedFerplus(out=out, rows=len(status), statuses={s: status.count(s) for s in STATUSES})
    for usage, folder in FOLDERS.items():
        mine = sorted((plus.name[i], i) for i in written if plus.usage[i] == usage)
        rows_of_usage = [i for i, u in enumerate(plus.usage) if u == usage]
        shared = Counter(plus.name[i] for i in rows_of_usage if plus.name[i])
        if mine:
            text = _label_csv_text([(name, plus.votes[i]) for name, i in mine])
            write_atomic(out / folder / "label.csv", lambda f, t=text: f.write(t.encode("utf-8")))
        result.splits[folder] = {"rows": len(rows_of_usage), "images": len(mine),
                                 "dropped": sum(1 for i in rows_of_usage if not plus.name[i]),
                                 "written_twice": sum(1 for c in shared.values() if c > 1)}
    text = _labels_table_text(plus, status, labels)
    write_atomic(out / "fer2013_labels.csv", lambda f: f.write(text.encode("utf-8")))
    return result
