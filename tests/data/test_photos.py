"""Photos are read as a viewer shows them: EXIF orientation, greyscale, transparency, CMYK, 16 bits, palettes."""
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from ferlab.data import DatasetError
from ferlab.data.photos import photo_array, read_photo, shipped_photos


@pytest.fixture(scope="module")
def photo():
    """A real photograph, small: (H, W, 3) uint8, taller than wide (so a wrong rotation changes the shape)."""
    im = Image.open(shipped_photos()["grace_hopper"]).convert("RGB").resize((64, 75))
    return np.asarray(im)


def viewer(stored: np.ndarray, orientation: int) -> np.ndarray:
    """What the EXIF standard says a viewer shows for ``stored`` pixels tagged ``orientation``: 2 mirror,
    3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90 anticlockwise."""
    return {1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
            5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1),
            7: lambda a: a[::-1, ::-1].transpose(1, 0, 2), 8: lambda a: np.rot90(a, 1)}[orientation](stored)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_gives_the_viewers_frame(photo, tmp_path, orientation):
    # the stored pixels whose view is the photo: one of the 8 flips / transposes of it
    candidates = [photo[::a, ::b] for a in (1, -1) for b in (1, -1)]
    candidates += [c.transpose(1, 0, 2) for c in candidates]
    stored = next(c for c in candidates if np.array_equal(viewer(c, orientation), photo))
    assert orientation == 1 or not np.array_equal(stored, photo)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"           # lossless, so the pixels can be compared exactly
    Image.fromarray(np.ascontiguousarray(stored)).save(path, exif=exif)
    assert np.array_equal(read_photo(path), photo)


def test_greyscale_and_16_bit_greyscale(photo, tmp_path):
    grey = np.asarray(Image.fromarray(photo).convert("L"))
    Image.fromarray(grey).save(tmp_path / "g.png")
    out = read_photo(tmp_path / "g.png")
    assert out.shape == photo.shape and all(np.array_equal(out[..., c], grey) for c in range(3))
    wide = np.array([[0, 257, 32768], [65535, 1000, 65280]], dtype=np.uint16)
    Image.fromarray(wide).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    # scaled by 255 / 65535 and rounded (not clipped at 255): 257 -> 1, 32768 -> 128, 1000 -> 4, 65280 -> 254
    assert read_photo(tmp_path / "g16.png")[..., 0].tolist() == [[0, 1, 128], [255, 4, 254]]


def png_16bit_rgb(path, arr: np.ndarray) -> None:
    """A 48-bit RGB PNG written by hand (Pillow cannot write one)."""
    h, w = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[i].astype(">u2").tobytes() for i in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_16_bit_rgb_keeps_each_channels_high_byte(tmp_path):
    arr = np.random.default_rng(0).integers(0, 65536, (5, 7, 3)).astype(np.uint16)
    png_16bit_rgb(tmp_path / "rgb16.png", arr)
    assert np.array_equal(read_photo(tmp_path / "rgb16.png"), (arr >> 8).astype(np.uint8))


def test_transparency_is_composited_over_the_background(tmp_path):
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[..., :3] = [200, 100, 0]
    rgba[..., 3] = [[0, 255, 128], [0, 0, 0]]
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    white, black = read_photo(tmp_path / "a.png"), read_photo(tmp_path / "a.png", background="black")
    assert white[0, 0].tolist() == [255, 255, 255] and black[0, 0].tolist() == [0, 0, 0]
    assert white[0, 1].tolist() == black[0, 1].tolist() == [200, 100, 0]
    # alpha 128/255 over white: c * a + 255 * (1 - a); over black: c * a
    a = 128 / 255
    assert np.allclose(white[0, 2], [200 * a + 255 * (1 - a), 100 * a + 255 * (1 - a), 255 * (1 - a)], atol=1)
    assert np.allclose(black[0, 2], [200 * a, 100 * a, 0], atol=1)
    assert np.array_equal(photo_array(rgba), white)           # an RGBA array the same way
    la = Image.fromarray(rgba[..., 3], "L").convert("LA")
    la.putalpha(Image.fromarray(rgba[..., 3]))
    la.save(tmp_path / "la.png")
    assert read_photo(tmp_path / "la.png")[0, 0].tolist() == [255, 255, 255]


def test_palette_images_with_and_without_a_transparent_colour(photo, tmp_path):
    pal = Image.fromarray(photo).quantize(16)
    pal.save(tmp_path / "p.png")
    assert np.array_equal(read_photo(tmp_path / "p.png"), np.asarray(pal.convert("RGB")))
    index = int(np.asarray(pal)[0, 0])
    pal.save(tmp_path / "pt.png", transparency=index)
    out = read_photo(tmp_path / "pt.png", background="black")
    hidden = np.asarray(pal) == index
    assert (out[hidden] == 0).all() and np.array_equal(out[~hidden], np.asarray(pal.convert("RGB"))[~hidden])


def test_cmyk_jpeg_reads_as_its_colours(photo, tmp_path):
    Image.fromarray(photo).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    out = read_photo(tmp_path / "c.jpg")
    assert out.shape == photo.shape and np.abs(out.astype(int) - photo).mean() < 6     # JPEG loss only


@pytest.mark.parametrize("content, message", [(b"not an image", "not a readable image file"),
                                              (None, "image file not found")])
def test_unreadable_files_are_named(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DatasetError, match=f"bad.jpg: {message}"):
        read_photo(path)
    Image.fromarray(np.zeros((4, 4), dtype=np.float32), "F").save(tmp_path / "f.tif")
    with pytest.raises(DatasetError, match="f.tif: floating-point image"):
        read_photo(tmp_path / "f.tif")
