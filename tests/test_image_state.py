"""attnviz.state.image: the image page's settings as one validated value, its link form, the query's place."""

from __future__ import annotations

import pytest

from attnviz.errors import InvalidParameter
from attnviz.image import SAMPLES, patch_grid
from attnviz.state.image import (QUERY_PARAMS, WIDGET_KEYS, ImagePageState, click_position, download_stem,
                                 place_query, plain_name)


def test_defaults_and_round_trip():
    s = ImagePageState()
    assert s.sample == next(iter(SAMPLES)) and s.temperature == 0.1 and s.view == "query"
    assert ImagePageState.from_query(s.to_query()) == s
    t = ImagePageState(sample="Dahlia (photo)", similarity="euclidean", patch=40, view="pooling", cmap="viridis",
                       opacity=0.8, show_grid=True, position_weight=1.25, row=3, col=6)
    assert t.temperature == 1.0  # euclidean's default
    assert ImagePageState.from_query(t.to_query()) == t
    assert set(t.to_query()) == set(QUERY_PARAMS)


@pytest.mark.parametrize("param,value", [
    ("s", "nope"), ("t", "NaN"), ("t", "0.04"), ("p", "0"), ("p", "-3"), ("p", "9" * 50), ("v", "<script>"),
    ("c", "rainbow"), ("o", "1.5"), ("o", "0.33"), ("g", "yes"), ("pos", "inf"), ("pos", "0.3"), ("r", "4096"),
    ("col", "１２"), ("sample", "../../etc/passwd"),
])
def test_a_bad_link_value_falls_back_and_is_named(param, value):
    s = ImagePageState.from_query({param: value, "unrelated": "x"})
    assert s.ignored == (param,)
    assert s == ImagePageState()


def test_invalid_settings_are_refused_in_code():
    with pytest.raises(InvalidParameter, match="opacity"):
        ImagePageState(opacity=2.0)
    with pytest.raises(InvalidParameter, match="Unknown similarity"):
        ImagePageState(similarity="nope")
    with pytest.raises(InvalidParameter, match="row"):
        ImagePageState(row=-1)


def test_widgets_map_to_fields():
    s = ImagePageState(view="received", opacity=0.3, row=2, col=5)
    values = s.widget_values()
    assert values["img_view"] == "received" and values["img_row"] == 2 and set(values) <= set(WIDGET_KEYS.values())
    assert ImagePageState.from_widgets(values) == s
    stale = ImagePageState.from_widgets({**values, "img_opacity": 7, "img_cmap": "nope"})
    assert stale.opacity == ImagePageState().opacity and stale.cmap == "cividis"
    assert set(stale.ignored) == {"opacity", "cmap"}


def test_place_query():
    fine = patch_grid((480, 320), patch=20)  # 16 x 24
    coarse = patch_grid((480, 320), patch=40)
    assert place_query(fine, row=None, col=None, new_photo=True, sample_file="china.jpg") == (1, 4)
    assert place_query(fine, row=5, col=5, new_photo=True) == (8, 12)  # a new photo: its centre
    assert place_query(coarse, row=7, col=12, new_photo=False, old_shape=fine.shape) == (3, 6)
    assert place_query(fine, row=99, col=3, new_photo=False, old_shape=fine.shape) == (8, 3)


def test_clicks_and_names():
    assert click_position({"x": 3, "y": 4, "width": 10, "height": 20, "unix_time": 1}) == (3.0, 4.0, 10.0, 20.0)
    for bad in (None, [], {"x": 1}, {"x": "a", "y": 1, "width": 1, "height": 1},
                {"x": 1, "y": 1, "width": 0, "height": 1}, {"x": float("nan"), "y": 1, "width": 1, "height": 1}):
        assert click_position(bad) is None
    assert plain_name("<b>x</b>.png") == "_b_x__b_.png" and plain_name("") == "image"
    assert download_stem("my photo (1).jpg") == "my-photo-1" and download_stem("...") == "image"


# ------------------------------------------------------------------------------ the vision transformer's view

import numpy as np  # noqa: E402

from attnviz.state import image as si  # noqa: E402


