"""Every malformed or unusual image we can make, through the library, the image page (AppTest) and the CLI.

Each either works correctly (right upright size, right colours) or gives exactly one friendly sentence:
on the page one ``st.error`` and no exception element, in the CLI exit code 2 and one line on stderr. None
hangs: each test has a timeout and the refusals are timed.
"""

from __future__ import annotations

import io
import json
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

from attnviz import image as im
from attnviz.cli import main as cli_main
from attnviz.errors import CorruptImage, ImageError, ImageTooLarge, NotAnImage

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------- makers


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def china() -> Image.Image:
    """The real photo scikit-learn ships (427 x 640)."""
    from sklearn.datasets import load_sample_image

    return Image.fromarray(load_sample_image("china.jpg"))


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_declaring(width: int, height: int) -> bytes:
    """A 60-byte PNG whose header claims width x height pixels."""
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + png_chunk(b"IEND", b""))


def gif_declaring(width: int, height: int) -> bytes:
    """A tiny GIF whose logical screen and single frame claim width x height pixels."""
    return (b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
            + b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00" + b"\x3b")


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real small JPEG with its SOF marker rewritten to claim width x height."""
    data = bytearray(encode(Image.new("RGB", (16, 16), (200, 30, 30)), "JPEG"))
    i = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, i + 5, height, width)
    return bytes(data)


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (48, 32), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def sixteen_bit_png() -> bytes:
    a = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (32, 1))  # a left-to-right ramp, full 16-bit range
    img = Image.fromarray(a)
    assert img.mode == "I;16"
    return encode(img, "PNG")


def cmyk_jpeg() -> bytes:
    img = Image.new("CMYK", (40, 30), (0, 255, 255, 0))  # pure red in CMYK
    return encode(img, "JPEG", quality=95)


def palette_with_transparency() -> bytes:
    img = Image.new("P", (40, 30), 1)
    img.putpalette([0, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))  # 0: black, 1: blue
    img.paste(0, (0, 0, 20, 30))  # left half index 0 = the transparent one
    return encode(img, "PNG", transparency=0)


def exif_rotated_jpeg() -> bytes:
    """A 300 x 200 picture stored sideways with EXIF orientation 6: upright it is 200 x 300."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(china().resize((300, 200)), "JPEG", exif=exif.tobytes(), quality=90)


# ------------------------------------------------------------------------------------------ the cases


@dataclass(frozen=True)
class Case:
    filename: str
    make: Callable[[], bytes]
    error: type[ImageError] | None = None  # None: it must work
    needle: str = ""  # in the error sentence
    size: tuple[int, int] | None = None  # (width, height) of the upright image when it works
    check: Callable[[Image.Image], None] | None = None  # colours etc. when it works


def _first_frame_is_red(img):
    assert tuple(img.getpixel((10, 10))) == (255, 0, 0)


def _ramp_is_scaled_not_clipped(img):
    row = np.asarray(img)[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255 and 120 <= row[32] <= 135  # Pillow's own convert would clip to 255
    assert (np.diff(row) >= 0).all()


def _cmyk_red_is_red(img):
    r, g, b = img.getpixel((20, 15))
    assert r > 200 and g < 80 and b < 80


def _transparent_is_white(img):
    assert tuple(img.getpixel((5, 5))) == (255, 255, 255) and tuple(img.getpixel((35, 5))) == (0, 0, 255)


def _upright_is_portrait(img):
    assert img.size == (200, 300)


CASES = {
    "empty": Case("empty.jpg", lambda: b"", NotAnImage, "empty"),
    "truncated_jpeg": Case("half.jpg", lambda: encode(china(), "JPEG")[:15_000], CorruptImage, "cut short"),
    "truncated_png": Case("half.png", lambda: encode(china(), "PNG")[:40_000], CorruptImage, "cut short"),
    "not_an_image_text": Case("notes.png", lambda: b"just some words, not a picture\n" * 20, NotAnImage,
                              "not an image"),
    "not_an_image_html": Case("page.gif", lambda: b"<html><script>alert(1)</script></html>", NotAnImage,
                              "not an image"),
    "not_an_image_pdf": Case("doc.jpg", lambda: b"%PDF-1.4\n1 0 obj << >> endobj\n" * 10, NotAnImage, "PDF"),
    "random_bytes": Case("noise.webp", lambda: np.random.default_rng(0).bytes(4096), NotAnImage, "not an image"),
    "bomb_png": Case("bomb.png", lambda: png_declaring(100_000, 100_000), ImageTooLarge, "megapixels"),
    "bomb_gif": Case("bomb.gif", lambda: gif_declaring(65_000, 65_000), ImageTooLarge, "megapixels"),
    "bomb_jpeg": Case("bomb.jpg", lambda: jpeg_declaring(60_000, 60_000), ImageTooLarge, "megapixels"),
    "wrong_extension": Case("really_a_png.jpg", lambda: encode(china(), "PNG"), size=(640, 427)),
    "jpeg_named_tiff": Case("photo.tiff", lambda: encode(china(), "JPEG"), size=(640, 427)),
    "animated_gif": Case("anim.gif", animated_gif, size=(48, 32), check=_first_frame_is_red),
    "sixteen_bit": Case("deep.png", sixteen_bit_png, size=(64, 32), check=_ramp_is_scaled_not_clipped),
    "cmyk": Case("print.jpg", cmyk_jpeg, size=(40, 30), check=_cmyk_red_is_red),
    "palette_transparency": Case("logo.png", palette_with_transparency, size=(40, 30), check=_transparent_is_white),
    "exif_rotated": Case("phone.jpg", exif_rotated_jpeg, size=(200, 300), check=_upright_is_portrait),
    "one_pixel": Case("dot.png", lambda: encode(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG"), size=(1, 1)),
    "thin_strip": Case("strip.png", lambda: encode(Image.new("RGB", (3000, 2), (0, 128, 0)), "PNG"), size=(3000, 2)),
}
FAILING = [k for k, c in CASES.items() if c.error]
WORKING = [k for k, c in CASES.items() if not c.error]


@pytest.fixture(scope="module")
def payloads() -> dict[str, bytes]:
    return {name: case.make() for name, case in CASES.items()}


def assert_one_sentence(message: str) -> None:
    assert message and "\n" not in message and "Traceback" not in message and len(message) < 400, message
    assert message[0].isupper() or message[0] in "“\"'", message


# -------------------------------------------------------------------------------------------- library


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", list(CASES))
def test_library(name, payloads):
    case = CASES[name]
    t0 = time.perf_counter()
    if case.error:
        with pytest.raises(case.error) as info:
            im.load_image(payloads[name])
        assert case.needle.lower() in str(info.value).lower()
        assert_one_sentence(str(info.value))
        assert "178956970" not in str(info.value)  # our limit, not Pillow's internal one
        assert time.perf_counter() - t0 < 5  # refused from the header, never decoded
        return
    img = im.load_image(payloads[name])
    assert img.mode == "RGB" and img.size == case.size
    if case.check:
        case.check(img)
    res = im.analyze_image(payloads[name], query=(0, 0))  # and the whole analysis works on it
    assert res.scores.sum() == pytest.approx(1.0, abs=1e-4) and np.isfinite(res.scores).all()


# ----------------------------------------------------------------------------------------------- page


@pytest.fixture(scope="module")
def image_page():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/image.py").run()
    assert not at.exception
    return at


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", list(CASES))
def test_page(name, payloads, image_page):
    at, case = image_page, CASES[name]
    at.file_uploader(key="img_upload").set_value((case.filename, payloads[name], "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    heatmaps = [c for c in at.get("component_instance") if c.proto.id.endswith("img_click")]
    if case.error:
        assert len(errors) == 1, errors
        assert case.needle.lower() in errors[0].lower()
        assert_one_sentence(errors[0])
        assert not heatmaps  # nothing half-drawn below the message
    else:
        assert not errors, errors
        w, h = case.size
        assert any(f"{w} × {h} px (upright)" in cap for img in at.image for cap in
                   [i.caption for i in img.proto.imgs]), "the photo and its upright size are shown"
        assert heatmaps


# ------------------------------------------------------------------------------------------------ CLI


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", list(CASES))
def test_cli(name, payloads, tmp_path, capsys):
    case = CASES[name]
    path = tmp_path / case.filename
    path.write_bytes(payloads[name])
    rc = cli_main(["image", str(path), "--json"])
    out, err = capsys.readouterr()
    if case.error:
        assert rc == 2 and out == ""
        assert err.count("\n") == 1 and err.startswith("attnviz: ") and "Traceback" not in err
        assert case.needle.lower() in err.lower()
    else:
        assert rc == 0, err
        data = json.loads(out)
        assert (data["width"], data["height"]) == case.size


def test_too_many_bytes_is_one_sentence(tmp_path):
    with pytest.raises(ImageTooLarge) as info:
        im.load_image(encode(china(), "PNG"), max_bytes=10_000)
    assert_one_sentence(str(info.value))
    assert "larger than" in str(info.value)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("filename", [
    "<img src=x onerror=alert(1)>ZQX.png", "[ZQX](javascript:alert(1)).png", "# ZQX **bold** ![i](http://example.invalid/i).png",
    "ZQX\u202egnp.exe.png", "../../etc/ZQX.png", "ZQX" + "x" * 300 + ".png",
])
def test_page_shows_hostile_file_names_as_plain_text(filename, payloads, image_page):
    """The upload's name reaches a caption, an error sentence and the download names: always inert."""
    from inert import assert_page_inert

    at = image_page
    for data in (encode(china().resize((64, 48)), "PNG"), payloads["truncated_png"]):
        at.file_uploader(key="img_upload").set_value((filename, data, "image/png")).run()
        assert_page_inert(at)
    names = [b.proto.label for b in at.get("download_button")]
    assert all("<" not in n and "](" not in n for n in names)

