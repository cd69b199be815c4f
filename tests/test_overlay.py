"""overlay: pure arrays -> arrays; the hot patch is hot in the pixels; opacity 0 is the photo."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from attnviz.errors import InvalidParameter
from attnviz.overlay import (FADE, alpha_table, attention_scale, blend, colorbar, colorize, draw_grid_lines, outline_box, png_bytes,
                             show_attention_on_image, upsample)
from attnviz.render import COLORMAPS, colormap


def photo(h=90, w=120, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def dist(a, b) -> float:
    return float(np.abs(np.asarray(a, float) - np.asarray(b, float)).sum())


def test_upsample_shapes_and_range():
    v = np.random.default_rng(1).random((4, 6)).astype(np.float32)
    for method in ("bicubic", "bilinear", "nearest"):
        big = upsample(v, 40, 60, method)
        assert big.shape == (40, 60) and big.dtype == np.float32
        assert big.min() >= v.min() - 1e-6 and big.max() <= v.max() + 1e-6  # no overshoot
    assert np.array_equal(upsample(v, 40, 60, "nearest"), v.repeat(10, 0).repeat(10, 1))
    assert np.allclose(upsample(np.full((3, 3), 0.3), 50, 70), 0.3)


def test_upsample_puts_each_value_at_its_cell_centre():
    v = np.random.default_rng(2).random((3, 5)).astype(np.float32)
    big = upsample(v, 27, 45, "bicubic")  # 9 x 9 cells: centre pixel (4, 4) of each cell
    for r in range(3):
        for c in range(5):
            assert big[r * 9 + 4, c * 9 + 4] == pytest.approx(v[r, c], abs=2e-3)


def test_upsample_is_smooth():
    v = np.zeros((4, 4), np.float32)
    v[1, 1] = 1.0
    big = upsample(v, 400, 400)
    steps = np.abs(np.diff(big, axis=1)).max()
    assert steps < 0.05  # no blocky jumps
    nearest = upsample(v, 400, 400, "nearest")
    assert np.abs(np.diff(nearest, axis=1)).max() == 1.0


def test_upsample_errors():
    with pytest.raises(InvalidParameter):
        upsample(np.zeros((0, 3)), 10, 10)
    with pytest.raises(InvalidParameter):
        upsample(np.array([[np.nan]]), 10, 10)
    with pytest.raises(InvalidParameter):
        upsample(np.zeros((2, 2)), 10, 10, "lanczos9")
    with pytest.raises(InvalidParameter):
        upsample(np.zeros((2, 2)), 0, 10)


@pytest.mark.parametrize("name", COLORMAPS)
def test_colorize_uses_the_shared_colormaps(name):
    lut = colormap(name).lut
    out = colorize(np.array([[0.0, 1.0, 0.5]]), name)
    assert out.shape == (1, 3, 3) and out.dtype == np.uint8
    assert (out[0, 0] == lut[0]).all() and (out[0, 1] == lut[255]).all() and (out[0, 2] == lut[128]).all()
    assert (colorize(np.array([-3.0, 7.0, np.nan]), name) == lut[[0, 255, 0]]).all()


def test_colorize_rejects_unknown_maps():
    with pytest.raises(InvalidParameter):
        colorize(np.zeros(3), "jet")
    with pytest.raises(InvalidParameter):
        colorize(np.zeros(3), np.zeros((10, 3), np.uint8))


def test_opacity_zero_gives_the_photo_back_exactly():
    img = photo()
    out = show_attention_on_image(img, np.random.default_rng(3).random((3, 4)), opacity=0.0)
    assert np.array_equal(out, img)
    assert np.array_equal(blend(img, photo(seed=9), 0.0), img)


def test_opacity_one_is_the_heatmap_alone():
    v = np.random.default_rng(4).random((3, 4))
    a = show_attention_on_image(photo(seed=1), v, opacity=1.0, fade=0.0)
    b = show_attention_on_image(photo(seed=2), v, opacity=1.0, fade=0.0)
    assert np.array_equal(a, b)
    # with the default fade, the map alone wherever the weight is above the fade part of the scale
    a, b = (show_attention_on_image(photo(seed=k), v, opacity=1.0, method="nearest") for k in (1, 2))
    s = (v - v.min()) / (v.max() - v.min())
    above = (s >= FADE + 1 / 255).repeat(30, 0).repeat(30, 1)
    assert above.sum() > 0 and np.array_equal(a[above], b[above]) and not np.array_equal(a, b)


def expected_overlay(img, v, cmap, opacity, fade, vmin=None, vmax=None, cell=20):
    """The overlay in float64 numpy, independent of Pillow: nearest upsampling of ``v`` (cells of ``cell`` px),
    each pixel = photo * (1 - alpha) + colour * alpha, alpha = opacity * min(1, s / fade)."""
    lo = v.min() if vmin is None else vmin
    hi = v.max() if vmax is None else vmax
    s = np.clip((v - lo) / (hi - lo), 0, 1).repeat(cell, 0).repeat(cell, 1)
    level = np.floor(s * 255 + 0.5).astype(int)
    alpha = opacity * np.minimum(1.0, level / (255.0 * fade))[..., None]
    return img.astype(np.float64) * (1 - alpha) + colormap(cmap).lut[level].astype(np.float64) * alpha


@pytest.mark.parametrize("cmap", ["cividis", "viridis"])
@pytest.mark.parametrize("opacity", [0.4, 0.55, 1.0])
def test_weight_is_the_colours_alpha_so_low_weight_leaves_the_photo(cmap, opacity):
    img = photo(60, 80, seed=7)
    v = np.random.default_rng(8).random((3, 4)) ** 3
    v[0, 0], v[2, 3] = 0.0, 1.0  # a zero-weight patch and the top of the scale
    out = show_attention_on_image(img, v, cmap=cmap, opacity=opacity, method="nearest")
    ref = expected_overlay(img, v, cmap, opacity, FADE)
    assert np.abs(out.astype(np.float64) - ref).max() <= 1.0  # Pillow's 8-bit compositing rounds
    assert np.abs(out[:20, :20].astype(int) - img[:20, :20].astype(int)).max() <= 1  # weight 0: the photo
    top = colormap(cmap).lut[255] * opacity + img[40:, 60:].astype(np.float64) * (1 - opacity)
    assert np.abs(out[40:, 60:] - top).max() <= 1.0
    # the old uniform veil (fade=0) changes the zero-weight patch too: what made photos muddy
    veiled = show_attention_on_image(img, v, cmap=cmap, opacity=opacity, method="nearest", fade=0.0)
    assert np.abs(veiled[:20, :20].astype(int) - img[:20, :20].astype(int)).mean() > 10


def test_alpha_table():
    t = alpha_table(0.5, 0.2)
    assert t[0] == 0 and t[51] == 128 and t[255] == 128 and t[25] == round(127.5 * 25 / 51)
    assert (np.diff(t.astype(int)) >= 0).all()
    assert (alpha_table(0.5, 0.0) == 128).all()
    for bad in (-0.1, 1.5, "x"):
        with pytest.raises(InvalidParameter, match="fade"):
            alpha_table(0.5, bad)


def test_exclude_query_scales_over_the_other_patches():
    from attnviz.image import PatchGrid

    img = photo(60, 80, seed=3)
    grid = PatchGrid.of(80, 60, 3, 4)
    rng = np.random.default_rng(11)
    w = rng.random(12) * 0.03
    q = 5  # (1, 1): takes 65 % of its own row, as a clicked patch does at cosine T = 0.1
    w[q] = 0.65
    w /= w.sum()
    others = np.delete(w, q)
    best = int(np.argmax(np.where(np.arange(12) == q, -1, w)))
    br, bc = divmod(best, 4)
    cell = (slice(br * 20 + 6, br * 20 + 14), slice(bc * 20 + 6, bc * 20 + 14))  # inside, clear of outlines
    out, scale = show_attention_on_image(img, w, grid=grid, query=q, exclude_query=True, opacity=1.0,
                                         method="nearest", return_scale=True)
    assert scale.query_excluded and scale.vmin == pytest.approx(others.min()) and scale.vmax == pytest.approx(others.max())
    assert scale.query_value == pytest.approx(w[q]) and scale.query_off_scale
    lut = colormap("cividis").lut
    assert (out[cell] == lut[255]).all()  # the brightest other patch reaches the top colour
    # the same against the independent computation with the query clipped to the top
    ref = expected_overlay(img, w.reshape(3, 4), "cividis", 1.0, FADE, others.min(), others.max())
    inner = np.ones((60, 80), bool)
    x0, y0, x1, y1 = grid.box(1, 1)
    inner[y0:y1, x0:x1] = False  # the query patch carries its outline
    assert np.abs(out[inner] - ref[inner]).max() <= 1.0
    # and the query patch is outlined: a dark line on its border, a light one inside
    lw = max(2, 2 * max(1, round(80 / 800)))
    assert (out[y0, x0 + 5] == 0).all() and (out[y0 + lw, x0 + 8] == 255).all()
    # without it the query takes the top and the best other patch is far down the scale
    plain, s2 = show_attention_on_image(img, w, grid=grid, query=q, opacity=1.0, method="nearest", return_scale=True)
    assert not s2.query_excluded and s2.vmax == pytest.approx(w[q]) and s2.query_value is None
    level = round((w[best] - w.min()) / (w.max() - w.min()) * 255)
    assert level < 40  # under the fade: mostly the photo, what made the rest of the photo look empty
    ref_plain = expected_overlay(img, w.reshape(3, 4), "cividis", 1.0, FADE)
    assert np.abs(plain[cell] - ref_plain[cell]).max() <= 1.0
    assert np.abs(plain[cell].astype(int) - lut[255].astype(int)).mean() > 50
    with pytest.raises(InvalidParameter, match="query"):
        show_attention_on_image(img, w, grid=grid, exclude_query=True)
    with pytest.raises(InvalidParameter, match="query"):
        attention_scale(np.ones(1), exclude=0)


def test_blend_is_exact_at_half():
    a = np.zeros((1, 1, 3), np.uint8)
    b = np.full((1, 1, 3), 200, np.uint8)
    assert tuple(blend(a, b, 0.5)[0, 0]) == (100, 100, 100)
    with pytest.raises(InvalidParameter):
        blend(a, b, -0.1)
    with pytest.raises(InvalidParameter):
        blend(a, np.zeros((2, 2, 3), np.uint8), 0.5)
    with pytest.raises(InvalidParameter):
        blend(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8), 0.5)


@pytest.mark.parametrize("cmap", ["cividis", "viridis", "inferno"])
def test_the_hot_patch_is_hot_in_the_pixels(cmap):
    lut = colormap(cmap).lut
    grey = np.full((90, 120, 3), 128, np.uint8)
    v = np.full((3, 4), 0.01)
    v[1, 2] = 0.9  # the hot patch: rows 30..60, cols 60..90
    out = show_attention_on_image(grey, v, cmap=cmap, opacity=0.6)
    hot_px, cold_px = out[45, 75], out[5, 5]
    assert dist(hot_px, lut[255] * 0.6 + 128 * 0.4) <= 6
    assert dist(cold_px, (128, 128, 128)) <= 3  # the bottom of the scale leaves the photo as it is
    assert dist(hot_px, lut[255]) < dist(cold_px, lut[255])
    # hotness falls off from the hot cell's centre
    heat = np.array([dist(out[45, x], (128, 128, 128)) for x in (75, 95, 115)])
    assert heat[0] > heat[1] > heat[2]


def test_fixed_scale():
    grey = np.full((10, 10, 3), 100, np.uint8)
    out = show_attention_on_image(grey, np.full((2, 2), 0.6), vmin=0.0, vmax=1.0, opacity=1.0)  # 0.6 > FADE
    assert (out == colormap("cividis").lut[153]).all()  # 0.6 * 255 = 153


def test_heat_image_matches_the_numpy_path():
    from attnviz.overlay import heat_image

    v = np.random.default_rng(5).random((5, 7))
    fast = np.asarray(heat_image(v, 50, 70, "magma"))
    slow = colorize(upsample(v, 50, 70), "magma")
    assert fast.shape == slow.shape == (50, 70, 3)
    assert np.abs(fast.astype(int) - slow.astype(int)).max() <= 6  # one palette step at most


def test_grid_lines_and_outline():
    img = np.zeros((40, 60, 3), np.uint8)
    g = draw_grid_lines(img, (0, 20, 40), (0, 20, 40, 60), color=(255, 0, 0), width=1)
    assert (g[20, :, 0] == 255).all() and (g[:, 40, 0] == 255).all()
    assert (g[10, 10] == 0).all() and (img == 0).all()  # input untouched
    o = outline_box(img, (20, 0, 40, 20), width=2)
    assert (o[0, 20] == 0).all() and (o[2, 25] == 255).all()  # dark border outside, light line inside
    assert (o[10, 30] == 0).all() and (o[30, 30] == 0).all()
    with pytest.raises(InvalidParameter):
        outline_box(img, (100, 100, 120, 120))


def test_full_overlay_with_grid_and_outline():
    out = show_attention_on_image(photo(), np.ones((3, 4)), grid_lines=((0, 30, 60, 90), (0, 30, 60, 90, 120)),
                                  outline=(30, 30, 60, 60))
    assert out.shape == (90, 120, 3)


@pytest.mark.parametrize("vertical", [True, False])
def test_colorbar(vertical):
    lut = colormap("viridis").lut
    bar = colorbar(0.0, 0.25, "viridis", length=100, thickness=10, vertical=vertical, label="weight")
    assert bar.dtype == np.uint8 and bar.ndim == 3
    ink = (bar.sum(axis=2) < 100)
    assert ink.sum() > 30  # tick labels and the title were drawn
    if vertical:
        col = bar[:, 5].astype(int)
        assert any(dist(c, lut[255]) < 10 for c in col[:60]) and any(dist(c, lut[0]) < 10 for c in col[-60:])
    else:
        row = bar[20 + 5].astype(int) if bar.shape[0] > 25 else bar[5].astype(int)
        assert any(dist(c, lut[0]) < 10 for c in row) and any(dist(c, lut[255]) < 10 for c in row)
    with pytest.raises(InvalidParameter):
        colorbar(0, 1, length=3)


def test_colorbar_fades_its_bottom_into_the_background_like_the_overlay():
    lut = colormap("cividis").lut
    plain = colorbar(0.0, 1.0, "cividis", length=256, thickness=10)
    faded = colorbar(0.0, 1.0, "cividis", length=256, thickness=10, fade=FADE)
    col_plain, col = plain[:, 5].astype(int), faded[:, 5].astype(int)
    ys = [y for y in range(len(col)) if dist(col_plain[y], lut[0]) == 0]  # the bottom of the scale
    assert ys and all(dist(col[y], (255, 255, 255)) == 0 for y in ys)  # weight 0: the background, as the photo
    top = [y for y in range(len(col)) if dist(col_plain[y], lut[255]) < 6]
    assert top and all(dist(col[y], lut[255]) <= 3 for y in top)  # above the fade: the full colour
    assert any(0 < dist(col[y], col_plain[y]) for y in range(len(col)))


def test_png_bytes_roundtrip():
    img = photo()
    data = png_bytes(img)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), img)
    assert png_bytes(Image.fromarray(img))[:4] == b"\x89PNG"


@pytest.mark.parametrize("level", [0, 1, 3, 6])
@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (37, 53), (90, 120)])
def test_png_bytes_decode_to_the_same_pixels(level, shape):
    img = photo(*shape, seed=sum(shape))
    data = png_bytes(img, compress_level=level)
    back = Image.open(io.BytesIO(data))
    back.load()  # a full decode: CRCs and the zlib stream are checked
    assert back.mode == "RGB" and back.size == shape[::-1] and np.array_equal(np.asarray(back), img)
    grey = Image.fromarray(img[..., 0], "L")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png_bytes(grey, level)))), np.asarray(grey.convert("RGB")))


def test_fast_png_stays_near_pillows_size_on_a_photo():
    from sklearn.datasets import load_sample_image

    from attnviz.overlay import FAST_PNG_MAX_LEVEL

    img = show_attention_on_image(load_sample_image("china.jpg"), np.random.default_rng(0).random((11, 16)) ** 4)
    fast = png_bytes(img, 1)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", compress_level=1)
    assert len(fast) < 1.1 * len(buf.getvalue()) and FAST_PNG_MAX_LEVEL >= 1
    for bad in (-1, 10):
        with pytest.raises(InvalidParameter, match="compress_level"):
            png_bytes(img, bad)


def test_pil_images_are_accepted():
    out = show_attention_on_image(Image.new("L", (20, 10), 50), np.ones((1, 2)))
    assert out.shape == (10, 20, 3)


def test_one_overlay_for_patch_grids_flat_weights_grid_lines_and_the_query():
    from attnviz.image import PatchGrid

    photo_arr = photo(60, 90, seed=4)
    full = PatchGrid.of(900, 600, 3, 4)  # the grid of the full-resolution photo, laid over a 90 x 60 copy
    flat = np.arange(12, dtype=np.float64)
    by_map = show_attention_on_image(photo_arr, flat.reshape(3, 4), opacity=0.5)
    by_grid = show_attention_on_image(photo_arr, flat, grid=full, opacity=0.5)
    assert np.array_equal(by_map, by_grid)  # flat row-major weights = the (rows, cols) map
    g = full.scaled(90, 60)
    lined = show_attention_on_image(photo_arr, flat, grid=full, show_grid=True)
    assert np.array_equal(lined, show_attention_on_image(photo_arr, flat.reshape(3, 4),
                                                         grid_lines=(g.row_edges, g.col_edges)))
    framed = show_attention_on_image(photo_arr, flat, grid=full, query=(1, 2))
    assert np.array_equal(framed, show_attention_on_image(photo_arr, flat, grid=full, query=6))  # index = (r, c)
    assert np.array_equal(framed, show_attention_on_image(photo_arr, flat.reshape(3, 4), outline=g.box(1, 2)))
    with pytest.raises(InvalidParameter, match="do not fit"):
        show_attention_on_image(photo_arr, np.ones(5), grid=full)
    with pytest.raises(InvalidParameter, match="outside"):
        show_attention_on_image(photo_arr, flat, grid=full, query=(3, 0))
    with pytest.raises(InvalidParameter, match="grid="):
        show_attention_on_image(photo_arr, flat.reshape(3, 4), show_grid=True)


@pytest.mark.parametrize("backend", ["isal", "zlib"])
@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_both_deflate_backends_write_pngs_that_decode_to_the_same_pixels(monkeypatch, backend, level):
    import zlib

    from attnviz import overlay

    if backend == "isal":
        import isal  # noqa: F401  a requirement (requirements.txt): never skipped
        overlay.isal_zlib.cache_clear()
        assert overlay.isal_zlib() is not None
    else:  # isal missing: the standard library's zlib with png_strategy
        monkeypatch.setattr(overlay, "isal_zlib", lambda: None)
    from sklearn.datasets import load_sample_image

    img = show_attention_on_image(load_sample_image("china.jpg"), np.random.default_rng(1).random((11, 16)))
    data = png_bytes(img, level)
    back = Image.open(io.BytesIO(data))
    back.load()  # a full decode: CRCs, the deflate stream and its Adler-32 are checked
    assert back.mode == "RGB" and np.array_equal(np.asarray(back), img)
    raw = img.nbytes + img.shape[0]
    stream = overlay.deflate(b"abc" * 1000, level)
    assert zlib.decompress(stream) == b"abc" * 1000
    if level == 0:
        assert len(data) > raw  # stored: nothing is compressed
    else:
        assert len(data) < 0.8 * raw  # compressed (a photo overlay's Up-filtered rows by a third or more)


def test_isal_is_the_encoder_when_installed(monkeypatch):
    """With isal (a requirement) level 1 goes through ISA-L, not zlib: the stream differs from zlib's."""
    import zlib

    import isal  # noqa: F401  a requirement (requirements.txt): never skipped

    from attnviz import overlay

    overlay.isal_zlib.cache_clear()
    data = np.random.default_rng(2).integers(0, 8, 200_000, dtype=np.uint8).tobytes()
    fast = overlay.deflate(data, 1)
    z = zlib.compressobj(1, zlib.DEFLATED, 15, 8, overlay.png_strategy(1))
    assert zlib.decompress(fast) == data and fast != z.compress(data) + z.flush()


@pytest.mark.parametrize("opacity", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("query, show_grid", [(None, False), ((1, 2), False), (None, True), ((0, 0), True)])
def test_the_overlay_is_a_fresh_writable_array_of_its_own(opacity, query, show_grid):
    from attnviz.image import PatchGrid

    img = photo(84, 112, seed=9)
    grid = PatchGrid.of(img.shape[1], img.shape[0], 3, 4) if query is not None or show_grid else None
    if grid is None:
        out = show_attention_on_image(img, np.arange(12.0).reshape(3, 4), opacity=opacity)
    else:
        out = show_attention_on_image(img, np.arange(12.0), grid=grid, query=query, show_grid=show_grid,
                                      opacity=opacity)
    assert out.flags.writeable and out.flags.c_contiguous and not np.shares_memory(out, img)
    before = img.copy()
    out[:] = 0  # the caller may draw on it: the photo is untouched
    assert np.array_equal(img, before)
