"""Word pieces -> vectors: three encoders, long text read in overlapping windows, query phrases.

    encode_text(text, encoder)   -> Encoding: tokens, offsets, vectors (n, d)      (the slow step)
    encode_texts(texts, encoder) several texts, short ones batched with padding masked out
    merge_word_pieces(enc)       word pieces -> words (mean vector per word)
    embed_query(query, encoder)  a word or phrase as one vector (d,)

Encoders (``ENCODERS``):
    static      the model's word-piece embedding table (no context: "bank" is always the same vector)
    contextual  the last hidden layer; text above the model's positions is read in overlapping
                windows and stitched (each token keeps the window where it sits most centrally)
    random      seeded untrained vectors, one per vocabulary id: only identical pieces match
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..errors import EmptyText, InvalidParameter, TextTooLong
from ..loaders.hf import LoadedModel, load_model, model_key, run_model
from .tokens import MAX_TEXT_CHARS, TokenizedText, _space_sensitive, tokenize, word_groups

#: tokens shared by neighbouring windows of the contextual encoder.
WINDOW_OVERLAP = 128
#: windows run through the model at once.
WINDOW_BATCH = 4
#: a query phrase longer than this is refused (it is one word or phrase, not a document).
MAX_QUERY_CHARS = 1_000
#: seed of the random encoder's vectors.
RANDOM_SEED = 0
#: a note is added when more than this share of the word pieces are the unknown token.
UNKNOWN_NOTE_SHARE = 0.2
#: said wherever a decoder's (GPT-2-like) attention is shown: its matrices are 0 above the diagonal.
CAUSAL_NOTE = ("causal (decoder) model: each token sees only earlier tokens (and itself), "
               "so every attention matrix is 0 above the diagonal")


@dataclass(frozen=True)
class EncoderInfo:
    name: str
    label: str
    sentence: str
    trained: bool


ENCODERS: dict[str, EncoderInfo] = {
    e.name: e
    for e in (
        EncoderInfo("contextual", "Contextual (MiniLM last layer)",
                    "Each word piece's vector after all 6 transformer layers: it depends on the words around it.", True),
        EncoderInfo("static", "Static (MiniLM word-piece table)",
                    "Each word piece's row of the model's embedding table: the same vector wherever the piece appears.", True),
        EncoderInfo("random", "Random (untrained)",
                    "Seeded random vectors, one per vocabulary entry: nothing learned, so only identical pieces look alike.", False),
    )
}


def check_encoder(name: str) -> str:
    if name not in ENCODERS:
        raise InvalidParameter(f"Unknown encoder {name!r}: choose one of {', '.join(ENCODERS)}.")
    return name


@dataclass(frozen=True, eq=False)
class Encoding:
    """One text under one encoder: ``n`` units (word pieces, or words when ``merged``) and their vectors.

    ``groups[i]`` is the [start, end) range of word pieces (indices into ``ids``) that unit i covers.
    ``vectors`` is ``(n, d)`` float32 on the CPU. Picklable, so ``st.cache_data`` can keep it.
    """

    text: str
    tokens: tuple[str, ...]
    offsets: tuple[tuple[int, int], ...]
    word_ids: tuple[int, ...]
    ids: tuple[int, ...]
    groups: tuple[tuple[int, int], ...]
    vectors: torch.Tensor
    encoder: str
    merged: bool
    model_path: str
    model_name: str
    device: str
    notes: tuple[str, ...] = ()
    piece_tokens: tuple[str, ...] = ()
    seed: int = RANDOM_SEED  # of the random encoder (a query phrase must use the same vectors)
    causal: bool = False  # the model is a decoder: self-attention over this text is causal by default

    def __len__(self) -> int:
        return len(self.tokens)


def window_spans(n: int, size: int, overlap: int = WINDOW_OVERLAP) -> list[tuple[int, int]]:
    """[start, end) windows of ``size`` tokens covering ``n`` tokens, neighbours sharing ``overlap``."""
    if size < 1:
        raise InvalidParameter(f"window size must be at least 1, got {size}.")
    if n <= size:
        return [(0, n)]
    overlap = max(0, min(overlap, size // 2))
    stride = size - overlap
    starts = list(range(0, n - size + 1, stride))
    if starts[-1] + size < n:
        starts.append(n - size)
    return [(s, s + size) for s in starts]


def stitch_owner(spans: Sequence[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """Which window each token takes its vector from: (window, start, end) runs, split mid-overlap."""
    runs = []
    lo = spans[0][0]
    for w, (s, e) in enumerate(spans):
        hi = e if w == len(spans) - 1 else (spans[w + 1][0] + e) // 2
        runs.append((w, lo, hi))
        lo = hi
    return runs


def _run_padded(m: LoadedModel, rows: list[list[int]], attentions: bool):
    """One forward pass over rows of text ids, each wrapped in the special tokens and padded to the
    longest with an attention mask. Returns ``(model output, wrapped rows)``."""
    full = [list(m.prefix_ids) + r + list(m.suffix_ids) for r in rows]
    width = max(len(f) for f in full)
    ids = torch.full((len(full), width), m.pad_id, dtype=torch.long)
    mask = torch.zeros((len(full), width), dtype=torch.long)
    for i, f in enumerate(full):
        ids[i, :len(f)] = torch.tensor(f)
        mask[i, :len(f)] = 1
    dev = next(m.model.parameters()).device
    with torch.inference_mode():
        out = m.model(input_ids=ids.to(dev), attention_mask=mask.to(dev), output_attentions=attentions)
    return out, full


def _forward_hidden(m: LoadedModel, rows: list[list[int]]) -> list[torch.Tensor]:
    """Last hidden states ``(len(row), d)`` of each row of text ids, the special tokens cut off."""
    out, _ = _run_padded(m, rows, attentions=False)
    h = out.last_hidden_state.float().cpu()
    p = len(m.prefix_ids)
    return [h[i, p:p + len(r)] for i, r in enumerate(rows)]


def _contextual(m: LoadedModel, ids: list[int], overlap: int, progress=None) -> tuple[torch.Tensor, list[str]]:
    n, size = len(ids), m.content_length
    spans = window_spans(n, size, overlap)
    if len(spans) == 1:
        note = (f"contextual: one pass of {n} token{'s' if n != 1 else ''} (+{len(m.prefix_ids) + len(m.suffix_ids)} special) "
                f"through the model's {m.max_length} positions")
        return _forward_hidden(m, [ids])[0], [note]
    out = torch.empty(n, m.hidden_size)
    states: list[torch.Tensor] = []
    step = WINDOW_BATCH if progress is None else 1  # with progress: one window a pass, a stop point between
    for b in range(0, len(spans), step):
        if progress is not None:
            progress(b, len(spans))  # may raise (a rerun or a closed session): the windows left are never run
        states += _forward_hidden(m, [ids[s:e] for s, e in spans[b:b + step]])
    if progress is not None:
        progress(len(spans), len(spans))
    for w, lo, hi in stitch_owner(spans):
        s = spans[w][0]
        out[lo:hi] = states[w][lo - s:hi - s]
    note = (f"windowed: {len(spans)} windows of {m.max_length} positions ({size} text tokens each, "
            f"{min(overlap, size // 2)} shared with the next); each token keeps the window where it sits most centrally")
    return out, [note]


def random_vectors(ids: Sequence[int], dim: int, seed: int = RANDOM_SEED) -> torch.Tensor:
    """Seeded N(0, 1/dim) vectors, one per vocabulary id: the same id always gets the same vector."""
    out = torch.empty(len(ids), dim)
    cache: dict[int, torch.Tensor] = {}
    gen = torch.Generator()
    for i, tid in enumerate(ids):
        v = cache.get(tid)
        if v is None:
            gen.manual_seed(seed * 1_000_003 + int(tid))
            v = torch.randn(dim, generator=gen) / math.sqrt(dim)
            cache[tid] = v
        out[i] = v
    return out


def _encode_ids(m: LoadedModel, ids: list[int], encoder: str, seed: int, overlap: int,
                progress=None) -> tuple[torch.Tensor, list[str]]:
    if encoder == "static":
        table = m.model.get_input_embeddings().weight
        return table[torch.tensor(ids, device=table.device)].float().cpu(), []
    if encoder == "random":
        return random_vectors(ids, m.hidden_size, seed), [f"random: untrained vectors (seed {seed}), nothing learned"]
    return _contextual(m, ids, overlap, progress)


def _unknown_note(m: LoadedModel, ids: Sequence[int]) -> list[str]:
    if m.unk_id is None or not ids:
        return []
    share = sum(1 for i in ids if i == m.unk_id) / len(ids)
    if share <= UNKNOWN_NOTE_SHARE:
        return []
    return [f"{share:.0%} of the word pieces are the unknown token {m.tokenizer.id_to_token(m.unk_id)}: "
            f"{m.name}'s vocabulary barely covers this script, so those pieces all share one vector"]


def _build(tk: TokenizedText, vectors: torch.Tensor, encoder: str, m: LoadedModel, used: str,
           notes: list[str], merge_words: bool, seed: int) -> Encoding:
    n = len(tk.tokens)
    enc = Encoding(
        text=tk.text, tokens=tk.tokens, offsets=tk.offsets, word_ids=tk.word_ids, ids=tk.ids,
        groups=tuple((i, i + 1) for i in range(n)), vectors=vectors.contiguous(), encoder=encoder,
        merged=False, model_path=m.path, model_name=m.name, device=used,
        notes=tuple(notes + _unknown_note(m, tk.ids) + ([CAUSAL_NOTE] if m.causal else [])),
        piece_tokens=tk.tokens, seed=seed, causal=m.causal,
    )
    return merge_word_pieces(enc) if merge_words else enc


def _encoder_device(encoder: str, device):
    """The random encoder never needs a GPU: its vectors are made on the CPU."""
    return "cpu" if encoder == "random" else device


def _encode_many(m: LoadedModel, tks: Sequence[TokenizedText], encoder: str, seed: int,
                 overlap: int) -> tuple[list[torch.Tensor], list[list[str]]]:
    """Vectors and notes of several texts: short contextual ones 8 at a time in padded passes."""
    vecs: list[torch.Tensor | None] = [None] * len(tks)
    notes: list[list[str]] = [[] for _ in tks]
    short = [i for i, tk in enumerate(tks) if len(tk.ids) <= m.content_length]
    if encoder == "contextual":
        for b in range(0, len(short), 8):
            chunk = short[b:b + 8]
            for i, h in zip(chunk, _forward_hidden(m, [list(tks[i].ids) for i in chunk])):
                vecs[i] = h
                notes[i] = [f"contextual: batched with {len(chunk) - 1} other text(s), padding masked out"]
    for i, tk in enumerate(tks):
        if vecs[i] is None:
            vecs[i], notes[i] = _encode_ids(m, list(tk.ids), encoder, seed, overlap)
    return vecs, notes


def encode_text(text: str, encoder: str = "contextual", device: str | torch.device | None = None,
                model_path: str | os.PathLike | None = None, *, merge_words: bool = False,
                seed: int = RANDOM_SEED, overlap: int = WINDOW_OVERLAP, max_chars: int = MAX_TEXT_CHARS,
                progress: Callable[[int, int], None] | None = None) -> Encoding:
    """Tokens, offsets and one vector per token ``(n, d)`` under ``encoder`` (see ``ENCODERS``).

    ``progress(done, total)``: called before each window of a long text's contextual encoding (``done`` windows
    of ``total`` run so far) and once at the end; an exception it raises stops the encoding there (the page
    uses it to show progress and to stop at a rerun or a closed session). Short texts and the static and
    random encoders (one step) never call it."""
    check_encoder(encoder)
    tk = tokenize(text, model_path, max_chars)
    m, (vec, notes), used, warning = run_model(model_key(model_path), _encoder_device(encoder, device), _encode_ids,
                                               list(tk.ids), encoder, seed, overlap, progress)
    if warning:
        notes = notes + [warning]
    return _build(tk, vec, encoder, m, used, notes, merge_words, seed)


def encode_texts(texts: Sequence[str], encoder: str = "contextual", device: str | torch.device | None = None,
                 model_path: str | os.PathLike | None = None, *, merge_words: bool = False,
                 seed: int = RANDOM_SEED, overlap: int = WINDOW_OVERLAP) -> list[Encoding]:
    """Several texts at once: short ones share padded forward passes (with an attention mask),
    texts above one window are windowed one by one. Same vectors as :func:`encode_text` per text."""
    check_encoder(encoder)
    if not texts:
        raise EmptyText("No texts given: type one text per line.")
    tks = [tokenize(t, model_path) for t in texts]
    m, (vecs, notes), used, warning = run_model(model_key(model_path), _encoder_device(encoder, device),
                                                _encode_many, tks, encoder, seed, overlap)
    return [_build(tk, v, encoder, m, used, nt + ([warning] if warning else []), merge_words, seed)
            for tk, v, nt in zip(tks, vecs, notes)]


def merge_word_pieces(enc: Encoding) -> Encoding:
    """Word pieces -> words: a word's vector is the mean of its pieces, its label the original text."""
    if enc.merged:
        return enc
    groups = word_groups(enc.word_ids)
    vectors = torch.stack([enc.vectors[s:e].mean(0) for s, e in groups]) if groups else enc.vectors
    offsets = tuple((enc.offsets[s][0], enc.offsets[e - 1][1]) for s, e in groups)
    tokens = tuple(enc.text[a:b] if e - s > 1 else enc.tokens[s] for (s, e), (a, b) in zip(groups, offsets))
    return Encoding(
        text=enc.text, tokens=tokens, offsets=offsets, word_ids=tuple(range(len(groups))), ids=enc.ids,
        groups=groups, vectors=vectors, encoder=enc.encoder, merged=True, model_path=enc.model_path,
        model_name=enc.model_name, device=enc.device,
        notes=enc.notes + (f"word pieces merged: {len(enc.ids)} pieces -> {len(groups)} words (mean vector per word)",),
        piece_tokens=enc.piece_tokens, seed=enc.seed, causal=enc.causal,
    )


def embed_query(query: str, encoder: str = "contextual", device: str | torch.device | None = None,
                model_path: str | os.PathLike | None = None, *, seed: int = RANDOM_SEED) -> torch.Tensor:
    """A word or phrase as one vector ``(d,)``: the mean of its token vectors under ``encoder``."""
    if not isinstance(query, str) or not query.strip():
        raise EmptyText("The query is empty: type a word or a phrase.")
    if len(query) > MAX_QUERY_CHARS:
        raise TextTooLong(f"The query has {len(query):,} characters; keep it under {MAX_QUERY_CHARS:,} (a word or a phrase).")
    if _space_sensitive(load_model(model_path, "cpu").tokenizer):
        # byte-level BPE (GPT-2): a word inside a text is " cat", a different piece from "cat" at the start
        # of a text; the query is matched as a word inside the text (the text's first word reads slightly apart)
        query = " " + query.lstrip()
    return encode_text(query, encoder, device, model_path, seed=seed).vectors.mean(0)

