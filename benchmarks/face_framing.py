"""Where FER2013 / FERPlus puts the face in its 48 x 48 images, as a dlib face chip's ``padding`` and
``shift`` (:class:`ferlab.data.faces.Framing`).

    python benchmarks/face_framing.py [--n 3000]

Every ``len(train) / n``-th FERPlus training image is upscaled to 192 px (bilinear; dlib's HOG
detector needs faces of ~80 px), the one face the HOG detector finds (images with none or several
are skipped) gets dlib's 5 landmarks, and the 5 points are compared with dlib's face-chip template
(the points :func:`ferlab.data.faces.align_face` maps them to). Per image: the least-squares scale s
of the points relative to the template gives the padding ``p = (1/s - 1) / 2`` at which a chip holds
the face as large as the image does, and the offset of the points' centroid from the centroid of
the template at the median padding gives the shift (fractions of the image side; positive: the face
sits lower / further right than in a dlib chip). Writes
``benchmarks/results/face-framing-ferplus.json``: medians, quartiles, counts.
"""
from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
from PIL import Image

from ferlab.data.faces import CHIP_TEMPLATE, face_models
from ferlab.data.registry import find_data_root

UPSCALE = 192


def measure(files: list[Path]) -> dict:
    import dlib
    detector, shapes = face_models("hog"), face_models("shape")
    t = CHIP_TEMPLATE - CHIP_TEMPLATE.mean(0)
    scales, centroids = [], []
    for f in files:
        gray = np.asarray(Image.open(f).convert("L").resize((UPSCALE, UPSCALE), Image.BILINEAR))
        found = detector(gray, 0)
        if len(found) != 1:
            continue
        parts = shapes(gray, found[0]).parts()
        pts = (np.array([(q.x, q.y) for q in parts], dtype=np.float64) + 0.5) / UPSCALE   # fractions of the side
        scales.append(np.sqrt(((pts - pts.mean(0)) ** 2).sum() / (t ** 2).sum()))
        centroids.append(pts.mean(0))
    scales, centroids = np.array(scales), np.array(centroids)
    padding = (1 / scales - 1) / 2
    p = float(np.median(padding))
    template_centroid = (CHIP_TEMPLATE.mean(0) + p) / (1 + 2 * p)
    offset = centroids - template_centroid
    def q(a):
        return [round(float(v), 4) for v in np.percentile(a, [25, 50, 75])]
    return {"images": len(files), "measured": len(scales), "padding_quartiles": q(padding),
            "shift_y_quartiles": q(offset[:, 1]), "shift_x_quartiles": q(offset[:, 0]),
            "padding": round(p, 3), "shift": round(float(np.median(offset[:, 1])), 3),
            "detector": f"dlib {dlib.__version__} HOG frontal face, 5-point shape predictor, images upscaled to "
                        f"{UPSCALE} px"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000, help="training images measured (evenly spaced)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "face-framing-ferplus.json"))
    args = ap.parse_args(argv)
    root = find_data_root("ferplus")
    if root is None:
        raise SystemExit("FERPlus not found (set FERLAB_DATA)")
    files = sorted((root / "FER2013Train").glob("*.png"))
    files = files[::max(1, len(files) // args.n)][:args.n]
    result = {"dataset": "ferplus FER2013Train", **measure(files), "machine": platform.machine()}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
