"""The token view: its data (attnviz.highlight.token_view_payload, pure) and the Streamlit component
(ui/components) under AppTest. The real browser is in tests/browser/test_token_view.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnviz.errors import InvalidParameter, ShapeMismatch
from attnviz.highlight import gaps_from_offsets, palette, token_view_payload

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = ["<script>alert('ZQX')</script>", '"><img src=x onerror=alert(1)>', "&amp; &lt;b&gt;", "</span><b>x"]


def woven(gaps, tokens) -> str:
    return "".join(g + t for g, t in zip(gaps, tokens)) + gaps[-1]


def test_quantised_weights_are_within_one_level_of_the_scale():
    rng = np.random.default_rng(0)
    for scale in ("view", "absolute"):
        w = rng.dirichlet(np.ones(300))
        p = token_view_payload([f"t{i}" for i in range(300)], w, scale=scale)
        lo, hi = p["lo"], p["hi"]
        assert (lo, hi) == ((0.0, float(w.max())) if scale == "view" else (0.0, 1.0))
        q = np.array(p["q"])
        assert q.dtype.kind == "i" and q.min() >= 0 and q.max() <= 255
        back = lo + q / 255 * (hi - lo)
        assert np.max(np.abs(back - w)) <= (hi - lo) / 255  # quantisation error <= 1/255 of the scale
        if scale == "view":
            assert q.max() == 255
    zero = token_view_payload(["a", "b"], [0.0, 1.0])
    assert zero["q"] == [0, 255]


def test_exact_values_and_ranks_travel_for_the_hover():
    p = token_view_payload(["a", "b", "c"], [0.125, 0.5, 0.375])
    assert p["wt"] == ["0.125", "0.5", "0.375"] and p["rank"] == [3, 1, 2]


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=60), st.data())
def test_gaps_and_tokens_give_back_the_text_exactly(text, data):
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=12)))
    offsets = list(zip(cuts[::2], cuts[1::2]))
    tokens, gaps = gaps_from_offsets(text, offsets)
    assert len(gaps) == len(tokens) + 1 == len(offsets) + 1
    assert woven(gaps, tokens) == text
    p = token_view_payload(tokens, np.linspace(0, 1, len(tokens)), gaps)
    assert woven(p["gaps"], p["tokens"]) == text


def test_gaps_survive_odd_offsets():
    text = "ab  cd\n\te"
    tokens, gaps = gaps_from_offsets(text, [(0, 2), (1, 3), (4, 99), (9, 9)])  # overlap, end past the text
    assert woven(gaps, tokens) == text
    assert tokens == ["ab", " ", "cd\n\te", ""]  # the overlapping token keeps only its new character


def test_hostile_tokens_travel_as_plain_strings():
    text = " | ".join(HOSTILE)
    offsets, at = [], 0
    for h in HOSTILE:
        s = text.index(h, at)
        offsets.append((s, s + len(h)))
        at = s + len(h)
    tokens, gaps = gaps_from_offsets(text, offsets)
    p = token_view_payload(tokens, [0.1, 0.2, 0.3, 0.4], gaps, labels=HOSTILE, label="<b>weight</b>")
    assert p["tokens"] == HOSTILE and p["labels"] == HOSTILE  # unchanged: not escaped, not parsed
    assert p["label"] == "<b>weight</b>"
    assert woven(p["gaps"], p["tokens"]) == text
    back = json.loads(json.dumps(p))
    assert back["tokens"] == HOSTILE
    # the colours are the only strings that become styles, and they are pure hex
    for pal in p["palettes"].values():
        assert all(c in "0123456789abcdef" for c in pal["bg"] + pal["ink"]) and len(pal["bg"]) == 6 * 256


def test_the_view_js_writes_strings_as_text_only():
    js = (ROOT / "ui" / "components" / "tokens.js").read_text(encoding="utf-8")
    assert "textContent" in js
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in js, sink
    assert "http://" not in js and "https://" not in js  # no CDN


def test_palettes_and_legends_follow_the_theme_and_scale():
    w = [0.1, 0.3, 0.6]
    auto = token_view_payload(["a", "b", "c"], w)
    assert set(auto["palettes"]) == {"light", "dark"} and auto["theme"] == "auto"
    light = token_view_payload(["a", "b", "c"], w, theme="light")
    assert set(light["palettes"]) == {"light"}
    pal = light["palettes"]["light"]
    bg, ink = palette("light")
    assert pal["bg"][:6] == "ffffff" and pal["page"] == "#ffffff"
    assert pal["bg"][6 * 255:] == "".join(f"{c:02x}" for c in bg[255])
    assert pal["ink"][6 * 255:] == "".join(f"{c:02x}" for c in ink[255])
    absolute = token_view_payload(["a", "b", "c"], w, theme="light", scale="absolute")
    assert pal["legend"]["words"] != absolute["palettes"]["light"]["legend"]["words"]
    assert [t["text"] for t in absolute["palettes"]["light"]["legend"]["ticks"]][-1] == "1"
    assert pal["legend"]["uniform"]["text"].startswith("uniform 1/3")
    assert token_view_payload(["a"], [1.0], classroom=True)["classroom"] is True


def test_bad_input_is_refused_with_a_reason():
    with pytest.raises(ShapeMismatch):
        token_view_payload(["a", "b"], [1.0])
    with pytest.raises(ShapeMismatch):
        token_view_payload(["a", "b"], [1.0, 0.0], gaps=["", ""])
    with pytest.raises(InvalidParameter):
        token_view_payload(["a"], [1.0], theme="sepia")
    with pytest.raises(InvalidParameter):
        token_view_payload([1, 2], [1.0, 0.0])
    # a selection out of range (e.g. kept from a longer text) is dropped, not sent
    assert token_view_payload(["a"], [1.0], selected=5)["selected"] is None
    assert token_view_payload(["a", "b"], [1.0, 0.0], selected=1)["selected"] == 1


def test_payload_of_1800_tokens_is_small():
    text = (ROOT / "attnviz" / "assets" / "text_en_long.txt").read_text(encoding="utf-8")
    words = (text.split() * 50)[:1800]
    w = np.random.default_rng(1).dirichlet(np.ones(1800))
    p = token_view_payload(words, w, [" "] * 1801, labels=words)
    size = len(json.dumps(p).encode("utf-8"))
    assert size < 200_000, size  # well under 1 MB (about 90 kB with labels, 70 kB without)


# -- the Streamlit component (AppTest: no browser; the state is sent as the browser would) ---------------

APP = '''
import streamlit as st
from ui.components import token_view

TOKENS = ["Cats", "<script>alert('ZQX')</script>", "chase", '"><img src=x onerror=alert(1)>']
picked = token_view(TOKENS, [0.1, 0.5, 0.0, 0.4], ["", " ", " ", " ", "."], key="tv", selected=2,
                    theme=st.session_state.get("theme", "auto"), scale="absolute")
st.write(f"selected: {picked}")
'''


@pytest.fixture
def app_file(tmp_path):
    path = tmp_path / "token_app.py"
    path.write_text(APP, encoding="utf-8")
    return path


def run_with_state(at, state: dict):
    """Rerun the app as if the browser had set the component's state to ``state``."""
    from streamlit.proto.WidgetStates_pb2 import WidgetStates

    el = at.get("bidi_component")[0]
    ws = WidgetStates()
    w = ws.widgets.add()
    w.id = el.proto.id
    w.json_value = json.dumps(state)
    return at._run(ws)  # AppTest has no public setter for a custom component's state


def test_the_component_renders_and_returns_the_selection(app_file, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.syspath_prepend(str(ROOT))
    at = AppTest.from_file(str(app_file), default_timeout=30).run()
    assert not at.exception
    assert at.markdown[0].value == "selected: 2"  # the initial selection
    el = at.get("bidi_component")[0]
    assert el.proto.component_name == "attnviz_token_view"
    assert "textContent" in el.proto.js_content and ".tv-tok" in el.proto.css_content
    data = json.loads(el.proto.json)
    assert data["tokens"][1] == "<script>alert('ZQX')</script>" and data["selected"] == 2
    assert data["scale"] == "absolute"

    at = run_with_state(at, {"selected": 1})  # a click on token 1
    assert not at.exception and at.markdown[0].value == "selected: 1"
    assert json.loads(at.get("bidi_component")[0].proto.json)["selected"] == 1  # drawn as selected

    for bad in ({"selected": "1"}, {"selected": 99}, {"selected": -1}, {"selected": True}, {"selected": 1.5}):
        at = run_with_state(at, bad)  # the browser's value is user input
        assert not at.exception and at.markdown[0].value == "selected: None", bad