def test_new_settings_round_trip_and_bad_link_values_are_named():
    s = ImagePageState(mode="heads", features="handcrafted", resolution=448, feature_layer=3, layer=7, head=2,
                       head_map="patch", keep=True, keep_fraction=0.85, no_sinks=True)
    assert ImagePageState.from_query(s.to_query()) == s and s.to_query()["h"] == "2"
    assert ImagePageState().to_query()["h"] == "mean" and ImagePageState().features == "dinov2"
    for param, value in (("m", "both"), ("f", "clip"), ("res", "500"), ("fl", "12"), ("l", "-1"), ("h", "6"),
                         ("hm", "x"), ("k", "2"), ("kf", "0.62"), ("kf", "1.0"), ("ns", "true")):
        t = ImagePageState.from_query({param: value})
        assert t.ignored == (param,) and t == ImagePageState(), (param, value)
    with pytest.raises(InvalidParameter, match="head"):
        ImagePageState(head=True)


def test_row_overlap_is_the_histogram_intersection():
    rng = np.random.default_rng(0)
    p, q = rng.random(30), rng.random(30)
    expected = sum(min(a / p.sum(), b / q.sum()) for a, b in zip(p, q))
    assert si.row_overlap(p, q) == pytest.approx(expected, rel=1e-12)
    assert si.row_overlap(p, 3 * p) == pytest.approx(1.0)
    assert si.row_overlap([1, 0], [0, 1]) == 0.0
    with pytest.raises(InvalidParameter):
        si.row_overlap([1, -1], [1, 1])


def test_kept_map_keeps_the_fewest_cells_holding_the_share():
    values = np.array([[0.5, 0.05], [0.3, 0.15]])
    drawn, kept = si.kept_map(values, 0.6)
    assert kept == 2 and drawn.tolist() == [[0.5, 0.0], [0.3, 0.0]]  # 0.5 alone is < 0.6; 0.5 + 0.3 >= 0.6
    assert si.kept_map(values, 0.95)[1] == 4


