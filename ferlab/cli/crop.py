"""``ferlab crop``: a folder tree of photos -> a folder dataset of aligned face crops."""
from __future__ import annotations

import os
import sys

#: the commands this module adds (name -> the one-line help ``ferlab --help`` lists), in order
COMMANDS = {"crop": "detect and align the faces of a folder tree of photos into a folder dataset of crops"}

EXAMPLES = """examples:
  ferlab crop photos/ --out faces/                      # photos/train/happy/*.jpg -> faces/train/happy/*.png
  ferlab train --dataset folder --data-root faces/ --method baseline
  ferlab crop photos/ --out faces/ --all-faces --detector hog --size 96"""


def default_jobs() -> int:
    """The CPUs this process may use, at most 8."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


def cmd_crop(args) -> int:
    """Run ``ferlab crop``: detect, align and crop the faces of every photo under SRC into --out
    and print what was done; returns the exit status 0.

    Raises:
        ConfigError: A bad --size, --jobs or --detect-size.
        UserError: Some files could not be read (named on stderr and in the report).
    """
    from tqdm.auto import tqdm

    from ..data.face_crops import REPORT, crop_folder
    from ..data.faces import CROP_FRAMING
    from ..errors import ConfigError, UserError
    from .faces import check_models, chosen_framing
    if (args.size is not None and args.size < 8) or args.jobs < 1 or args.detect_size < 0:
        raise ConfigError("--size must be >= 8, --jobs >= 1 and --detect-size >= 0")
    framing = chosen_framing(args, CROP_FRAMING).with_(size=args.size)
    check_models(args.detector)

    def name_unreadable(rows):
        for r in rows:
            if r["note"].startswith("unreadable"):
                tqdm.write(f"ferlab crop: skipped {r['note'][len('unreadable: '):]}", file=sys.stderr)

    s = crop_folder(args.src, args.out, framing, args.detector, args.detect_size or None, args.all_faces,
                    args.background, args.jobs, progress=not args.no_progress, on_row=name_unreadable)
    print(f"{s.photos} photos -> {args.out} ({framing.describe()}, {args.detector} detector): {len(s.cropped)} "
          f"cropped now ({s.faces} crops in all), {len(s.skipped)} done earlier, {len(s.no_face)} without a face, "
          f"{len(s.unreadable)} unreadable; report {os.path.join(args.out, REPORT)}")
    if s.no_face:
        print(f"no face found in {len(s.no_face)}: " + ", ".join(s.no_face[:20])
              + (f" ... (all in {REPORT})" if len(s.no_face) > 20 else ""))
    if s.unreadable:
        raise UserError(f"{len(s.unreadable)} of {s.photos} files could not be read (named above and in {REPORT})")
    return 0


def add_parser(sub) -> None:
    """Register ``ferlab crop`` and its options on the subparsers ``sub``."""
    import textwrap

    from .common import add_command
    from .faces import add_face_flags
    p = add_command(sub, "crop", COMMANDS["crop"], EXAMPLES, description=textwrap.fill(
        "Detect the faces of every photo under SRC (any depth), align each (eyes level, fixed margin) and write "
        "the largest one per photo as a PNG under --out, mirroring SRC's sub-folders: class folders stay class "
        "folders, so `ferlab train --dataset folder --data-root OUT` trains on the result. Writes crop-report.csv "
        "(file, faces, face, x0, y0, x1, y1, score, output, note) and ferlab-crop.json (the framing, recorded by "
        "runs trained on the crops). Run it again to resume: photos already cropped are skipped.", 100))
    p.add_argument("src", metavar="SRC", help="folder of photos (sub-folders mirrored, e.g. train/<class>/)")
    p.add_argument("--out", required=True, metavar="DST", help="output folder of the crops")
    p.add_argument("--size", type=int, metavar="PX",
                   help="side of the crops in pixels (default: the framing's; 112 for crop)")
    p.add_argument("--all-faces", dest="all_faces", action="store_true",
                   help="write every face of a photo, <stem>_face<k>.png, largest first (default: the largest, "
                        "<stem>.png)")
    p.add_argument("--jobs", type=int, default=default_jobs(),
                   help="worker processes detecting faces; default %(default)s: the CPUs this process may use, "
                        "at most 8")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_face_flags(p, "crop", "crop by default")
    p.set_defaults(func=cmd_crop)
