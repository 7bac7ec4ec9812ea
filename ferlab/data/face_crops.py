"""A folder tree of photos -> a folder tree of aligned face crops (``ferlab crop``).

:func:`crop_folder` mirrors ``src``'s sub-folders under ``dst`` (class folders stay class folders, so
``ferlab train --dataset folder --data-root DST`` reads the result as it is), cuts the largest face of
each photo (``all_faces``: every face, ``<stem>_face<k>.png``, largest first) with
:func:`ferlab.data.faces.align_face`, and writes

- ``<dst>/<sub-folders>/<stem>.png``: one crop per photo (PNG: lossless; greyscale crops as ``L``);
- ``<dst>/crop-report.csv``: ``file, faces, face, x0, y0, x1, y1, score, output, note`` -- one row per
  crop, one per photo without a face (``faces`` 0) or unreadable (``note``); paths relative to
  ``src`` / ``dst``, boxes in the photo's pixels as a viewer shows it;
- ``<dst>/ferlab-crop.json``: the framing, detector and options, which runs trained on the crops
  record (:func:`ferlab.data.faces.dataset_framing`) so their predictor cuts faces the same way.

Resumable: a photo whose crops exist (or that an earlier report lists without a face) is not
detected again; a ``dst`` cut with other options is refused. Photos are processed by ``jobs``
worker processes (dlib's detectors hold the GIL), spawned fresh (each imports ferlab and loads the models once).
"""
from __future__ import annotations

import csv
import io
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import make_dirs, write_atomic
from .errors import DatasetError
from .faces import CROP_MANIFEST, Framing
from .folder import IMAGE_SUFFIXES

REPORT = "crop-report.csv"
COLUMNS = ("file", "faces", "face", "x0", "y0", "x1", "y1", "score", "output", "note")


@dataclass
class CropSummary:
    """What :func:`crop_folder` did: ``rows`` (the report's, in photo order) and the photos in each state."""
    rows: list[dict] = field(default_factory=list)
    photos: int = 0
    cropped: list[str] = field(default_factory=list)       # photos with at least one crop written now
    no_face: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)        # already cropped by an earlier run

    @property
    def faces(self) -> int:
        """Face crops written, by this run and earlier ones (report rows with an output file)."""
        return sum(1 for r in self.rows if r["output"])


def find_photos(src: Path, exclude: Path | None = None) -> list[Path]:
    """Image files under ``src`` (any depth, hidden files and folders skipped), sorted, relative to ``src``."""
    out = []
    for f in sorted(src.rglob("*")):
        rel = f.relative_to(src)
        if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file() and not any(p.startswith(".") for p in rel.parts) \
                and not (exclude is not None and f.resolve().is_relative_to(exclude.resolve())):
            out.append(rel)
    return out


def crop_stems(photos: list[Path]) -> dict[Path, Path]:
    """Photo -> its crop's path without suffix, relative to ``dst``: the photo's stem in the same
    sub-folder; photos of one folder sharing a stem (``a.jpg``, ``a.png``) get their extension too."""
    seen: dict[Path, int] = {}
    for p in photos:
        seen[p.with_suffix("")] = seen.get(p.with_suffix(""), 0) + 1
    return {p: p.with_suffix("") if seen[p.with_suffix("")] == 1 else p.parent / f"{p.stem}_{p.suffix[1:].lower()}"
            for p in photos}


def _row(file: str, **kw) -> dict:
    return {c: kw.get(c, "") for c in COLUMNS} | {"file": file}


def crop_photo(task: tuple) -> list[dict]:
    """One photo (a worker's job): ``(src, dst, rel, stem, framing dict, detector, detect_size, all_faces,
    background)`` -> its report rows; crops written atomically."""
    from PIL import Image

    from .faces import align_face, detect_faces
    from .photos import read_photo
    src, dst, rel, stem, framing, detector, detect_size, all_faces, background = task
    framing = Framing.from_dict(framing)
    try:
        rgb = read_photo(src / rel, background)
    except DatasetError as e:
        return [_row(rel.as_posix(), note=f"unreadable: {e}")]
    faces = detect_faces(rgb, detector, detect_size or None)
    if not faces:
        return [_row(rel.as_posix(), faces=0, note="no face")]
    rows = []
    for k, face in enumerate(faces if all_faces else faces[:1]):
        out = stem.parent / (f"{stem.name}_face{k}.png" if all_faces else f"{stem.name}.png")
        chip = Image.fromarray(align_face(rgb, face, framing))
        if framing.colour == "grayscale":
            chip = chip.convert("L")
        write_atomic(dst / out, lambda f, im=chip: im.save(f, format="PNG"))
        rows.append(_row(rel.as_posix(), faces=len(faces), face=k, **dict(zip(("x0", "y0", "x1", "y1"),
                                                                          (f"{v:.1f}" for v in face.box))),
                         score=f"{face.score:.4f}", output=out.as_posix()))
    return rows


