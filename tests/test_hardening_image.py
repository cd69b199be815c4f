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



# ------------------------------------------------------------------------------- round two: findings


def small_jpeg(progressive: bool = False) -> bytes:
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)
    return encode(Image.fromarray(rgb), "JPEG", quality=90, progressive=progressive)


@pytest.mark.timeout(60)
def test_a_jpeg_of_twenty_thousand_scans_is_refused_before_decoding():
    data = small_jpeg(progressive=True)
    last = data.rindex(b"\xff\xda")  # the last scan (SOS header + its entropy-coded data), up to EOI
    evil = data[:last] + data[last:-2] * 20_000 + data[-2:]
    assert im.load.jpeg_structure(evil)[0] > 20_000
    start = time.perf_counter()
    with pytest.raises(CorruptImage, match="scans") as info:
        im.load_image(evil)
    assert time.perf_counter() - start < 2.0
    assert_one_sentence(str(info.value))
    assert im.load_image(data).size == (64, 64)  # an ordinary progressive JPEG (10 scans) still loads


@pytest.mark.timeout(60)
def test_a_jpeg_of_900_exif_segments_is_refused_before_pillow_parses_it():
    data = small_jpeg()
    exif = Image.Exif()
    exif[0x0112] = 1
    body = exif.tobytes()  # "Exif\0\0" + a TIFF header: what cameras put in APP1
    assert body.startswith(b"Exif\x00\x00")
    segment = b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
    evil = data[:2] + segment * 900 + data[2:]
    with pytest.raises(CorruptImage, match="metadata") as info:
        im.load_image(evil)
    assert_one_sentence(str(info.value))
    big = b"\xff\xe2" + struct.pack(">H", 65535) + b"\x00" * 65533  # 80 x 64 KB of APP2: too many bytes
    with pytest.raises(CorruptImage, match="MB"):
        im.load_image(data[:2] + big * 80 + data[2:])
    assert im.load_image(data[:2] + segment * 3 + data[2:]).size == (64, 64)  # a few blocks are normal


def _tiny_pt2(path: Path) -> bytes:
    import torch

    ep = torch.export.export(torch.nn.Conv2d(3, 4, 3).eval(), (torch.zeros(1, 3, 16, 16),))
    torch.export.save(ep, str(path))
    return path.read_bytes()


def _rewrite_zip(data: bytes, path: Path, replace: Callable[[str, bytes], bytes], extra: dict | None = None) -> Path:
    import zipfile

    src = zipfile.ZipFile(io.BytesIO(data))
    prefix = src.namelist()[0].split("/", 1)[0]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as out:
        for info in src.infolist():
            out.writestr(info, replace(info.filename, src.read(info)))
        for name, blob in (extra or {}).items():
            out.writestr(f"{prefix}/{name}", blob)
    return path


