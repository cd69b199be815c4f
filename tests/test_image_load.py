"""load_image: every mode to RGB, every EXIF orientation upright, damaged / hostile files refused."""

from __future__ import annotations

import io
import struct
import time
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from attnviz.errors import AttnvizError, CorruptImage, ImageTooLarge, ImageTooSmall, InvalidParameter, NotAnImage
from attnviz.image import MAX_IMAGE_PIXELS, load_image, to_rgb


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def px(im: Image.Image, x: int, y: int) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.asarray(im)[y, x])


def close(a, b, tol=2) -> bool:
    return all(abs(int(u) - int(v)) <= tol for u, v in zip(a, b))


# ------------------------------------------------------------------------------------------ modes

def test_rgb_passes_through_unchanged():
    arr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out = load_image(encode(Image.fromarray(arr), "PNG"))
    assert out.mode == "RGB" and out.size == (7, 5)
    assert np.array_equal(np.asarray(out), arr)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF"])
def test_rgba_is_composited_on_white(fmt):
    a = np.zeros((2, 3, 4), dtype=np.uint8)
    a[0, 0] = (255, 0, 0, 0)      # fully transparent red -> white
    a[0, 1] = (0, 0, 255, 255)    # opaque blue
    a[0, 2] = (0, 255, 0, 128)    # half-transparent green -> light green
    a[1, :] = (10, 20, 30, 255)
    kw = {"lossless": True} if fmt == "WEBP" else {}
    out = load_image(encode(Image.fromarray(a, "RGBA"), fmt, **kw))
    assert out.mode == "RGB"
    assert px(out, 0, 0) == (255, 255, 255)
    assert px(out, 1, 0) == (0, 0, 255)
    assert close(px(out, 2, 0), (127, 255, 127))
    assert px(out, 0, 1) == (10, 20, 30)


def test_la_is_composited_on_white():
    a = np.array([[[0, 0], [0, 255], [200, 128]]], dtype=np.uint8)
    out = load_image(encode(Image.fromarray(a, "LA"), "PNG"))
    assert px(out, 0, 0) == (255, 255, 255)
    assert px(out, 1, 0) == (0, 0, 0)
    assert close(px(out, 2, 0), (227, 227, 227))


def test_l_greyscale():
    a = np.array([[0, 77, 255]], dtype=np.uint8)
    out = load_image(encode(Image.fromarray(a, "L"), "PNG"))
    assert [px(out, x, 0) for x in range(3)] == [(0, 0, 0), (77, 77, 77), (255, 255, 255)]