def _earlier_rows(dst: Path) -> dict[str, list[dict]]:
    f = dst / REPORT
    if not f.is_file():
        return {}
    out: dict[str, list[dict]] = {}
    with open(f, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            out.setdefault(row.get("file", ""), []).append({c: row.get(c, "") for c in COLUMNS})
    return out


def _check_manifest(dst: Path, manifest: dict) -> None:
    f = dst / CROP_MANIFEST
    if not f.is_file():
        return
    try:
        earlier = json.loads(f.read_text())
    except (OSError, ValueError) as e:
        raise DatasetError(f"{f}: not a readable crop manifest ({e}); remove it or choose another --out") from None
    keys = ("framing", "detector", "detect_size", "all_faces", "background")
    diff = [k for k in keys if earlier.get(k) != manifest[k]]
    if diff:
        was = ", ".join(f"{k} {earlier.get(k)}" for k in diff)
        raise DatasetError(f"{dst}: holds crops made with other options ({was}); give the same options to resume, "
                           f"or another --out")


def _done(rel: Path, stem: Path, dst: Path, earlier: dict, all_faces: bool) -> list[dict] | None:
    """The earlier rows of a photo that needs no new work, else None."""
    rows = earlier.get(rel.as_posix())
    if rows and not any(r["note"].startswith("unreadable") for r in rows) \
            and all((dst / r["output"]).is_file() for r in rows if r["output"]):
        return rows
    first = stem.parent / (f"{stem.name}_face0.png" if all_faces else f"{stem.name}.png")
    if (dst / first).is_file():
        return [_row(rel.as_posix(), output=first.as_posix(), note="crop existed (earlier run)")]
    return None


def write_report(dst: Path, rows: list[dict]) -> None:
    """Write ``rows`` (dicts with the :data:`COLUMNS` keys) as ``dst/crop-report.csv``, atomically."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_atomic(dst / REPORT, lambda f: f.write(buf.getvalue().encode("utf-8")))


def crop_folder(src: str | Path, dst: str | Path, framing: Framing, detector: str = "cnn",
                detect_size: int | None = 800, all_faces: bool = False, background: str = "white",
                jobs: int = 1, progress: bool = True, on_row=None) -> CropSummary:
    """Crop every photo under ``src`` into ``dst`` (module docstring); ``jobs`` worker processes
    (1: in this process). ``on_row(rows)`` is called with each photo's rows as they come (the CLI
    names unreadable files with it). The report is written also when interrupted."""
    from ..progress import progress_bar
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise DatasetError(f"{src}: photo folder not found")
    photos = find_photos(src, exclude=dst)
    if not photos:
        raise DatasetError(f"{src}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in it or its sub-folders")
    manifest = {"framing": framing.to_dict(), "detector": detector, "detect_size": detect_size or 0,
                "all_faces": all_faces, "background": background, "source": str(src)}
    make_dirs(dst)
    _check_manifest(dst, manifest)
    write_atomic(dst / CROP_MANIFEST, lambda f: f.write((json.dumps(manifest, indent=2) + "\n").encode()))
    stems, earlier = crop_stems(photos), _earlier_rows(dst)
    summary = CropSummary(photos=len(photos))
    results: dict[Path, list[dict]] = {}
    todo = []
    for rel in photos:
        rows = _done(rel, stems[rel], dst, earlier, all_faces)
        if rows is None:
            todo.append((src, dst, rel, stems[rel], framing.to_dict(), detector, detect_size, all_faces, background))
        else:
            results[rel] = rows
            summary.skipped.append(rel.as_posix())
    bar = progress_bar(total=len(todo), desc="cropping", unit="photo", disable=not progress)
    # spawned, not forked: a fork of a process whose other threads hold locks (torch's, a notebook's) can hang
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) \
        if jobs > 1 and len(todo) > 1 else None
    try:
        for task, rows in zip(todo, pool.map(crop_photo, todo) if pool else map(crop_photo, todo)):
            results[task[2]] = rows
            if on_row is not None:
                on_row(rows)
            bar.update(1)
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        for rel in photos:
            rows = results.get(rel, [])
            summary.rows += rows
            if rel.as_posix() in summary.skipped:
                continue
            if any(r["output"] for r in rows):
                summary.cropped.append(rel.as_posix())
            elif any(r["note"] == "no face" for r in rows):
                summary.no_face.append(rel.as_posix())
            elif rows:
                summary.unreadable.append(rel.as_posix())
        summary.no_face += [f for f in summary.skipped if any(r["note"] == "no face" for r in results[Path(f)])]
        write_report(dst, summary.rows)
    return summary
