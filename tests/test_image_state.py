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
