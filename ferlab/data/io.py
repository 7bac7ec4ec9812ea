"""Image decoding with errors that name the file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import DatasetError


def read_image(path: str | Path, size: int | None = None) -> np.ndarray:
    """Decode ``path`` to an RGB uint8 ``(H, W, 3)`` array, resized to ``size`` x ``size``.

    Raises :class:`DatasetError` naming the file for missing, non-image and
    truncated files (PIL's lazy decoding is forced with ``load()``).
    """
    try:
        with Image.open(path) as im:
            im.load()
            im = im.convert("RGB")
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except FileNotFoundError as e:
        raise DatasetError(f"{path}: image file not found") from e
    except UnidentifiedImageError as e:
        raise DatasetError(f"{path}: not a readable image file") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise DatasetError(f"{path}: corrupt or truncated image ({e})") from e


def resize_array(arr: np.ndarray, size: int) -> np.ndarray:
    """Resize an (H, W) or (H, W, 3) uint8 array to (size, size, 3) RGB."""
    im = Image.fromarray(arr)
    im = im.convert("RGB")
    if im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
    return np.asarray(im, dtype=np.uint8)
