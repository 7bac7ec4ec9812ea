"""Image decoding with errors that name the file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import DatasetError


def _to_8bit(im: Image.Image, path) -> Image.Image:
    """16-bit greyscale (``I;16*``, or ``I`` holding 0..65535) scaled to 8 bits (``L``); Pillow's
    ``convert`` would clip it to a handful of grey levels. Float and wider integer images are refused."""
    if im.mode.startswith("I;16") or im.mode == "I":
        arr = np.asarray(im).astype(np.int64)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise DatasetError(f"{path}: {im.mode} image with values outside 0..65535 (32-bit integer pixels are "
                               f"not supported; save it as an 8- or 16-bit image)")
        return Image.fromarray(((arr * 255 + 32767) // 65535).astype(np.uint8), "L")
    if im.mode == "F":
        raise DatasetError(f"{path}: floating-point image (mode F) is not supported; save it as an 8- or 16-bit image")
    return im


def read_image(path: str | Path, size: int | None = None) -> np.ndarray:
    """Decode ``path`` to an RGB uint8 ``(H, W, 3)`` array, resized to ``size`` x ``size``.
    16-bit greyscale images are scaled to 8 bits (not clipped).

    Raises :class:`DatasetError` naming the file for missing, unreadable, non-image, truncated
    and oversized (decompression-bomb) files (PIL's lazy decoding is forced with ``load()``).
    """
    try:
        with Image.open(path) as im:
            im.load()
            im = _to_8bit(im, path).convert("RGB")
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except DatasetError:
        raise
    except FileNotFoundError as e:
        raise DatasetError(f"{path}: image file not found") from e
    except IsADirectoryError as e:
        raise DatasetError(f"{path}: a directory, not an image file") from e
    except PermissionError as e:
        raise DatasetError(f"{path}: cannot read the image file ({e.strerror})") from e
    except Image.DecompressionBombError as e:
        raise DatasetError(f"{path}: the image header claims more pixels than Pillow decodes safely ({e}); a "
                           f"corrupt or hostile file, or raise PIL.Image.MAX_IMAGE_PIXELS for a genuine one") from e
    except UnidentifiedImageError as e:
        raise DatasetError(f"{path}: not a readable image file") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise DatasetError(f"{path}: corrupt or truncated image ({e})") from e


def resize_array(arr: np.ndarray, size: int) -> np.ndarray:
    """Resize an (H, W) or (H, W, 3) uint8 array to (size, size, 3) RGB."""
    im = _to_8bit(Image.fromarray(arr), "image array").convert("RGB")
    if im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
    return np.asarray(im, dtype=np.uint8)
