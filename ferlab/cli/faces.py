"""Face detection on the command line: the flags ``ferlab predict --detect`` and ``ferlab crop`` share,
and ``predict --detect`` itself (one CSV row per face, annotated photos)."""
from __future__ import annotations

import csv
import io
import sys
import warnings
from pathlib import Path

from ..atomic import make_dirs, write_atomic

FRAMING_NAMES = ("fer2013", "dlib", "crop")
FRAMING_HELP = ("fer2013: padding 0.24, shift 0.09, 48 px, greyscale (where FERPlus / FER2013 images hold their "
                "faces, measured on FERPlus); dlib: dlib.get_face_chip's padding 0.25, shift 0, 150 px, colour; "
                "crop: FER2013's placement at 112 px in colour")


def add_face_flags(p, framing_default: str, framing_help: str) -> None:
    """--detector, --detect-size, --framing, --padding, --shift, --colour, --background."""
    p.add_argument("--detector", choices=("cnn", "hog"), default="cnn",
                   help="dlib face detector: cnn (mmod_human_face_detector, accurate) or hog (fast, also fires "
                        "on round patterns)")
    p.add_argument("--detect-size", dest="detect_size", type=int, default=800, metavar="PX",
                   help="long side of the photo the detector sees (faces from ~40 px there; 0: full size, slower)")
    p.add_argument("--framing", choices=tuple(dict.fromkeys((framing_default, *FRAMING_NAMES))),
                   default=framing_default,
                   help=f"how faces are cut: {framing_help}; {FRAMING_HELP}")
    p.add_argument("--padding", type=float, metavar="P",
                   help="margin around dlib's reference face, a fraction of its size per side (overrides "
                        "--framing's)")
    p.add_argument("--shift", type=float, metavar="S",
                   help="move the face down by this fraction of the crop side (overrides --framing's)")
    p.add_argument("--colour", choices=("rgb", "grayscale"),
                   help="colour of the cut faces (overrides --framing's)")
    p.add_argument("--background", choices=("white", "black"), default="white",
                   help="what transparent pixels (RGBA / LA / palette PNGs) are composited over")


def check_models(detector: str) -> None:
    """dlib and the model files ``detector`` needs are installed, else a one-line error naming the install."""
    from ..data.faces import check_face_models
    from ..errors import UserError
    try:
        check_face_models(detector)
    except ImportError as e:
        raise UserError(str(e)) from None


def face_flags_given(args, framing_default: str) -> bool:
    """Whether any of :func:`add_face_flags`' options differs from its default."""
    return (args.detector, args.detect_size, args.framing, args.padding, args.shift, args.colour, args.background) \
        != ("cnn", 800, framing_default, None, None, None, "white")


def chosen_framing(args, base):
    """``base`` (a :class:`~ferlab.data.faces.Framing`) or the named ``--framing``, with the overrides."""
    from ..data.faces import CROP_FRAMING, FRAMINGS
    named = {**FRAMINGS, "crop": CROP_FRAMING}
    framing = named.get(args.framing, base)
    try:
        return framing.with_(padding=args.padding, shift=args.shift, colour=args.colour)
    except ValueError as e:
        from ..errors import ConfigError
        raise ConfigError(f"--padding / --shift: {e}") from None


def probability_columns(classes) -> list[str]:
    """The CSV columns of the class probabilities: ``prob_<class>`` per class name."""
    return [f"prob_{c}" for c in classes]


def predict_photos(args, predictor, paths: list[Path]) -> int:
    """``ferlab predict --detect``: every face of every photo in a CSV (``file, face, x0, y0, x1, y1,
    score, predicted, prob_<class>...``; a photo without a face has one row with ``face`` empty),
    annotated photos in ``--annotate``; unreadable files are named and skipped."""
    from tqdm.auto import tqdm

    from ..data.errors import DatasetError
    from ..data.photos import read_photo
    from ..errors import UserError
    check_models(args.detector)
    framing = chosen_framing(args, predictor.framing)
    if predictor.framing_note and framing is predictor.framing:
        print(f"note: {predictor.framing_note}", file=sys.stderr)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "face", "x0", "y0", "x1", "y1", "score", "predicted", *probability_columns(predictor.classes)])
    failed, n_faces, no_face, used = [], 0, [], set()
    if args.annotate:
        make_dirs(Path(args.annotate))
    for path in tqdm(paths, desc="photos", disable=args.no_progress, unit="photo"):
        try:
            rgb = read_photo(path, args.background)
        except DatasetError as e:
            tqdm.write(f"ferlab predict: skipped {e}", file=sys.stderr)
            failed.append(path)
            continue
        with warnings.catch_warnings():       # the framing note is printed once above
            warnings.simplefilter("ignore")
            faces = predictor.predict_faces([rgb], args.detector, framing, args.detect_size or None,
                                            background=args.background, batch_size=args.batch_size)[0]
        n_faces += len(faces)
        if not faces:
            no_face.append(path)
            w.writerow([str(path), "", "", "", "", "", "", "", *[""] * len(predictor.classes)])
        for f in faces:
            w.writerow([str(path), f.face, *(f"{v:.1f}" for v in f.box), f"{f.score:.4f}", f.label,
                        *(f"{p:.6f}" for p in f.probs)])
        if args.annotate:
            from ..viz.faces import draw_faces
            name = path.stem
            while name in used:                       # the same file name in two input folders
                name += "_"
            used.add(name)
            image = draw_faces(rgb, faces)
            write_atomic(Path(args.annotate) / f"{name}.jpg", lambda fh, im=image: im.save(fh, "JPEG", quality=90))
    if args.out:
        write_atomic(args.out, lambda fh: fh.write(buf.getvalue().encode("utf-8")))
    else:
        sys.stdout.write(buf.getvalue())
    read = len(paths) - len(failed)
    print(f"{read} photos, {n_faces} faces ({framing.describe()}, {args.detector} detector)"
          + (f" -> {args.out}" if args.out else "")
          + (f"; annotated photos in {args.annotate}" if args.annotate else "")
          + (f"; no face in {len(no_face)}: {', '.join(p.name for p in no_face[:10])}"
             + (" ..." if len(no_face) > 10 else "") if no_face else ""), file=sys.stderr)
    if failed:
        raise UserError(f"{len(failed)} of {len(paths)} files could not be read (named above); the "
                        f"{'CSV' if args.out else 'output'} holds the other {read}")
    return 0