class _RunsCode:
    """Unpickling this calls os.makedirs(path): proof that the full unpickler ran."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        import os

        return (os.makedirs, (self.path,))


@pytest.mark.timeout(120)
def test_a_pt2_with_a_pickle_is_refused_and_never_unpickled(tmp_path, capfd):
    import torch

    from attnviz.errors import ModelNotFound

    marker = tmp_path / "the-pickle-ran"
    good = _tiny_pt2(tmp_path / "good.pt2")
    buf = io.BytesIO()
    torch.save(((_RunsCode(str(marker)),), {}), buf)  # torch retries these sample inputs with weights_only=False
    evil = _rewrite_zip(good, tmp_path / "evil.pt2",
                        lambda name, blob: buf.getvalue() if name.endswith("data/sample_inputs/model.pt") else blob)
    with pytest.raises(ModelNotFound, match="could run code") as info:
        im.load_extractor(evil)
    assert not marker.exists()
    assert_one_sentence(str(info.value))
    # weights stored as pickles, and TorchBind objects, are refused without being read
    flagged = _rewrite_zip(good, tmp_path / "flagged.pt2", lambda name, blob: blob.replace(
        b'"use_pickle": false', b'"use_pickle": true') if name.endswith("model_weights_config.json") else blob)
    with pytest.raises(ModelNotFound, match="pickled tensors"):
        im.load_extractor(flagged)
    custom = _rewrite_zip(good, tmp_path / "custom.pt2", lambda name, blob: blob,
                          {"data/constants/custom_obj_0": b"\x80\x04N."})
    with pytest.raises(ModelNotFound, match="pickled Python object"):
        im.load_extractor(custom)
    assert im.load_extractor(tmp_path / "good.pt2").name == "good.pt2"  # an ordinary export still loads
    # the CLI: exit 2, one line, none of torch's logging noise ("--- Logging error ---" and a traceback)
    capfd.readouterr()
    rc = cli_main(["image", str(ROOT / "attnviz" / "assets" / "shapes.png"), "--features", str(evil)])
    out, err = capfd.readouterr()
    assert rc == 2 and not marker.exists()
    assert err.count("\n") == 1 and "could run code" in err
    assert "Logging error" not in err and "Traceback" not in err


@pytest.mark.timeout(60)
def test_torch_log_lines_are_dropped_only_for_the_loading_thread(tmp_path, capfd):
    import logging

    junk = tmp_path / "junk.pt2"
    _rewrite_zip(_tiny_pt2(tmp_path / "base.pt2"), junk,
                 lambda name, blob: b"{broken" if name.endswith("models/model.json") else blob)
    capfd.readouterr()
    with pytest.raises(Exception):
        im.load_extractor(junk)
    assert "Traceback" not in capfd.readouterr().err
    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    logger = logging.getLogger("torch.export")
    h = Keep()
    logger.addHandler(h)
    try:
        logger.warning("another thread's message")
    finally:
        logger.removeHandler(h)
    assert seen == ["another thread's message"]  # outside a load, torch's logs are untouched


# 6600 x 6000 = 39.6 megapixels (just under the 40 MP limit), each file a few hundred KB; the bound is the one
# docs/limits.md states: 8 bytes per pixel (the decoded picture and its RGB result) + 64 MiB of temporaries
MEMORY_W, MEMORY_H = 6600, 6000
MEMORY_BOUND_MIB = 8 * MEMORY_W * MEMORY_H / 2**20 + 64
MEMORY_CASES = {
    "float32 TIFF": "a = np.zeros((H, W), np.float32); a[:, W // 2:] = 0.75\n"
                    "Image.fromarray(a, 'F').save(buf, 'TIFF', compression='tiff_adobe_deflate')",
    "16-bit TIFF": "a = np.zeros((H, W), np.uint16); a[:, W // 2:] = 40000\n"
                   "Image.fromarray(a).save(buf, 'TIFF', compression='tiff_adobe_deflate')",
    "16-bit PNG": "a = np.zeros((H, W), np.uint16); a[:, W // 2:] = 40000\nImage.fromarray(a).save(buf, 'PNG')",
    "RGB PNG": "Image.new('RGB', (W, H), (10, 200, 30)).save(buf, 'PNG')",
    "RGBA PNG": "Image.new('RGBA', (W, H), (10, 200, 30, 128)).save(buf, 'PNG')",
    "palette PNG with transparency": "Image.new('P', (W, H), 3).save(buf, 'PNG', transparency=3)",
    "rotated JPEG": "ex = Image.Exif(); ex[0x0112] = 6\n"
                    "Image.new('RGB', (W, H), (90, 20, 200)).save(buf, 'JPEG', exif=ex.tobytes(), quality=50)",
}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", list(MEMORY_CASES))
def test_peak_memory_of_a_tiny_file_declaring_40_megapixels_is_bounded(case):
    from memory import peak_growth_mib

    setup = (f"import io\nimport numpy as np\nfrom PIL import Image\nfrom attnviz.image import load_image\n"
             f"W, H = {MEMORY_W}, {MEMORY_H}\nbuf = io.BytesIO()\n{MEMORY_CASES[case]}\ndata = buf.getvalue()\n"
             "del buf\nassert len(data) < 2_000_000, len(data)\n")
    call = "img = load_image(data)\nassert img.mode == 'RGB' and img.width * img.height == W * H\n"
    peak = peak_growth_mib(setup, call)
    assert peak < MEMORY_BOUND_MIB, f"{case}: {peak:.0f} MiB (bound {MEMORY_BOUND_MIB:.0f} MiB)"


def test_every_upload_goes_through_the_one_loader_with_the_configured_limit(monkeypatch):
    photo = encode(Image.new("RGB", (200, 100), (5, 6, 7)), "PNG")
    assert im.load_upload(photo, "ok.png").size == (200, 100)
    with pytest.raises(ImageTooLarge, match="0.01 megapixels") as info:
        im.load_upload(photo, "big.png", env={"ATTNVIZ_MAX_IMAGE_PIXELS": "10000"})
    assert "'big.png'" in str(info.value)
    monkeypatch.setenv("ATTNVIZ_MAX_IMAGE_PIXELS", "10000")
    with pytest.raises(ImageTooLarge):
        im.load_upload(photo, "big.png")
    monkeypatch.setenv("ATTNVIZ_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(Exception, match="ATTNVIZ_MAX_IMAGE_PIXELS"):
        im.load_upload(photo, "big.png")
    monkeypatch.delenv("ATTNVIZ_MAX_IMAGE_PIXELS")
    with pytest.raises(NotAnImage, match=r"'x_y\.png'"):
        im.load_upload(b"nope" * 10, "dir/x\ny.png")
    page = (ROOT / "pages" / "image.py").read_text(encoding="utf-8")
    assert "load_upload(" in page and "load_image(" not in page