def test_palette_without_and_with_transparency():
    p = Image.new("P", (3, 1))
    p.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (768 - 9))
    p.putdata([0, 1, 2])
    out = load_image(encode(p, "PNG"))
    assert [px(out, x, 0) for x in range(3)] == [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    out_t = load_image(encode(p, "PNG", transparency=1))  # index 1 (green) is transparent
    assert [px(out_t, x, 0) for x in range(3)] == [(255, 0, 0), (255, 255, 255), (0, 0, 255)]
    gif = load_image(encode(p, "GIF", transparency=1))
    assert [px(gif, x, 0) for x in range(3)] == [(255, 0, 0), (255, 255, 255), (0, 0, 255)]


def test_pa_mode_image_object():
    pa = Image.new("PA", (2, 1))
    pa.putpalette([255, 0, 0, 0, 0, 255] + [0] * (768 - 6))
    pa.putdata([(0, 255), (1, 0)])
    out = load_image(pa)
    assert px(out, 0, 0) == (255, 0, 0) and px(out, 1, 0) == (255, 255, 255)


def test_one_bit():
    b = Image.new("1", (2, 1))
    b.putdata([0, 255])
    out = load_image(encode(b, "PNG"))
    assert px(out, 0, 0) == (0, 0, 0) and px(out, 1, 0) == (255, 255, 255)
    assert load_image(encode(b, "TIFF")).mode == "RGB"


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_sixteen_bit_is_scaled_not_clipped(fmt):
    a = np.array([[0, 257 * 64, 32768, 65535]], dtype=np.uint16)
    im = Image.fromarray(a)  # mode I;16
    assert im.mode.startswith("I;16")
    out = load_image(encode(im, fmt))
    got = [px(out, x, 0)[0] for x in range(4)]
    assert got == [0, 64, 128, 255]  # Pillow's own convert("L") would give [0, 255, 255, 255]
    assert all(px(out, x, 0)[0] == px(out, x, 0)[1] == px(out, x, 0)[2] for x in range(4))


def test_sixteen_bit_big_endian_image_object():
    im = Image.frombytes("I;16B", (2, 1), struct.pack(">HH", 0, 65535))
    out = load_image(im)
    assert px(out, 0, 0) == (0, 0, 0) and px(out, 1, 0) == (255, 255, 255)


def test_32bit_integer_and_float_modes():
    i16 = Image.fromarray(np.array([[0, 1000, 65535]], dtype=np.int32), "I")
    assert [px(load_image(encode(i16, "TIFF")), x, 0)[0] for x in range(3)] == [0, 4, 255]
    small = Image.fromarray(np.array([[0, 100, 255]], dtype=np.int32), "I")
    assert [px(load_image(small), x, 0)[0] for x in range(3)] == [0, 100, 255]
    neg = Image.fromarray(np.array([[-50, 0, 50]], dtype=np.int32), "I")
    assert [px(load_image(neg), x, 0)[0] for x in range(3)] == [0, 128, 255]
    f01 = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), "F")
    assert [px(load_image(encode(f01, "TIFF")), x, 0)[0] for x in range(3)] == [0, 128, 255]
    fbig = Image.fromarray(np.array([[-1e6, 0.0, 1e6]], dtype=np.float32), "F")
    assert [px(load_image(fbig), x, 0)[0] for x in range(3)] == [0, 128, 255]


def test_cmyk_jpeg_and_tiff():
    cmyk = Image.new("CMYK", (3, 8))
    for x, ink in enumerate([(0, 0, 0, 0), (0, 255, 255, 0), (0, 0, 0, 255)]):
        for y in range(8):
            cmyk.putpixel((x, y), ink)
    for fmt in ("TIFF", "JPEG"):
        big = cmyk.resize((48, 16), Image.Resampling.NEAREST)
        out = load_image(encode(big, fmt, **({"quality": 95} if fmt == "JPEG" else {})))
        assert out.mode == "RGB" and out.size == (48, 16)
        assert close(px(out, 8, 8), (255, 255, 255), 8)   # no ink -> white
        assert close(px(out, 24, 8), (255, 0, 0), 12)     # magenta + yellow -> red
        assert close(px(out, 40, 8), (0, 0, 0), 8)        # black ink -> black


def test_cmyk_with_icc_profile_uses_it():
    from PIL import ImageCms

    # a CMYK image tagged with an (RGB-less) profile LittleCMS can build: fall back gracefully
    cmyk = Image.new("CMYK", (4, 4), (0, 0, 0, 0))
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = load_image(encode(cmyk, "TIFF", icc_profile=srgb))  # a mismatched profile must not crash
    assert out.mode == "RGB" and close(px(out, 0, 0), (255, 255, 255), 8)


def test_lab_and_ycbcr_and_hsv_objects():
    lab = Image.new("LAB", (1, 1), (255, 128, 128))  # L*=100, a*=b*=0 -> white
    assert close(px(load_image(lab), 0, 0), (255, 255, 255), 6)
    ycc = Image.new("RGB", (1, 1), (200, 30, 60)).convert("YCbCr")
    assert close(px(load_image(ycc), 0, 0), (200, 30, 60), 3)
    hsv = Image.new("RGB", (1, 1), (0, 0, 255)).convert("HSV")
    assert close(px(load_image(hsv), 0, 0), (0, 0, 255), 3)


