"""Reference docs generated from the registry, so the docs and the app can never disagree."""

from __future__ import annotations

from .similarity import SIMILARITIES


def similarity_reference() -> str:
    """Markdown: one section per similarity function (formula, sentence, use, paper, default temperature)."""
    out = [
        "# Similarity functions",
        "",
        "Generated from `attnviz.SIMILARITIES` by `attnviz similarities --markdown`; do not edit by hand.",
        "Attention weights are `softmax(s(q, k) / T)` over the keys, with `T` the temperature.",
        "",
        "| name | formula | default T | untrained parameters |",
        "| --- | --- | --- | --- |",
    ]
    for s in SIMILARITIES.values():
        out.append(f"| `{s.name}` | ${s.formula}$ | {s.default_temperature:g} | {'yes' if s.untrained else 'no'} |")
    for s in SIMILARITIES.values():
        out += ["", f"## `{s.name}` — {s.label}", "", f"$${s.formula}$$", "", s.sentence, "",
                f"- When it is used: {s.use}", f"- Source: {s.source} ({s.url})",
                f"- Default temperature: {s.default_temperature:g}"]
        if s.params_doc:
            out.append(f"- Parameters: {s.params_doc}")
        if s.untrained:
            out.append("- **Untrained**: its parameters are seeded random numbers, not learned weights.")
        if not s.same_dim:
            out.append("- Compares vectors of different widths (queries and keys may differ in d).")
    return "\n".join(out) + "\n"
