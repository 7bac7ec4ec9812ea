"""Photos as a viewer shows them: one RGB uint8 array whatever the camera or editor wrote.

:func:`read_photo` (a file) and :func:`photo_array` (a path, PIL image or numpy array) apply:

- the EXIF orientation (phones store the sensor's pixels and a rotate/mirror tag): pixels and every
  coordinate computed on them are in the frame a viewer shows;
- greyscale (``L``, ``1``) replicated to three channels; 16-bit greyscale scaled to 8 bits
  (:func:`ferlab.data.io._to_8bit`, not clipped); 16-bit RGB keeps each channel's high byte;
- transparency (``RGBA``, ``LA``, palette images with a transparent colour) composited over a
  ``background`` -- white by default, the page a transparent picture is usually shown on -- and the
  alpha dropped;
- CMYK JPEGs (Adobe's inverted ones too, which Pillow undoes) converted through their embedded ICC
  profile when they carry one (littlecms), else with Pillow's plain CMYK -> RGB formula;
- palette images expanded to their colours.

A file that cannot be read is a :class:`~ferlab.data.errors.DatasetError` naming it.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import DatasetError
from .io import _to_8bit

#: what ``background`` names: the colour transparent pixels are composited over
BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0)}


def _cmyk_to_rgb(im: Image.Image) -> Image.Image:
    """Through the file's ICC profile when it has one (and littlecms is there), else Pillow's formula."""
    profile = im.info.get("icc_profile")
    if profile:
        try:
            from PIL import ImageCms
            src = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            return ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImportError, OSError, ValueError, ImageCms.PyCMSError):
            pass
    return im.convert("RGB")


def pil_to_rgb(im: Image.Image, background: str = "white", source: str = "image") -> np.ndarray:
    """A PIL image -> (H, W, 3) uint8 RGB in the viewer's frame (module docstring)."""
    if background not in BACKGROUNDS:
        raise ValueError(f"background must be one of {sorted(BACKGROUNDS)}, got {background!r}")
    im = ImageOps.exif_transpose(im)
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode in ("L", "RGB") and "transparency" in im.info:       # a tRNS colour key
        im = im.convert("RGBA")
    elif im.mode == "CMYK":
        im = _cmyk_to_rgb(im)
    elif im.mode == "1":
        im = im.convert("L")
    im = _to_8bit(im, source)
    if im.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        im = im.convert("RGBA")
        under = Image.new("RGBA", im.size, BACKGROUNDS[background] + (255,))
        im = Image.alpha_composite(under, im)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def read_photo(path: str | Path, background: str = "white") -> np.ndarray:
    """Decode the photo ``path`` to (H, W, 3) uint8 RGB as a viewer shows it (module docstring).

    Raises :class:`DatasetError` naming the file for missing, unreadable, non-image, truncated and
    oversized (decompression-bomb) files and unsupported pixel types (float images)."""
    try:
        with Image.open(path) as im:
            im.load()
            return pil_to_rgb(im, background, str(path))
    except DatasetError:
        raise
    except FileNotFoundError as e:
        raise DatasetError(f"{path}: image file not found") from e
    except IsADirectoryError as e:
        raise DatasetError(f"{path}: a directory, not an image file") from e
    except PermissionError as e:
        raise DatasetError(f"{path}: cannot read the image file ({e.strerror})") from e
    except Image.DecompressionBombError as e:
        raise DatasetError(f"{path}: the image header claims more pixels than Pillow decodes safely") from e
    except UnidentifiedImageError as e:
        raise DatasetError(f"{path}: not a readable image file") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise DatasetError(f"{path}: corrupt or truncated image ({e})") from e


def photo_array(image, background: str = "white") -> np.ndarray:
    """A path, PIL image or uint8 numpy array ((H, W), (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA)
    -> (H, W, 3) uint8 RGB (arrays carry no EXIF: taken as shown)."""
    if isinstance(image, (str, Path)):
        return read_photo(image, background)
    if isinstance(image, Image.Image):
        return pil_to_rgb(image, background)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise TypeError(f"image arrays must be uint8 (0..255), got {image.dtype}")
        if image.ndim == 3 and image.shape[-1] in (1, 3, 4):
            image = image[..., 0] if image.shape[-1] == 1 else image
        elif image.ndim != 2:
            raise ValueError(f"image arrays must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {image.shape}")
        return pil_to_rgb(Image.fromarray(np.ascontiguousarray(image)), background)
    raise TypeError(f"cannot read a photo from {type(image).__name__} (give a path, PIL image or uint8 array)")


def shipped_photos() -> dict[str, Path]:
    """Real photographs that ship with ferlab's own dependencies (nothing downloaded): ``grace_hopper``
    (a portrait, matplotlib's sample data), ``china`` and ``flower`` (no face; scikit-learn's sample
    images). For trying face detection and the notebooks."""
    import matplotlib
    import sklearn.datasets
    found = {"grace_hopper": Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg",
             "china": Path(sklearn.datasets.__file__).parent / "images" / "china.jpg",
             "flower": Path(sklearn.datasets.__file__).parent / "images" / "flower.jpg"}
    missing = [str(p) for p in found.values() if not p.is_file()]
    if missing:
        raise DatasetError(f"sample photos missing from the installed packages: {', '.join(missing)}")
    return found
