"""Similarity attention over encoded text, and its exports (HTML, JSON, CSV, PNG).

    analyze_encoding(enc, sim, T)   -> TextAnalysis: self-attention / query / one row (cheap)
    analyze_text(text, sim, T)      tokenize + encode + analyze, everything the page and CLI show
    analyze_encodings / analyze_texts   several texts as one padded batch (padding masked out)
    self_attention_rows(enc, a, b)  rows a:b of the self-attention of a long text (O((b - a) x n))

Every view is one small function over a text's vectors ``x (n, d)`` under one ``_Attention``
(similarity, temperature, causal): the (n, n) matrix, one row, blocked row statistics, attention
received, a query's weights. ``causal`` (a decoder's mask: token i sees tokens 0..i only) is applied in
:mod:`attnviz.attention` (``attend(..., causal=True)``, ``causal_rows``), never here.

Length limits (docs/text.md): above ``MATRIX_MAX_TOKENS`` tokens no n x n matrix is built; scores then
come from the blocked paths (``attention_row`` / ``attention_received``), memory O(n).
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..attention import (
    attend,
    attention_received,
    attention_row,
    causal_rows,
    check_temperature,
    row_entropy,
    row_stats_blocked,
    top_pairs,
)
from ..devices import run_with_fallback
from ..errors import EmptyText, InvalidParameter, TextTooLong
from ..highlight import highlight_html, ranks_of
from ..loaders.hf import model_source
from ..models import SequentialAttention
from ..similarity import get_similarity
from .encoders import CAUSAL_NOTE, RANDOM_SEED, Encoding, embed_query, encode_text, encode_texts

#: above this many tokens the n x n self-attention matrix is not built (2048^2 float32 = 16 MiB).
MATRIX_MAX_TOKENS = 2048
#: said when ``causal=`` overrides what the model does.
CAUSAL_ON_NOTE = "causal mask applied: each token sees only earlier tokens (and itself)"
CAUSAL_OFF_NOTE = "causal mask off: every token sees every token, although the model itself is causal"


@dataclass(eq=False)
class TextAnalysis:
    """Similarity attention over one text.

    ``scores`` (n,): the query's weights when ``query`` is set, else the picked token's row when
    ``token`` is set, else the attention each token receives (mean over queries) — ``score_kind``
    says which. ``weights`` is the (n, n) self-attention matrix (``None`` above ``MATRIX_MAX_TOKENS``).
    """

    text: str
    tokens: list[str]
    offsets: list[tuple[int, int]]
    similarity: str
    temperature: float
    encoder: str
    device: str
    scores: np.ndarray
    score_kind: str  # "query" | "row" | "received"
    weights: np.ndarray | None = None
    entropy: np.ndarray | None = None  # (n,) nats per row of the self-attention
    query: str | None = None
    token: int | None = None
    merged: bool = False
    notes: list[str] = field(default_factory=list)
    model_name: str = ""
    causal: bool = False  # self-attention masked causally: weights above the diagonal are exactly 0

    @property
    def effective_tokens(self) -> np.ndarray | None:
        return None if self.entropy is None else np.exp(self.entropy)

    def score_label(self) -> str:
        if self.score_kind == "query":
            return f"attention from the query {self.query!r}"
        if self.score_kind == "row":
            return f"what token {self.token} ({self.tokens[self.token]!r}) attends to"
        return "attention received (mean over all tokens' rows)"

    def ranks(self) -> np.ndarray:
        """1 = the token with the largest score."""
        return ranks_of(self.scores)

    def top_tokens(self, k: int = 10) -> list[tuple[int, str, float]]:
        order = np.argsort(-self.scores, kind="stable")[:k]
        return [(int(i), self.tokens[i], float(self.scores[i])) for i in order]

    def top_pairs(self, k: int = 10, exclude_diagonal: bool = True) -> list[tuple[int, int, float]]:
        if self.weights is None:
            return []
        return top_pairs(torch.as_tensor(np.array(self.weights)), k, exclude_diagonal)  # weights may be read-only

    def to_dict(self, include_matrix: bool = True, decimals: int = 6) -> dict:
        def r(a):
            return np.round(np.asarray(a, dtype=np.float64), decimals).tolist()

        return {
            "tokens": list(self.tokens),
            "offsets": [list(o) for o in self.offsets],
            "weights": r(self.weights) if include_matrix and self.weights is not None else None,
            "scores": r(self.scores),
            "score_kind": self.score_kind,
            "similarity": self.similarity,
            "temperature": self.temperature,
            "encoder": self.encoder,
            "device": self.device,
            "query": self.query,
            "token": self.token,
            "merged_words": self.merged,
            "entropy": r(self.entropy) if self.entropy is not None else None,
            "model": self.model_name,
            "causal": self.causal,
            "notes": list(self.notes),
        }

    def to_json(self, include_matrix: bool = True, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(include_matrix), ensure_ascii=False, indent=indent, allow_nan=False)

    def caption(self) -> str:
        return (f"{self.score_label()} · similarity {self.similarity}, T = {self.temperature:g}, "
                f"encoder {self.encoder}, device {self.device}")

    def highlight(self, cmap: str = "cividis", legend: bool = True) -> str:
        return highlight_html(self.text, self.offsets, self.scores, labels=self.tokens, cmap=cmap,
                              legend=legend, legend_label=self.score_label())

    def _picture(self, what: str = "auto") -> tuple[np.ndarray, list[str], list[str], str]:
        """What :meth:`to_png` draws: (values, row labels, column labels, title). ``"auto"``: the query's
        scores for a query result (its matrix is the self-attention, not what the query asked), else the
        matrix when there is one, else the scores."""
        if what not in ("auto", "matrix", "scores"):
            raise InvalidParameter(f"to_png draws 'matrix', 'scores' or 'auto', not {what!r}.")
        if what == "matrix" and self.weights is None:
            raise InvalidParameter("This result has no matrix (more than "
                                   f"{MATRIX_MAX_TOKENS:,} tokens, or include_matrix=False): draw what='scores'.")
        if what == "auto":
            what = "matrix" if self.weights is not None and self.score_kind != "query" else "scores"
        if what == "matrix":
            return (np.asarray(self.weights), list(self.tokens), list(self.tokens),
                    f"self-attention · {self.similarity}, T = {self.temperature:g}")
        row = f"query {self.query!r}" if self.score_kind == "query" else (
            f"token {self.token}" if self.score_kind == "row" else "received")
        return np.asarray(self.scores)[None, :], [row], list(self.tokens), self.caption()

    def html_fragment(self, cmap: str = "cividis") -> str:
        """Settings line, highlighted text with its legend, the matrix (token labels as text, colour bar;
        a labelled PNG above ``TABLE_MAX_TOKENS`` tokens) and notes as one HTML fragment: inline styles
        only, every string from the text escaped, no script, no remote resource."""
        from ..render import TABLE_MAX_TOKENS, labelled_matrix_png, legend_html, matrix_table_html, png_data_uri

        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        parts = [f'<p style="color:#444;font-size:0.9em">{html.escape(self.caption())}</p>', self.highlight(cmap)]
        z, rows, cols, title = self._picture("auto")
        if len(cols) <= TABLE_MAX_TOKENS:
            view = matrix_table_html(z, rows, cols, cmap_name=cmap, caption=title)
        else:
            alt = f"{title}; tokens: " + " ".join(cols[:200])
            view = (f'<p style="font-size:0.9em">{html.escape(title)}</p><img alt="{html.escape(alt, quote=True)}" '
                    f'style="max-width:100%;height:auto" src="{png_data_uri(labelled_matrix_png(z, rows, cols, cmap_name=cmap))}">')
        parts.append(f'<div style="margin:1em 0;overflow-x:auto">{view}'
                     f'{legend_html(float(z.min()), float(z.max()), cmap, "attention weight")}</div>')
        if notes:
            parts.append(f'<ul style="color:#555;font-size:0.85em">{notes}</ul>')
        return "".join(parts)

    def to_html(self, title: str | None = None, cmap: str = "cividis") -> str:
        """One standalone page (:func:`attnviz.export.html_page`: no CDN, no JavaScript, images only as
        ``data:``): :meth:`html_fragment` under a title."""
        from ..export import html_page

        return html_page(self.html_fragment(cmap), title or "attnviz: attention over text")

    def _repr_html_(self) -> str:
        """What Jupyter shows for a result: :meth:`html_fragment` (nothing to load, so never blank)."""
        return f'<div class="attnviz-result">{self.html_fragment()}</div>'

    def to_png(self, what: str = "auto", cmap: str = "cividis", cell: int | None = None, *, labels: bool = True) -> bytes:
        """A PNG with token labels and a colour bar (:func:`attnviz.render.labelled_matrix_png`), ``cell``
        pixels per weight (default: the longer side <= 2048 px). ``what``: ``"matrix"`` the (n, n) weights
        (query rows top to bottom, keys left to right), ``"scores"`` the n scores as one row, ``"auto"``
        the query's scores for a query result, else the matrix when there is one. ``labels=False``: the
        bare cells (:func:`attnviz.render.matrix_png`)."""
        from ..render import labelled_matrix_png, matrix_png

        z, rows, cols, title = self._picture(what)
        if not labels:
            return matrix_png(z, cmap, cell=cell)
        return labelled_matrix_png(z, rows, cols, title=title, cmap_name=cmap, cell=cell)

    def to_csv(self) -> str:
        """The matrix as CSV when there is one, else one row per token with its score."""
        from ..render import weights_csv

        if self.weights is not None:
            return weights_csv(self.weights, self.tokens, self.tokens)
        return weights_csv(self.scores[:, None], self.tokens, [self.score_kind])

    def save(self, path: str | os.PathLike, **style) -> Path:
        """Write ``.html``/``.htm`` (standalone page), ``.json``, ``.csv`` or ``.png`` (:meth:`to_png`: for a
        query result the query's scores) by the file's suffix, through :func:`attnviz.export.save`;
        ``style`` (e.g. ``cmap``) goes to the pictures."""
        from ..export import save

        return save(self, path, **style)


def resolve_temperature(similarity: str, temperature: float | None) -> float:
    return check_temperature(get_similarity(similarity).default_temperature if temperature is None else temperature)


def query_weights(vectors: torch.Tensor, query_vector: torch.Tensor, similarity: str, temperature: float,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(sim(query, token) / T) over the tokens: the seed's SequentialAttention without
    projections. ``vectors (n, d) -> (n,)`` or ``(b, n, d)`` + ``mask (b, n) -> (b, n)``; O(n) memory."""
    seq = SequentialAttention(vectors.shape[-1], similarity=similarity, temperature=temperature).to(vectors.device)
    with torch.inference_mode():
        return seq(vectors, mask=mask, query=query_vector.to(vectors)).weights



# ------------------------------------------------------------------------------------------- views


def _numpy(a: torch.Tensor | None) -> np.ndarray | None:
    return None if a is None else a.float().cpu().numpy()


@dataclass(frozen=True)
class _Attention:
    """One similarity, temperature and mask (causal or not): every view of the self-attention over a
    text's vectors ``x (n, d)``. The causal choice is made here once, so no view branches on it."""

    similarity: str
    temperature: float
    causal: bool

    def matrix(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(n, d) -> (n, n)``, or ``(b, n, d)`` + padding ``mask (b, n) -> (b, n, n)`` (padding 0)."""
        return attend(x, self.similarity, self.temperature, mask=mask, causal=self.causal).weights

    def rows(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` over all n keys, ``(stop - start, n)``, never the whole matrix."""
        if self.causal:
            return causal_rows(x, self.similarity, self.temperature, start, stop)
        return attention_row(x[start:stop], x, self.similarity, self.temperature)

    def row_stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Entropy of every row and the attention each token receives, ``(n,), (n,)``, in blocks."""
        return row_stats_blocked(x, self.similarity, self.temperature, self.causal)

    def received(self, x: torch.Tensor) -> torch.Tensor:
        """Attention each token receives (mean over the rows), ``(n,)``, in blocks."""
        if self.causal:
            return self.row_stats(x)[1]
        return attention_received(x, self.similarity, self.temperature)

    def query(self, x: torch.Tensor, query_vector: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """A query phrase's weights over the tokens (it is no position in the text, so never causal)."""
        return query_weights(x, query_vector, self.similarity, self.temperature, mask=mask)


def _stats(att: _Attention, x: torch.Tensor, weights: torch.Tensor | None, wanted: bool):
    """(entropy, received) from the matrix when there is one, else blocked when ``wanted``, else (None, None)."""
    if weights is not None:
        return row_entropy(weights), weights.mean(0)
    if wanted:
        return att.row_stats(x)
    return None, None


def _scores(att: _Attention, x: torch.Tensor, weights: torch.Tensor | None, received: torch.Tensor | None,
            query_vector: torch.Tensor | None, token: int | None) -> tuple[torch.Tensor, str]:
    """The (n,) scores the text is coloured by, and their kind: query > row > received."""
    if query_vector is not None:
        return att.query(x, query_vector), "query"
    if token is not None:
        return (weights[token] if weights is not None else att.rows(x, token, token + 1)[0]), "row"
    return (received if received is not None else att.received(x)), "received"


def _one_text(dev, vectors: torch.Tensor, att: _Attention, want_matrix: bool, row_stats: bool,
              query_vector: torch.Tensor | None, token: int | None):
    """Every view :func:`analyze_encoding` asked for, on ``dev``: numpy (weights, entropy, scores) + kind."""
    x = vectors.to(dev)
    with torch.inference_mode():
        weights = att.matrix(x) if want_matrix else None
        entropy, received = _stats(att, x, weights, row_stats)
        scores, kind = _scores(att, x, weights, received, query_vector, token)
    return _numpy(weights), _numpy(entropy), _numpy(scores), kind


def _padded_batch(dev, encs: Sequence[Encoding], att: _Attention, query_vector: torch.Tensor | None):
    """Several texts as one ``(b, n_max, d)`` batch with a padding mask: numpy (weights, entropy, scores)."""
    lengths = [len(e.tokens) for e in encs]
    b, width, d = len(encs), max(lengths), encs[0].vectors.shape[1]
    x = torch.zeros(b, width, d, device=dev)
    mask = torch.zeros(b, width, dtype=torch.bool, device=dev)
    for i, e in enumerate(encs):
        x[i, :lengths[i]] = e.vectors.to(dev)
        mask[i, :lengths[i]] = True
    with torch.inference_mode():
        w = att.matrix(x, mask)  # (b, n, n), padded rows and columns exactly 0
        ent = row_entropy(w)
        sc = att.query(x, query_vector, mask) if query_vector is not None else w.sum(1) / mask.sum(1, keepdim=True)
    return w.cpu().numpy(), ent.cpu().numpy(), sc.float().cpu().numpy()


def _rows(dev, vectors: torch.Tensor, att: _Attention, start: int, stop: int) -> np.ndarray:
    x = vectors.to(dev)
    with torch.inference_mode():
        return _numpy(att.rows(x, start, stop))


# ---------------------------------------------------------------------------------------- analyses


def _check_token(token, n: int) -> int | None:
    if token is None:
        return None
    if isinstance(token, bool) or not isinstance(token, (int, np.integer)) or not (0 <= int(token) < n):
        raise InvalidParameter(f"The token index must be 0..{n - 1}, got {token!r}.")
    return int(token)


def _wants_matrix(include_matrix: bool | str, n: int) -> bool:
    if include_matrix == "auto":
        return n <= MATRIX_MAX_TOKENS
    if include_matrix is True and n > MATRIX_MAX_TOKENS:
        raise TextTooLong(f"The text has {n:,} tokens; the full matrix is built up to {MATRIX_MAX_TOKENS:,}. "
                          "Use a query or one token's row for longer text.")
    return bool(include_matrix)


def _clean_query(query: str | None) -> str | None:
    return None if query is None or not str(query).strip() else query


def _query_vector(query: str, enc: Encoding, device) -> torch.Tensor:
    """The query phrase under the encoding's own encoder, model and seed."""
    return embed_query(query, enc.encoder, device if enc.encoder != "random" else "cpu", enc.model_path,
                       seed=enc.seed)


def _causal_notes(enc: Encoding, causal: bool, query: bool = False) -> list[str]:
    """The encoding's notes, with the causal note true to the mask actually applied."""
    notes = [n for n in enc.notes if n != CAUSAL_NOTE]
    if causal:
        notes.append(CAUSAL_NOTE if enc.causal else CAUSAL_ON_NOTE)
        if query:
            notes.append("the query phrase is not a position in the text: it sees every token")
    elif enc.causal:
        notes.append(CAUSAL_OFF_NOTE)
    return notes


def analyze_encoding(enc: Encoding, similarity: str = "cosine", temperature: float | None = None,
                     query: str | None = None, *, token: int | None = None, include_matrix: bool | str = "auto",
                     row_stats: bool = True, device: str | torch.device | None = None,
                     query_vector: torch.Tensor | None = None, causal: bool | None = None) -> TextAnalysis:
    """Similarity attention over an encoded text (no encoder run, except the small query phrase).

    ``include_matrix``: ``"auto"`` builds the (n, n) matrix up to ``MATRIX_MAX_TOKENS``; ``True``
    insists (TextTooLong above the limit); ``False`` never builds it (scores via blocked paths).
    ``row_stats``: entropy of every row (blocked when there is no matrix).
    ``causal``: mask the self-attention as a decoder does (:func:`causal_rows`); ``None`` follows the
    model (GPT-2-like decoders: yes, BERT-like encoders: no). A query phrase always sees every token.
    """
    sim = get_similarity(similarity).name
    att = _Attention(sim, resolve_temperature(sim, temperature), enc.causal if causal is None else bool(causal))
    n = len(enc.tokens)
    token = _check_token(token, n)
    want_matrix = _wants_matrix(include_matrix, n)
    query = _clean_query(query)
    if query is not None and query_vector is None:
        query_vector = _query_vector(query, enc, device)
    (weights, entropy, scores, kind), used, warning = run_with_fallback(
        _one_text, device, enc.vectors, att, want_matrix, row_stats, query_vector, token)
    notes = _causal_notes(enc, att.causal, query is not None)
    if include_matrix == "auto" and not want_matrix:
        notes.append(f"{n:,} tokens: no {n:,} x {n:,} matrix built; scores computed in blocks (O(n) memory)")
    if get_similarity(sim).untrained:
        notes.append(f"{sim}: its parameters are seeded random numbers, not learned (untrained)")
    if warning:
        notes.append(warning)
    return TextAnalysis(
        text=enc.text, tokens=list(enc.tokens), offsets=list(enc.offsets), similarity=sim, temperature=att.temperature,
        encoder=enc.encoder, device=used, scores=scores, score_kind=kind, weights=weights, entropy=entropy,
        query=query, token=token, merged=enc.merged, notes=notes, model_name=enc.model_name, causal=att.causal,
    )


def analyze_text(text: str, similarity: str = "cosine", temperature: float | None = None,
                 encoder: str = "contextual", query: str | None = None, device: str | torch.device | None = None,
                 model_path: str | os.PathLike | None = None, *, merge_words: bool = False, token: int | None = None,
                 include_matrix: bool | str = "auto", row_stats: bool = True, seed: int = RANDOM_SEED,
                 causal: bool | None = None, model=None, tokenizer=None) -> TextAnalysis:
    """Tokenize, encode and attend: everything the page and the CLI show for one text.

    ``temperature=None`` uses the similarity's default; ``causal=None`` follows the model (a GPT-2-like
    decoder masks the self-attention causally). ``model=`` + ``tokenizer=``: an in-memory transformers
    model and its tokenizer instead of the folder ``model_path`` (:func:`attnviz.loaders.hf.register_model`).
    See :func:`analyze_encoding` for the rest.
    """
    get_similarity(similarity)  # fail on a bad name before the slow encoder runs
    model_path = model_source(model_path, model, tokenizer)
    if temperature is not None:
        check_temperature(temperature)
    enc = encode_text(text, encoder, device, model_path, merge_words=merge_words, seed=seed)
    return analyze_encoding(enc, similarity, temperature, query, token=token, include_matrix=include_matrix,
                            row_stats=row_stats, device=device, causal=causal)


def analyze_encodings(encs: Sequence[Encoding], similarity: str = "cosine", temperature: float | None = None,
                      query: str | None = None, device: str | torch.device | None = None,
                      causal: bool | None = None) -> list[TextAnalysis]:
    """Several encoded texts as one padded batch ``(b, n_max, d)`` with a padding mask, so padding
    never receives weight; each result equals :func:`analyze_encoding` on the text alone."""
    sim = get_similarity(similarity).name
    t = resolve_temperature(sim, temperature)
    if not encs:
        raise EmptyText("No texts given: type one text per line.")
    att = _Attention(sim, t, encs[0].causal if causal is None else bool(causal))
    lengths = [len(e.tokens) for e in encs]
    query = _clean_query(query)
    qv = _query_vector(query, encs[0], device) if query else None
    if max(lengths) > MATRIX_MAX_TOKENS:  # a long text in the batch: analyse each alone, blocked
        return [analyze_encoding(e, sim, t, query, device=device, query_vector=qv, causal=att.causal) for e in encs]
    (w, ent, sc), used, warning = run_with_fallback(_padded_batch, device, encs, att, qv)
    out = []
    for i, (e, n) in enumerate(zip(encs, lengths)):
        notes = _causal_notes(e, att.causal, qv is not None) + [
            f"batch of {len(encs)} texts padded to {max(lengths)} tokens; padding masked out"]
        if warning:
            notes.append(warning)
        out.append(TextAnalysis(
            text=e.text, tokens=list(e.tokens), offsets=list(e.offsets), similarity=sim, temperature=t,
            encoder=e.encoder, device=used, scores=sc[i, :n].copy(), score_kind="query" if qv is not None else "received",
            weights=w[i, :n, :n].copy(), entropy=ent[i, :n].copy(), query=query, merged=e.merged, notes=notes,
            model_name=e.model_name, causal=att.causal,
        ))
    return out


def analyze_texts(texts: Sequence[str], similarity: str = "cosine", temperature: float | None = None,
                  encoder: str = "contextual", query: str | None = None, device: str | torch.device | None = None,
                  model_path: str | os.PathLike | None = None, *, merge_words: bool = False,
                  seed: int = RANDOM_SEED, causal: bool | None = None, model=None, tokenizer=None) -> list[TextAnalysis]:
    """Several texts (e.g. one per line): :func:`encode_texts` then :func:`analyze_encodings`, both batched.
    ``model=`` + ``tokenizer=``: an in-memory model instead of the folder ``model_path``."""
    get_similarity(similarity)
    model_path = model_source(model_path, model, tokenizer)
    encs = encode_texts(texts, encoder, device, model_path, merge_words=merge_words, seed=seed)
    return analyze_encodings(encs, similarity, temperature, query, device, causal=causal)


def self_attention_rows(enc: Encoding, similarity: str = "cosine", temperature: float | None = None,
                        start: int = 0, stop: int | None = None,
                        device: str | torch.device | None = None, causal: bool | None = None) -> np.ndarray:
    """Rows ``start:stop`` of the self-attention over the whole text: ``(stop - start, n)``, each row
    summing to 1 over all n keys. Memory O((stop - start) x n): a 512-token window of a long text.
    ``causal=None`` follows the model (a decoder's rows are 0 after their own token)."""
    sim = get_similarity(similarity).name
    att = _Attention(sim, resolve_temperature(sim, temperature), enc.causal if causal is None else bool(causal))
    n = len(enc.tokens)
    stop = n if stop is None else stop
    if not (0 <= start < stop <= n):
        raise InvalidParameter(f"rows {start}:{stop} are outside the text's {n} tokens.")
    rows, _, _ = run_with_fallback(_rows, device, enc.vectors, att, start, stop)
    return rows


def attention_overlap(a, b) -> float:
    """How alike two attention matrices are: the mean over rows of sum_j min(a_ij, b_ij).
    1 = the same weights, 0 = no token in common; rows are compared as given (each should sum to 1)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise InvalidParameter(f"cannot compare attention of shapes {a.shape} and {b.shape}.")
    return float(np.minimum(a, b).sum(-1).mean()) if a.size else 0.0


def split_lines(text: str, max_texts: int = 64) -> list[str]:
    """One text per non-empty line (for batching); refuses more than ``max_texts`` lines."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise EmptyText()
    if len(lines) > max_texts:
        raise TextTooLong(f"{len(lines)} lines: batch at most {max_texts} texts at once.")
    return lines