class FakeGrid:
    """A stand-in click target: records the display click it was asked about."""

    def __init__(self):
        self.seen = []

    def locate_display(self, x, y, w, h):
        self.seen.append((x, y, w, h))
        return int(y * 10 // h), int(x * 10 // w)


def test_click_updates_apply_each_click_once_to_the_view_the_user_saw():
    grid = FakeGrid()
    values = {"img_click": {"x": 50, "y": 20, "width": 100, "height": 100, "unix_time": 1},
              "_img_seen": ("abc", grid), "img_mode": "heads"}
    up = si.click_updates(values, "abc")
    assert up == {"_img_click_done": 1, "img_row": 2, "img_col": 5, "img_hmap": "patch"}
    assert si.click_updates({**values, **up}, "abc") == {}  # the same click again: nothing
    assert si.click_updates({**values, "img_mode": "similarity"}, "abc")["img_view"] == "query"
    assert si.click_updates(values, "another photo") == {"_img_click_done": 1}  # a click on an old photo


def test_thumbnails_are_one_tile_per_head_and_a_click_picks_it():
    from PIL import Image

    from attnviz.vit import ViTAttention

    rng = np.random.default_rng(1)
    rows, cols, heads = 3, 4, 6
    a = rng.random((2, heads, 1 + rows * cols, 1 + rows * cols)).astype(np.float32)
    a /= a.sum(-1, keepdims=True)
    vit = ViTAttention(attentions=a, hidden_states=np.zeros((3, 13, 4), np.float32),
                       token_norms=np.ones((rows, cols), np.float32), grid=(rows, cols), input_size=(42, 56),
                       image_size=(60, 80))
    photo = Image.new("RGB", (80, 60), (128, 128, 128))
    th = si.head_thumbnails(photo, vit, "cls", 1, selected=3, tile_width=80, gap=6, label_height=18)
    assert th.heads == (si.HEAD_MEAN, 0, 1, 2, 3, 4, 5) and th.image.shape == (60 + 18, 7 * 80 + 6 * 6, 3)
    h, w = th.image.shape[:2]
    for i, head in enumerate(th.heads):  # the middle of each tile, the strip shown at half size
        assert th.head_at((i * 86 + 40) / 2, h / 4, w / 2, h / 2) == head
    assert th.head_at(83 / 2, 10, w / 2, h / 2) is None  # the gap between two tiles
    frame = th.image[0, 4 * 86 + 40]  # the selected head's tile (head 3) is framed
    assert frame.tolist() != th.image[0, 2 * 86 + 40].tolist()
    m = si.head_map(vit, "patch", 1, 2, (1, 2))
    row = a[1, 2, 1 + 1 * cols + 2, 1:].astype(np.float64)
    np.testing.assert_allclose(m.ravel(), row / row.sum(), rtol=1e-6)
    np.testing.assert_allclose(si.head_map(vit, "cls", 0, si.HEAD_MEAN).ravel(), a[0, :, 0, 1:].mean(0), rtol=1e-6)
    with pytest.raises(InvalidParameter):
        si.head_map(vit, "patch", 1, 0)  # the patch view needs a query


# ------------------------------------------------------------------------------------ the link (issue 15)

from urllib.parse import parse_qsl, urlsplit  # noqa: E402


def test_every_setting_travels_in_the_link_and_comes_back():
    s = ImagePageState(sample="Shapes (synthetic)", similarity="dot", temperature=0.3, patch=24, view="received",
                       cmap="magma", opacity=0.35, show_grid=True, position_weight=0.75, row=4, col=9,
                       mode="heads", features="handcrafted", resolution=518, feature_layer=5, layer=2, head=4,
                       head_map="patch", keep=True, keep_fraction=0.7, no_sinks=True, exclude_query=False)
    q = s.to_query()
    assert q["sample"] == "shapes" and q["xq"] == "0" and set(q) == set(QUERY_PARAMS)
    assert ImagePageState.from_query(q) == s
    # the shared link, parsed as a browser would, reopens the same state; the full sample name works too
    link = si.share_link("http://host:8501/image?old=1", q)
    parts = urlsplit(link)
    assert parts.path == "/image" and ImagePageState.from_query(dict(parse_qsl(parts.query))) == s
    assert ImagePageState.from_query({"sample": "Shapes (synthetic)"}).sample == "Shapes (synthetic)"
    # every field of the state is a link parameter and a widget: nothing that matters is left out
    settings = {f for f in ImagePageState.__dataclass_fields__ if f != "ignored"}
    assert set(QUERY_PARAMS.values()) == settings == set(WIDGET_KEYS)


@pytest.mark.parametrize("param,value", [
    ("xq", "<img src=x onerror=alert(1)>"), ("sample", "<b>china</b>"), ("h", "mean "), ("r", "1e3"),
    ("res", "0224"), ("l", "٣"), ("t", "1e-1"), ("kf", "nan"),
])
def test_hostile_link_values_give_the_defaults_and_one_sentence_without_them(param, value):
    s = ImagePageState.from_query({param: value})
    if param == "t":  # 1e-1 is the number 0.1, an offered temperature: accepted, not hostile
        assert s.temperature == 0.1 and s.ignored == ()
        return
    if param == "res":  # "0224" reads as 224: harmless
        assert s.resolution == 224 and s.ignored == ()
        return
    assert s.ignored == (param,) and s == ImagePageState()
    note = si.ignored_note(s.ignored)
    assert value not in note and "<" not in note and note.count(".") == 1 and note.endswith("instead.")
    assert si.FIELD_WORDS[QUERY_PARAMS[param]] in note


def test_the_first_run_takes_the_link_later_runs_keep_what_streamlit_dropped():
    link = {"sample": "flower", "m": "heads", "l": "3", "h": "2", "r": "5", "col": "6", "p": "30", "v": "nope"}
    state, up = si.run_settings({}, link)
    assert up["img_sample"] == "Dahlia (photo)" and up["img_head"] == 2 and up["img_layer"] == 3
    assert (up["img_row"], up["img_col"], up["img_patch"]) == (5, 6, 30) and up["_img_url_ignored"] == ("v",)
    session = {**up, "_img_state": state}
    # a later run: the link is not read again; the head picker was not drawn (similarity view), so Streamlit
    # dropped img_head and img_layer: they come back from the last run's state, and the page's own keys are
    # left to its logic
    later = {k: v for k, v in session.items() if k not in ("img_head", "img_layer")}
    later["img_mode"] = "similarity"
    state2, up2 = si.run_settings(later, {"h": "5"})
    assert state2.head == 2 and state2.layer == 3 and state2.mode == "similarity"
    assert up2["img_head"] == 2 and not set(up2) & set(si.SELF_SET_KEYS) and "_img_url_ignored" not in up2


def test_the_first_photo_keeps_the_links_patch_when_it_fits():
    grid = patch_grid((480, 320), patch=20)  # 16 x 24
    up = si.query_updates({"img_row": 3, "img_col": 20}, "d1", "china.jpg", grid)
    assert (up["img_row"], up["img_col"]) == (3, 20) and "_img_url_outside" not in up
    far = si.query_updates({"img_row": 30, "img_col": 2}, "d1", "china.jpg", grid)
    assert (far["img_row"], far["img_col"]) == (1, 4) and "16 × 24" in far["_img_url_outside"]  # the default
    # a later new photo (an upload) starts from its own default, not the old row
    nxt = si.query_updates({**up, "img_row": 3, "img_col": 20}, "d2", "", grid)
    assert (nxt["img_row"], nxt["img_col"]) == (8, 12)
    from attnviz.image import patch_size_range

    sizes = patch_size_range(480, 320)
    assert si.patch_updates({"img_patch": sizes.lo + 1, "_img_patch_for": "d1"}, "d1", sizes)["img_patch"] == \
        sizes.lo + 1
    assert si.patch_updates({"img_patch": sizes.lo + 1, "_img_patch_for": "d0"}, "d1", sizes)["img_patch"] == \
        sizes.default


def test_link_params_set_what_changed_and_remove_our_stale_ones_only():
    session = ImagePageState(row=2, col=3).widget_values()
    changed, stale = si.link_params(session, {"r": "2", "col": "9", "other": "x"})
    assert "r" not in changed and changed["col"] == "3" and stale == []
    changed, stale = si.link_params({k: v for k, v in session.items() if k != "img_row"}, {"r": "2", "other": "x"})
    assert stale == ["r"] and "col" not in changed  # no row: the patch is not written at all


def test_the_share_note_says_an_upload_cannot_travel():
    note = si.share_note(True, "Dahlia (photo)")
    assert note.startswith("An uploaded photo cannot travel in a link") and note.count(". ") == 0
    assert "patch" in si.share_note(False, "Dahlia (photo)")


def test_the_scale_sentence_says_where_the_left_out_patch_lies():
    """Above, below or inside the other patches' range: each case its own words, checked against the overlay that
    is drawn with that scale (the query patch's pixels)."""
    import numpy as np

    from attnviz import state
    from attnviz.overlay import OverlayScale, show_attention_on_image

    si = state.image
    below = si.scale_words(OverlayScale(0.45, 0.50, True, 0.05), "weight")  # the reviewer's case
    assert "its own weight 0.0500 is below the bottom, so it is drawn as the bottom of the scale." in below
    assert "inside" not in below and "above" not in below
    assert "is above the top" in si.scale_words(OverlayScale(0.45, 0.50, True, 0.9), "weight")
    assert "is inside that range" in si.scale_words(OverlayScale(0.45, 0.50, True, 0.47), "weight")
    assert "least to its largest" in si.scale_words(OverlayScale(0.05, 0.50, False, None), "weight")
    # a real map: the query patch the least of its row; the overlay leaves the photo itself on it (the bottom)
    grid = patch_grid((120, 80), patch=20)  # 4 x 6
    rng = np.random.default_rng(3)
    values = rng.uniform(0.45, 0.50, grid.shape)
    values[1, 2] = 0.05
    photo = np.full((80, 120, 3), 200, np.uint8)
    out, scale = show_attention_on_image(photo, values, grid=grid, query=(1, 2), exclude_query=True, opacity=1.0,
                                         method="nearest", return_scale=True)  # no bicubic spill from neighbours
    assert (scale.vmin, scale.vmax) == pytest.approx((np.delete(values.ravel(), 8).min(), values.max()), rel=1e-6)
    assert f"its own weight {values[1, 2]:.4f} is below the bottom" in si.scale_words(scale, "weight")
    assert (out[25:35, 45:55] == 200).all()  # inside its outline: the photo as it is
    assert (np.abs(out.astype(int) - 200).sum(-1) > 60).mean() > 0.3  # while the other patches are coloured


def test_a_links_patch_size_stays_with_the_links_photo():
    """A link's p= belongs to the photo of the session's first run, even when that run shows the heads view (no
    hand-made grid yet): a later upload reaching the hand-made grid starts from its own default size."""
    from attnviz import state
    from attnviz.image import patch_size_range

    si = state.image
    sizes = patch_size_range(480, 320)
    _, session = si.run_settings({}, {"m": "heads", "p": str(sizes.lo + 1)})
    session.update(si.link_patch_owner(session, "link-photo"))  # the first run: the link's photo, heads view
    assert session["_img_patch_for"] == "link-photo" and session["img_patch"] == sizes.lo + 1
    assert si.link_patch_owner(session, "upload") == {}  # later photos do not take it over
    later = {**session, "img_mode": "similarity"}
    assert si.patch_updates(later, "upload", sizes)["img_patch"] == sizes.default
    # the link's own photo keeps it when it reaches the hand-made grid
    assert si.patch_updates(later, "link-photo", sizes)["img_patch"] == sizes.lo + 1
    # no link: the first photo starts from its default
    _, plain = si.run_settings({}, {})
    plain.update(si.link_patch_owner(plain, "d1"))
    assert si.patch_updates(plain, "d1", sizes)["img_patch"] == sizes.default