def test_rgba_premultiplied_and_rgbx_objects():
    rgbx = Image.new("RGBX", (1, 1), (1, 2, 3, 0))
    assert px(load_image(rgbx), 0, 0) == (1, 2, 3)
    rgba = Image.new("RGBA", (1, 1), (0, 0, 0, 0)).convert("RGBa")
    assert px(load_image(rgba), 0, 0) == (255, 255, 255)


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    out = load_image(buf.getvalue())
    assert close(px(out, 4, 4), (255, 0, 0), 3)


def test_animated_webp_and_multipage_tiff_use_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    for fmt, kw in (("WEBP", {"lossless": True}), ("TIFF", {})):
        buf = io.BytesIO()
        frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], **kw)
        assert close(px(load_image(buf.getvalue()), 4, 4), (255, 0, 0), 3), fmt


def test_multi_picture_jpeg_from_a_phone_gives_the_first_picture():
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 10, 10)).save(buf, "MPO", save_all=True,
                                                  append_images=[Image.new("RGB", (32, 24), (10, 10, 200))])
    assert Image.open(io.BytesIO(buf.getvalue())).format == "MPO"
    assert close(px(load_image(buf.getvalue()), 5, 5), (200, 10, 10), 4)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_every_supported_format_from_path_bytes_and_file(fmt, tmp_path):
    im = Image.new("RGB", (40, 30), (30, 120, 200))
    data = encode(im, fmt)
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(data)
    for source in (path, str(path), data, io.BytesIO(data), bytearray(data), memoryview(data)):
        out = load_image(source)
        assert out.mode == "RGB" and out.size == (40, 30)
        assert close(px(out, 20, 15), (30, 120, 200), 6)


def test_file_object_is_read_from_the_start():
    data = encode(Image.new("RGB", (4, 4), (9, 9, 9)), "PNG")
    f = io.BytesIO(data)
    f.read(10)
    assert load_image(f).size == (4, 4)


