"""Photos with their faces drawn on: box, predicted class and its probability."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: box colours, largest face first
COLOURS = ((230, 60, 40), (40, 140, 230), (60, 180, 75), (245, 170, 30), (150, 80, 200), (20, 190, 190))


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)        # Pillow >= 10.1 with FreeType: a scalable font
    except TypeError:
        return ImageFont.load_default()


def draw_faces(rgb: np.ndarray, faces, title: str | None = None) -> Image.Image:
    """``rgb`` (H, W, 3) uint8 with each face's box and ``"<class> <probability>"`` drawn on it.

    ``faces``: records with ``box`` (x0, y0, x1, y1), ``label`` and ``probs`` (C,)
    (:class:`ferlab.predictor.FacePrediction`). A photo without faces gets ``title`` (default
    ``"no face found"``) in its corner."""
    im = Image.fromarray(rgb).convert("RGB")
    draw = ImageDraw.Draw(im)
    side = max(im.size)
    width, font = max(2, side // 250), _font(max(12, side // 40))
    for k, f in enumerate(faces):
        colour = COLOURS[k % len(COLOURS)]
        x0, y0, x1, y1 = f.box
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=width)
        text = f"{f.label} {float(np.max(f.probs)):.2f}"
        left, t, r, b = draw.textbbox((0, 0), text, font=font)
        ty = y0 - (b - t) - 2 * width if y0 - (b - t) - 2 * width >= 0 else y1 + width
        draw.rectangle([x0, ty, x0 + (r - left) + 2 * width, ty + (b - t) + 2 * width], fill=colour)
        draw.text((x0 + width - left, ty + width - t), text, fill=(255, 255, 255), font=font)
    if not faces or title:
        text = title or "no face found"
        left, t, r, b = draw.textbbox((0, 0), text, font=font)
        draw.rectangle([0, 0, (r - left) + 4 * width, (b - t) + 4 * width], fill=(0, 0, 0))
        draw.text((2 * width - left, 2 * width - t), text, fill=(255, 255, 255), font=font)
    return im
