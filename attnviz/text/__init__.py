"""Attention over text: real word pieces with character offsets, three encoders, the model's own heads.

Pipeline (every step is a pure function of its inputs, so the page can cache each one):

    tokenize(text)                 word pieces + [start, end) character offsets   (text/tokens.py)
    encode_text(text, encoder)     -> Encoding: tokens, offsets, vectors (n, d)   (text/encoders.py, slow)
    analyze_encoding(enc, sim, T)  -> TextAnalysis: self-attention / query / row  (text/analysis.py, cheap)
    model_attentions(enc)          -> ModelAttention: every layer x head, rollout (text/heads.py)

The model itself (tokenizer, weights, the attention probe) is loaded by :mod:`attnviz.loaders.hf`, once
per process and device through the one model cache. Any local Hugging Face model folder
(``model_path=``) that returns attentions works: BERT-like encoders, and GPT-2-like decoders, found
causal by probing (every head 0 above the diagonal). For a decoder the self-attention views are causal
too (token i sees tokens 0..i only, the rest exactly 0; ``causal=False`` switches it off) and every
result carries ``CAUSAL_NOTE``. A model that returns no attention weights raises
``ModelHasNoAttentions``, saying which models work.

Length limits (docs/text.md): ``MAX_TEXT_CHARS`` (longer text: TextTooLong); ``MATRIX_MAX_TOKENS``
(above it no n x n matrix is built, scores come from blocked paths, memory O(n)); the trained model's
own attention reads one window of at most its positions (512 for MiniLM; the notes say which tokens).
"""

from __future__ import annotations

from ..attention import causal_rows, row_stats_blocked
from ..loaders.hf import LoadedModel, default_model_path, load_model
from .analysis import (
    CAUSAL_OFF_NOTE,
    CAUSAL_ON_NOTE,
    MATRIX_MAX_TOKENS,
    TextAnalysis,
    analyze_encoding,
    analyze_encodings,
    analyze_text,
    analyze_texts,
    attention_overlap,
    query_weights,
    resolve_temperature,
    self_attention_rows,
    split_lines,
)
from .encoders import (
    CAUSAL_NOTE,
    ENCODERS,
    MAX_QUERY_CHARS,
    RANDOM_SEED,
    UNKNOWN_NOTE_SHARE,
    WINDOW_BATCH,
    WINDOW_OVERLAP,
    EncoderInfo,
    Encoding,
    check_encoder,
    embed_query,
    encode_text,
    encode_texts,
    merge_word_pieces,
    random_vectors,
    stitch_owner,
    window_spans,
)
from .heads import ModelAttention, attention_rollout, merge_attention, model_attentions, model_attentions_batch, renormalise_rows
from .tokens import MAX_TEXT_CHARS, TokenizedText, check_text, tokenize, word_groups

__all__ = [
    "CAUSAL_NOTE", "CAUSAL_OFF_NOTE", "CAUSAL_ON_NOTE", "ENCODERS", "MATRIX_MAX_TOKENS", "MAX_QUERY_CHARS",
    "MAX_TEXT_CHARS", "RANDOM_SEED", "UNKNOWN_NOTE_SHARE", "WINDOW_BATCH", "WINDOW_OVERLAP", "EncoderInfo",
    "Encoding", "LoadedModel", "ModelAttention", "TextAnalysis", "TokenizedText", "analyze_encoding",
    "analyze_encodings", "analyze_text", "analyze_texts", "attention_overlap", "attention_rollout", "causal_rows",
    "check_encoder", "check_text", "default_model_path", "embed_query", "encode_text", "encode_texts", "load_model",
    "merge_attention", "merge_word_pieces", "model_attentions", "model_attentions_batch", "query_weights",
    "random_vectors", "renormalise_rows", "resolve_temperature", "row_stats_blocked", "self_attention_rows",
    "split_lines", "stitch_owner", "tokenize", "window_spans", "word_groups",
]
