"""Text -> word pieces: the model's tokenizer, with [start, end) character offsets into the text.

    check_text(text)       the edge check: a non-empty, valid-Unicode str of at most MAX_TEXT_CHARS
    tokenize(text)         -> TokenizedText: pieces without the special tokens, offsets, word ids
    word_groups(word_ids)  consecutive pieces of one word as [start, end) ranges
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

from ..errors import EmptyText, InvalidParameter, TextTooLong
from ..loaders.hf import load_model

#: the library refuses text longer than this (the page truncates far earlier, see pages/text.py).
MAX_TEXT_CHARS = 500_000


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