def test_numpy_arrays():
    assert load_image(np.zeros((3, 4, 3), np.uint8)).size == (4, 3)
    assert px(load_image(np.full((2, 2), 200, np.uint8)), 0, 0) == (200, 200, 200)
    assert px(load_image(np.full((2, 2, 1), 7, np.uint8)), 0, 0) == (7, 7, 7)
    assert px(load_image(np.array([[True, False]])), 0, 0) == (255, 255, 255)
    assert px(load_image(np.array([[0.0, 1.0]], np.float32)), 1, 0) == (255, 255, 255)
    assert px(load_image(np.array([[0, 65535]], np.uint16)), 1, 0) == (255, 255, 255)
    rgba = np.zeros((1, 1, 4), np.uint8)
    assert px(load_image(rgba), 0, 0) == (255, 255, 255)
    with pytest.raises(ImageTooSmall):
        load_image(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(InvalidParameter):
        load_image(np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(InvalidParameter):
        load_image(12345)


def test_pil_input_is_not_modified():
    im = Image.new("RGBA", (3, 3), (0, 0, 0, 0))
    out = load_image(im)
    assert im.mode == "RGBA" and out.mode == "RGB" and out is not im
    rgb = Image.new("RGB", (3, 3))
    assert load_image(rgb) is not rgb


# ------------------------------------------------------------------------------------- orientation

# EXIF orientation -> how the stored pixels become upright (independent of Pillow: from the EXIF spec's
# "where do stored row 0 / column 0 appear" table)
UPRIGHT = {
    1: lambda s: s,
    2: lambda s: s[:, ::-1],                  # row 0 top, column 0 right
    3: lambda s: s[::-1, ::-1],               # row 0 bottom, column 0 right
    4: lambda s: s[::-1, :],                  # row 0 bottom, column 0 left
    5: lambda s: s.transpose(1, 0, 2),        # row 0 left, column 0 top
    6: lambda s: np.rot90(s, -1),             # row 0 right, column 0 top: turn clockwise
    7: lambda s: s[::-1, ::-1].transpose(1, 0, 2),  # row 0 right, column 0 bottom
    8: lambda s: np.rot90(s, 1),              # row 0 left, column 0 bottom: turn anticlockwise
}


def exif_bytes(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_png_exact(orientation):
    stored = np.random.default_rng(orientation).integers(0, 256, (2, 3, 3), dtype=np.uint8)  # asymmetric
    data = encode(Image.fromarray(stored), "PNG", exif=exif_bytes(orientation))
    out = np.asarray(load_image(data))
    expected = UPRIGHT[orientation](stored)
    assert out.shape == expected.shape
    assert np.array_equal(out, expected)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_jpeg(orientation):
    colours = np.array([[(255, 0, 0), (0, 255, 0), (0, 0, 255)],
                        [(255, 255, 0), (0, 0, 0), (255, 255, 255)]], dtype=np.uint8)
    stored = colours.repeat(16, axis=0).repeat(16, axis=1)  # 32 x 48, flat 16 px blocks survive JPEG
    data = encode(Image.fromarray(stored), "JPEG", quality=95, exif=exif_bytes(orientation))
    out = np.asarray(load_image(data)).astype(int)
    expected = UPRIGHT[orientation](stored).astype(int)
    assert out.shape == expected.shape
    h, w = out.shape[:2]
    for y in range(8, h, 16):
        for x in range(8, w, 16):
            assert np.abs(out[y, x] - expected[y, x]).max() <= 24, (orientation, x, y)


@pytest.mark.parametrize("mode", ["L", "I;16", "RGBA", "P", "1", "LA"])
def test_exif_orientation_for_other_modes(mode):
    stored = np.arange(6, dtype=np.uint8).reshape(2, 3) * 40
    im = Image.fromarray(stored, "L")
    im = im.convert(mode) if mode != "I;16" else Image.fromarray(stored.astype(np.uint16) * 257)
    out = load_image(encode(im, "PNG", exif=exif_bytes(6)))
    assert out.size == (2, 3) and out.mode == "RGB"
    if mode in ("L", "I;16", "LA", "RGBA"):
        assert np.array_equal(np.asarray(out)[..., 0], np.rot90(stored, -1))


def test_upright_size_is_reported_after_rotation():
    data = encode(Image.new("RGB", (60, 20)), "JPEG", exif=exif_bytes(6))
    assert load_image(data).size == (20, 60)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_damaged_exif_keeps_the_picture():
    data = encode(Image.new("RGB", (6, 4), (5, 6, 7)), "JPEG", exif=b"Exif\x00\x00MM\x00*garbage")
    out = load_image(data)
    assert out.size == (6, 4)


# ------------------------------------------------------------------------------- hostile and broken

def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width x height`` pixels (a decompression bomb's header)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize("size", [(100_000, 100_000), (10_000, 9_000), (7_000, 7_000)])
def test_decompression_bombs_are_refused_fast(size):
    data = png_declaring(*size)
    assert len(data) < 200
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning may escape either
        with pytest.raises(ImageTooLarge, match="megapixels"):
            load_image(data)
    assert time.perf_counter() - t < 1.0


def test_pixel_limit_is_well_below_pillows_and_adjustable():
    assert MAX_IMAGE_PIXELS <= Image.MAX_IMAGE_PIXELS / 2
    data = encode(Image.new("RGB", (100, 100)), "PNG")
    with pytest.raises(ImageTooLarge):
        load_image(data, max_pixels=9_999)
    assert load_image(data, max_pixels=10_000).size == (100, 100)
    with pytest.raises(ImageTooLarge):
        load_image(np.zeros((100, 100, 3), np.uint8), max_pixels=5000)


def test_byte_limit(tmp_path):
    data = encode(Image.new("RGB", (50, 50)), "BMP")
    with pytest.raises(ImageTooLarge, match="MB"):
        load_image(data, max_bytes=1000)
    p = tmp_path / "big.bmp"
    p.write_bytes(data)
    with pytest.raises(ImageTooLarge, match="MB"):
        load_image(p, max_bytes=1000)
    with pytest.raises(ImageTooLarge):
        load_image(io.BytesIO(data), max_bytes=1000)


def test_empty_inputs(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    for source in (b"", io.BytesIO(b""), p):
        with pytest.raises(NotAnImage, match="empty"):
            load_image(source)


@pytest.mark.parametrize("payload", [b"hello, this is plain text\n" * 10, bytes(range(256)) * 4, b"%PDF-1.7 ..."])
def test_non_images(payload):
    with pytest.raises(NotAnImage, match="not an image"):
        load_image(payload)


def test_unsupported_formats_get_a_hint():
    with pytest.raises(NotAnImage, match="HEIC"):
        load_image(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64)
    with pytest.raises(NotAnImage, match="SVG"):
        load_image(b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>')


def test_formats_outside_the_allow_list_are_not_parsed():
    # Pillow reads these, attnviz refuses them (EPS would start Ghostscript)
    for fmt in ("PPM", "TGA", "ICO"):
        with pytest.raises(NotAnImage):
            load_image(encode(Image.new("RGB", (16, 16)), fmt))
    with pytest.raises(NotAnImage):
        load_image(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_truncated_files(fmt):
    rng = np.random.default_rng(1)
    im = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = encode(im, fmt)
    with pytest.raises(CorruptImage, match="re-export or re-download"):
        load_image(data[: len(data) // 2])


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP"])
def test_damaged_headers(fmt):
    data = bytearray(encode(Image.new("RGB", (16, 16), (1, 2, 3)), fmt))
    keep = {"JPEG": 3, "PNG": 8, "GIF": 6, "BMP": 2, "TIFF": 4, "WEBP": 12}[fmt]
    data[keep:keep + 40] = b"\xff" * 40
    with pytest.raises((CorruptImage, NotAnImage)) as info:
        load_image(bytes(data))
    assert isinstance(info.value, AttnvizError)


def test_damaged_png_header_is_called_damaged_not_foreign():
    data = bytearray(encode(Image.new("RGB", (16, 16)), "PNG"))
    data[12:16] = b"XXXX"  # IHDR chunk type destroyed
    with pytest.raises(CorruptImage, match="PNG"):
        load_image(bytes(data))


def test_corrupt_png_data_checksum():
    data = bytearray(encode(Image.fromarray(np.random.default_rng(2).integers(0, 256, (32, 32, 3), np.uint8)), "PNG"))
    i = data.index(b"IDAT") + 20
    data[i:i + 30] = bytes(30)
    with pytest.raises(CorruptImage):
        load_image(bytes(data))


def test_missing_file_and_folder(tmp_path):
    from attnviz.errors import FileNotFound

    with pytest.raises(NotAnImage, match="no file") as info:
        load_image(tmp_path / "nope.png")
    assert isinstance(info.value, FileNotFound) and isinstance(info.value, FileNotFoundError)  # a not-found error
    with pytest.raises(NotAnImage, match="folder"):
        load_image(tmp_path)


def test_text_mode_file_is_refused(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("abc")
    with open(p) as f, pytest.raises(InvalidParameter, match="binary"):
        load_image(f)


def test_errors_have_friendly_one_line_messages():
    for bad in (b"", b"nonsense" * 20, png_declaring(100_000, 100_000)):
        with pytest.raises(AttnvizError) as info:
            load_image(bad)
        msg = str(info.value)
        assert "\n" not in msg and "Traceback" not in msg and len(msg) < 300


def test_to_rgb_keeps_rgb_identity():
    im = Image.new("RGB", (2, 2))
    assert to_rgb(im) is im
