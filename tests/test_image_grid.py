"""patch_grid: cells cover the picture, about `patch` pixels each; tiny and thin images; click mapping."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from attnviz.errors import ImageTooSmall, InvalidParameter
from attnviz.image import DEFAULT_PATCHES_LONG_SIDE, MAX_PATCHES, PatchGrid, analyze_image, patch_grid, smallest_patch


def check_cover(g: PatchGrid):
    assert g.row_edges[0] == 0 and g.row_edges[-1] == g.height
    assert g.col_edges[0] == 0 and g.col_edges[-1] == g.width
    assert len(g.row_edges) == g.rows + 1 and len(g.col_edges) == g.cols + 1
    assert all(b > a for a, b in zip(g.row_edges, g.row_edges[1:]))  # every cell has >= 1 pixel
    assert all(b > a for a, b in zip(g.col_edges, g.col_edges[1:]))


def test_patch_size_sets_rows_and_cols():
    g = patch_grid((640, 427), patch=32)
    assert (g.rows, g.cols) == (13, 20)
    check_cover(g)
    h, w = g.patch_size
    assert 31 < h < 34 and w == 32


def test_default_grid_has_24_patches_on_the_long_side():
    assert patch_grid((640, 427)).cols == DEFAULT_PATCHES_LONG_SIDE
    assert patch_grid((300, 900)).rows == DEFAULT_PATCHES_LONG_SIDE


def test_grid_size_forms():
    assert patch_grid((640, 480), grid=(3, 5)).shape == (3, 5)
    g = patch_grid((640, 480), grid=8)
    assert g.shape == (6, 8)


def test_image_smaller_than_a_patch_is_one_cell():
    for size in ((10, 7), (1, 1), (31, 31)):
        g = patch_grid(size, patch=64)
        assert g.shape == (1, 1)
        assert g.box(0, 0) == (0, 0, *size)


@pytest.mark.parametrize("size,patch,shape", [((500, 1), 10, (1, 50)), ((1, 500), 10, (50, 1)),
                                              ((3, 400), 16, (25, 1)), ((400, 3), 16, (1, 25)),
                                              ((1000, 2), 1000, (1, 1))])
def test_thin_images(size, patch, shape):
    g = patch_grid(size, patch=patch)
    assert g.shape == shape
    check_cover(g)


def test_requested_grid_is_clamped_to_the_pixels():
    g = patch_grid((5, 2), grid=(10, 10))
    assert g.shape == (2, 5)
    check_cover(g)


def test_inputs_can_be_pil_or_array():
    assert patch_grid(Image.new("RGB", (64, 32)), patch=16).shape == (2, 4)
    assert patch_grid(np.zeros((32, 64, 3), np.uint8), patch=16).shape == (2, 4)


@pytest.mark.parametrize("kw", [dict(patch=0), dict(patch=-3), dict(patch=2.5), dict(patch="big"), dict(patch=True),
                                dict(grid=(0, 3)), dict(grid=(1, 2, 3)), dict(grid=0), dict(patch=8, grid=4),
                                dict(patch=float("nan"))])
def test_invalid_settings(kw):
    with pytest.raises(InvalidParameter):
        patch_grid((100, 100), **kw)


def test_no_pixels():
    with pytest.raises(ImageTooSmall):
        patch_grid((0, 10))


def test_too_many_patches_says_what_to_use():
    with pytest.raises(InvalidParameter, match=r"patches of (\d+) pixels") as info:
        patch_grid((4000, 3000), patch=8)
    import re

    p = int(re.search(r"patches of (\d+) pixels", str(info.value)).group(1))
    assert p == smallest_patch(4000, 3000)
    assert patch_grid((4000, 3000), patch=p).n <= MAX_PATCHES
    assert patch_grid((4000, 3000), patch=p - 1, max_patches=10**9).n > MAX_PATCHES


def test_box_index_locate_roundtrip():
    g = patch_grid((97, 61), patch=10)
    for r in range(g.rows):
        for c in range(g.cols):
            left, top, right, bottom = g.box(r, c)
            assert g.locate(left, top) == (r, c)
            assert g.locate(right - 0.01, bottom - 0.01) == (r, c)
            assert g.index(r, c) == r * g.cols + c
    assert g.locate(-5, -5) == (0, 0)
    assert g.locate(10**6, 10**6) == (g.rows - 1, g.cols - 1)
    with pytest.raises(InvalidParameter, match="outside"):
        g.box(g.rows, 0)
    with pytest.raises(InvalidParameter):
        g.index("a", 0)


def test_click_on_a_scaled_display_maps_back_to_the_patch():
    g = patch_grid((4000, 3000), grid=(12, 16))
    # shown 800 x 600: a click at display (410, 95) is pixel (2050, 475) -> row 1, col 8
    assert g.locate_display(410, 95, 800, 600) == (1, 8)
    assert g.locate_display(799, 599, 800, 600) == (11, 15)
    with pytest.raises(InvalidParameter):
        g.locate_display(1, 1, 0, 600)


def test_scaled_grid_keeps_rows_and_cols():
    g = patch_grid((4000, 3000), patch=250)
    s = g.scaled(1024, 768)
    assert s.shape == g.shape and (s.width, s.height) == (1024, 768)
    check_cover(s)
    assert np.allclose(np.asarray(s.row_edges) / 768, np.asarray(g.row_edges) / 3000, atol=1 / 768)


def test_centres_are_in_the_unit_square():
    c = patch_grid((90, 30), patch=30).centres()
    assert c.shape == (3, 2)
    assert np.allclose(c, [[0.5, 1 / 6], [0.5, 0.5], [0.5, 5 / 6]])


@settings(max_examples=200, deadline=None)
@given(w=st.integers(1, 5000), h=st.integers(1, 5000), p=st.integers(1, 600))
def test_grid_property(w, h, p):
    try:
        g = patch_grid((w, h), patch=p)
    except InvalidParameter:
        assert round(w / p) * round(h / p) > MAX_PATCHES / 4  # only refused when there are really many
        return
    check_cover(g)
    assert g.rows == min(h, max(1, int(np.floor(h / p + 0.5))))
    assert g.cols == min(w, max(1, int(np.floor(w / p + 0.5))))
    sizes = np.diff(g.col_edges)
    assert sizes.max() - sizes.min() <= 1  # evenly spread


@pytest.mark.parametrize("size,patch", [((1, 1), None), ((7, 5), 64), ((600, 1), 12), ((1, 300), 10), ((2, 900), 30)])
def test_analysis_works_on_tiny_and_thin_images(size, patch):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    res = analyze_image(arr, patch=patch, query=(0, 0))
    assert res.scores.shape == res.grid.shape
    assert np.isfinite(res.scores).all()
    assert res.row.sum() == pytest.approx(1.0, abs=1e-5)
    png = res.to_png()
    assert Image.open(__import__("io").BytesIO(png)).size == size


def test_patch_label_is_the_one_name_of_a_patch():
    from attnviz.image import patch_label

    assert patch_label(2, 5) == "r2c5"
    g = patch_grid((90, 60), grid=(2, 3))
    assert g.labels() == ["r0c0", "r0c1", "r0c2", "r1c0", "r1c1", "r1c2"]


def test_the_query_keeps_its_place_when_the_grid_changes():
    fine = patch_grid((480, 320), patch=20)  # 16 x 24
    coarse = patch_grid((480, 320), patch=40)  # 8 x 12
    assert coarse.carry(7, 12, fine.shape) == (3, 6)
    assert fine.carry(3, 6, coarse.shape) == (7, 13)
    assert coarse.carry(99, 99, fine.shape) == (7, 11)  # clamped
    assert fine.locate_fraction(0.1, 0.2) == fine.locate(0.2 * 480, 0.1 * 320)


@pytest.mark.parametrize("size", [(480, 320), (1, 1), (3, 2000), (8000, 5000), (40, 40)])
def test_patch_size_range(size):
    from attnviz.image import patch_size_range

    r = patch_size_range(*size)
    assert 1 <= r.lo <= r.default <= r.hi
    assert patch_grid(size, patch=r.lo).n <= MAX_PATCHES
    assert r.clamp(r.hi + 1) == r.default and r.clamp("7") == r.default and r.clamp(float("nan")) == r.default
    assert r.clamp(r.lo) == r.lo and r.adjustable == (r.hi > r.lo)
    if size == (480, 320):
        assert (r.lo, r.hi, r.default) == (8, 240, 20)
