"""``ferlab predict``: class probabilities for image files, from a run or an exported model."""
from __future__ import annotations

import csv
import glob
import io
import sys
from pathlib import Path

from ..atomic import make_dirs, write_atomic
from .common import HelpFormatter, device_arg

#: the commands this module adds (name -> the one-line help ``ferlab --help`` lists), in order
COMMANDS = {"predict": "class probabilities for face crops or, with --detect, every face in photos (CSV)"}


EXAMPLES = """examples:
  ferlab predict runs/eac-faces new_faces/ --out preds.csv
  ferlab predict eac-faces.pt new_faces/ --out preds.csv --cam cams/
  ferlab predict runs/eac-faces/checkpoints/best.pt 'photos/*.jpg' face.png
  ferlab predict runs/eac-faces party.jpg holiday/ --detect --annotate annotated/ --out faces.csv"""


def expand_inputs(items: list[str]) -> list[Path]:
    """Files, flat folders (their image files, sorted) and globs -> image paths, in the order given."""
    from ..data.errors import DatasetError
    from ..data.folder import IMAGE_SUFFIXES
    out = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise DatasetError(f"{path}: no image files directly inside ({', '.join(sorted(IMAGE_SUFFIXES))})")
            out += files
        elif path.is_file():
            out.append(path)
        elif glob.has_magic(item):
            files = sorted(Path(p) for p in glob.glob(item) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise DatasetError(f"{item}: the pattern matches no image file")
            out += files
        else:
            raise DatasetError(f"{item}: no such file, folder or pattern")
    return out


def write_overlays(predictor, paths: list[Path], preds, out_dir: Path, kind: str, batch_size: int) -> None:
    """One PNG per image, ``<stem>-<predicted class>.png``: the CAM of the predicted class over the
    original image, at the original size."""
    from PIL import Image

    from ..data.io import read_image
    from ..viz.cam import overlay
    make_dirs(out_dir)
    used: set[str] = set()
    for lo in range(0, len(paths), batch_size):
        batch = paths[lo:lo + batch_size]
        maps = predictor.cam([str(p) for p in batch], classes=preds.indices[lo:lo + batch_size], kind=kind)
        for path, label, cam in zip(batch, preds.labels[lo:lo + batch_size], maps):
            name = f"{path.stem}-{label}"
            while name in used:                       # the same file name in two input folders
                name += "_"
            used.add(name)
            image = Image.fromarray(overlay(read_image(path), cam))
            write_atomic(out_dir / f"{name}.png", lambda f, image=image: image.save(f, format="PNG"))


def cmd_predict(args) -> int:
    """Run ``ferlab predict``: predict the expression of image files with a run or exported model
    and print or write the CSV; returns the exit status."""
    from ..errors import ConfigError
    from ..predictor import Predictor
    from .faces import face_flags_given
    if not args.detect and (args.annotate or face_flags_given(args, "run")):
        raise ConfigError("--annotate, --detector and the framing options need --detect (photos, not face crops)")
    if args.detect and args.cam:
        raise ConfigError("--cam works on face crops: without --detect")
    paths = expand_inputs(args.inputs)
    predictor = Predictor.load(args.model, args.device, amp=args.amp)
    if args.detect:
        from .faces import predict_photos
        return predict_photos(args, predictor, paths)
    preds = predictor.predict([str(p) for p in paths], batch_size=args.batch_size, progress=not args.no_progress)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "prediction", *(f"prob_{c}" for c in preds.classes)])
    for path, label, probs in zip(paths, preds.labels, preds.probs):
        w.writerow([str(path), label, *(f"{p:.6f}" for p in probs)])
    if args.out:        # atomic: a full disk leaves no half CSV (and an earlier one as it was)
        write_atomic(args.out, lambda f: f.write(buf.getvalue().encode("utf-8")))
    else:
        sys.stdout.write(buf.getvalue())
    if args.cam:
        write_overlays(predictor, paths, preds, Path(args.cam), args.cam_kind, args.batch_size)
    if args.out:
        counts = {c: preds.labels.count(c) for c in preds.classes if c in preds.labels}
        print(f"{len(paths)} images -> {args.out} (classes {list(preds.classes)}; predicted {counts})"
              + (f"; CAM overlays in {args.cam}" if args.cam else ""), file=sys.stderr)
    return 0


def add_parser(sub) -> None:
    """Register ``ferlab predict`` and its options on the subparsers ``sub``."""
    pr = sub.add_parser("predict", help=COMMANDS["predict"],
                        description="Predict the expression of image files with a trained run or an exported "
                                    "model; the eval transform (image size, input size, mean/std) and the class "
                                    "names come from the model file.",
                        epilog=EXAMPLES, formatter_class=HelpFormatter)
    pr.add_argument("model", help="run folder (its checkpoints/last.pt), a checkpoint .pt (last.pt, best.pt) "
                                  "or a `ferlab export` file")
    pr.add_argument("inputs", nargs="+", metavar="IMAGES",
                    help="image files, flat folders of images, or glob patterns (quoted)")
    pr.add_argument("--out", help="CSV file (path, prediction, prob_<class>...); default: print the CSV")
    pr.add_argument("--cam", metavar="DIR", help="also write a CAM overlay of the predicted class per image here")
    pr.add_argument("--cam-kind", dest="cam_kind", default="auto",
                    choices=("auto", "classifier", "gradcam", "gradcam++", "eigencam"),
                    help="auto: the classifier CAM where the head allows it, else Grad-CAM")
    pr.add_argument("--batch-size", dest="batch_size", type=int, default=64, help="images per forward pass")
    pr.add_argument("--device", type=device_arg, default="cpu", help="cpu | cuda | cuda:N | auto")
    pr.add_argument("--amp", default="auto", choices=("auto", "bf16", "fp16", "off"),
                    help="autocast of the network: auto = bf16 where the device computes it natively (CPU with "
                         "AVX512-BF16 / AMX, CUDA), else float32; off = float32; probabilities are float32 either way")
    pr.add_argument("--no-progress", action="store_true", help="no progress bar")
    pr.add_argument("--detect", action="store_true",
                    help="the inputs are photos: detect every face (largest first), cut each as the run's training "
                         "images were framed and coloured, one CSV row per face (file, face, x0, y0, x1, y1, score, "
                         "predicted, prob_<class>...; a photo without a face gets one row with face empty)")
    pr.add_argument("--annotate", metavar="DIR",
                    help="with --detect: write each photo with its boxes, predicted classes and probabilities here")
    from .faces import add_face_flags
    add_face_flags(pr, "run", "run = as the run's training images were (recorded in the run; its dataset's for "
                              "older runs)")
    pr.set_defaults(func=cmd_predict)
