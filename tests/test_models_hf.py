"""Any local Hugging Face model folder: a tiny GPT-2 (causal decoder) and a tiny BERT (encoder), both with
random weights and a tokenizer.json trained here on a few sentences, loaded through attnviz.text, the CLI
and the text page; and folders whose model gives no attentions get ModelHasNoAttentions."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import attnviz.text as tx
from attnviz import attend
from attnviz.cli import main
from attnviz.errors import ModelHasNoAttentions

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = [
    "The little kitten chased a ball, while the car stayed in the garage.",
    "She sat on the river bank and watched the water.",
    "He went to the bank to take out some money.",
    "Attention is all you need, they said.",
    "Each token sees only earlier tokens in a decoder.",
]
TEXT = "The kitten sat on the river bank."
# what the page, the HTML and the CLI must say for a decoder
SAYS = "causal (decoder) model: each token sees only earlier tokens"


def gpt2_tokenizer():
    """A byte-level BPE like GPT-2's (no special tokens around a text), trained on SENTENCES."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)  # as GPT-2's own tokenizer.json: " sat" is one piece
    tok.train_from_iterator(SENTENCES, trainers.BpeTrainer(
        vocab_size=320, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    return tok


def bert_tokenizer():
    """A lower-casing WordPiece with [CLS] ... [SEP] around every text, like BERT's."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(SENTENCES, trainers.WordPieceTrainer(
        vocab_size=200, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"], show_progress=False))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    return tok


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel

    d = tmp_path_factory.mktemp("tiny-gpt2")
    tok = gpt2_tokenizer()
    tok.save(str(d / "tokenizer.json"))
    torch.manual_seed(0)
    eos = tok.token_to_id("<|endoftext|>")
    cfg = GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=64, n_layer=2, n_head=2, n_embd=32,
                     bos_token_id=eos, eos_token_id=eos)
    GPT2LMHeadModel(cfg).save_pretrained(d)  # saved as GPT-2 checkpoints are: with the LM head
    return d


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    from transformers import BertConfig, BertModel

    d = tmp_path_factory.mktemp("tiny-bert")
    tok = bert_tokenizer()
    tok.save(str(d / "tokenizer.json"))
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64, pad_token_id=tok.token_to_id("[PAD]"))
    BertModel(cfg).save_pretrained(d)
    return d


def direct_attentions(folder: Path, ids: list[int]) -> np.ndarray:
    """transformers called directly, without attnviz: (layers, heads, N, N)."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(folder), attn_implementation="eager").eval()
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([ids]), output_attentions=True)
    return torch.stack(out.attentions)[:, 0].numpy()


def heat_z(chart) -> np.ndarray:
    """The z matrix of a plotly heatmap as AppTest sees it (plain lists or plotly's base64 typed array)."""
    z = json.loads(chart.proto.spec)["data"][0]["z"]
    if isinstance(z, dict):
        import base64

        shape = tuple(int(v) for v in str(z["shape"]).split(","))
        z = np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(shape)
    return np.asarray(z, dtype=np.float64)


def upper(a: np.ndarray) -> np.ndarray:
    """Every entry above the diagonal of the last two axes."""
    n = a.shape[-1]
    return a[..., np.triu_indices(n, 1)[0], np.triu_indices(n, 1)[1]]


# ------------------------------------------------------------------------------------------- decoder


def test_a_gpt2_folder_loads_as_a_causal_model(gpt2_dir):
    m = tx.load_model(gpt2_dir)
    assert m.causal is True
    assert (m.num_layers, m.num_heads, m.hidden_size, m.max_length) == (2, 2, 32, 64)
    assert m.prefix_ids == () and m.suffix_ids == ()  # GPT-2 wraps a text in nothing
    tk = tx.tokenize(TEXT + "\n\nIt  rained.", gpt2_dir)
    pieces = [tk.text[s:e] for s, e in tk.offsets]
    assert not [t for t in tk.tokens if "Ġ" in t or "Ċ" in t]  # labels show the user's characters, not BPE bytes
    assert [t for t in tk.tokens if t.strip()] == [p for p in pieces if p.strip()]
    assert "kitten" in "".join(pieces) and not [p for p in pieces if len(p) > 1 and p[0].isspace()]  # highlights skip the space
    assert tx.load_model(gpt2_dir) is m  # loaded once


def test_decoder_own_attention_is_zero_above_the_diagonal(gpt2_dir):
    enc = tx.encode_text(TEXT, "static", model_path=gpt2_dir)
    ma = tx.model_attentions(enc)
    n = len(enc.tokens)
    assert ma.causal and ma.attentions.shape == (2, 2, n, n)
    np.testing.assert_allclose(ma.attentions, direct_attentions(gpt2_dir, list(enc.ids)), atol=1e-6)
    assert not upper(ma.attentions).any()  # exactly 0, every layer and head
    np.testing.assert_allclose(ma.attentions.sum(-1), 1.0, atol=1e-5)
    for layer, head in ((0, 0), (1, 1), (1, "average"), (None, "rollout")):
        m = ma.matrix(layer, head)
        assert not upper(m).any(), (layer, head)
        np.testing.assert_allclose(m.sum(-1), 1.0, atol=1e-5)
    assert not upper(tx.model_attentions(tx.merge_word_pieces(enc)).matrix(1, "average")).any()  # words too
    assert any(SAYS in note for note in ma.notes)


def test_decoder_similarity_attention_is_causal(gpt2_dir):
    a = tx.analyze_text(TEXT, "cosine", 0.1, model_path=gpt2_dir)
    n = len(a.tokens)
    assert a.causal and a.weights.shape == (n, n) and not upper(a.weights).any()
    enc = tx.encode_text(TEXT, "contextual", model_path=gpt2_dir)
    for i in range(n):  # row i is plain attention over the first i + 1 tokens
        ref = attend(enc.vectors[: i + 1], "cosine", 0.1).weights[-1].numpy()
        np.testing.assert_allclose(a.weights[i, : i + 1], ref, atol=1e-6)
    np.testing.assert_allclose(a.scores, a.weights.mean(0), atol=1e-6)  # attention received
    # the blocked paths (used above MATRIX_MAX_TOKENS) give the same numbers without the matrix
    blocked = tx.analyze_encoding(enc, "cosine", 0.1, include_matrix=False)
    np.testing.assert_allclose(blocked.scores, a.scores, atol=1e-6)
    np.testing.assert_allclose(blocked.entropy, a.entropy, atol=1e-5)
    row = tx.analyze_encoding(enc, "euclidean", 1.0, token=3, include_matrix=False)
    assert not row.scores[4:].any() and row.scores[:4].sum() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(tx.self_attention_rows(enc, "cosine", 0.1, 2, 6), a.weights[2:6], atol=1e-6)
    # a query phrase is not a position in the text: it sees every token
    q = tx.analyze_encoding(enc, "cosine", 0.1, "kitten")
    assert q.scores.shape == (n,) and (q.scores > 0).all()
    # batched lines with padding: the same as one by one
    lines = ["The kitten sat.", "The car stayed in the garage."]
    batch = tx.analyze_texts(lines, "cosine", 0.1, model_path=gpt2_dir)
    for a_line, text in zip(batch, lines):
        np.testing.assert_allclose(a_line.weights, tx.analyze_text(text, "cosine", 0.1, model_path=gpt2_dir).weights,
                                   atol=1e-5)
        assert a_line.causal and not upper(a_line.weights).any()
    # the mask can be switched off, and the notes then say so
    off = tx.analyze_encoding(enc, "cosine", 0.1, causal=False)
    assert not off.causal and upper(off.weights).any()
    assert not any(SAYS in n for n in off.notes) and any("causal mask off" in n for n in off.notes)


def test_decoder_html_json_and_png_say_causal(gpt2_dir, tmp_path):
    a = tx.analyze_text(TEXT, "cosine", 0.1, model_path=gpt2_dir)
    assert SAYS in a.to_html() and SAYS in a._repr_html_()
    d = json.loads(a.to_json())
    assert d["causal"] is True and not upper(np.array(d["weights"])).any()
    assert any(SAYS in n for n in d["notes"])
    png = a.save(tmp_path / "causal.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_cli_text_with_a_decoder_folder(gpt2_dir, capsys):
    out = subprocess.run([sys.executable, "-m", "attnviz", "text", TEXT, "--model", str(gpt2_dir), "--json"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["causal"] is True and d["model"] == gpt2_dir.name
    w = np.array(d["weights"])
    assert w.shape == (len(d["tokens"]),) * 2 and not upper(w).any()
    assert main(["text", TEXT, "--model", str(gpt2_dir), "--top", "3"]) == 0
    table = capsys.readouterr().out
    assert f"note: {SAYS}" in table and "rank" in table


def test_text_page_with_a_decoder_folder(gpt2_dir, monkeypatch):
    """ATTNVIZ_MODEL_PATH points the page at the decoder: the heads view says causal and shows it."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("ATTNVIZ_MODEL_PATH", str(gpt2_dir))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    at.switch_page("pages/text.py").run()
    at.radio(key="view").set_value("model").run()
    assert not at.exception, at.exception
    assert SAYS in "\n".join(c.value for c in at.caption)
    sim_z, model_z = (heat_z(c) for c in at.get("plotly_chart")[:2])
    assert model_z.shape[0] > 3 and not upper(model_z).any() and not upper(sim_z).any()


# ------------------------------------------------------------------------------------------- encoder


def test_a_bert_folder_is_an_encoder(bert_dir):
    m = tx.load_model(bert_dir)
    assert not m.causal and m.prefix_tokens == ("[CLS]",) and m.suffix_tokens == ("[SEP]",)
    enc = tx.encode_text(TEXT, "contextual", model_path=bert_dir)
    assert len(enc.tokens) > 5 and "[CLS]" not in enc.tokens and "[SEP]" not in enc.tokens
    ma = tx.model_attentions(enc)
    ids = list(m.prefix_ids) + list(enc.ids) + list(m.suffix_ids)
    np.testing.assert_allclose(ma.attentions, direct_attentions(bert_dir, ids), atol=1e-6)
    assert not ma.causal and upper(ma.attentions).all()  # every token sees every token
    a = tx.analyze_encoding(enc, "cosine", 0.1)
    assert not a.causal and upper(a.weights).any()
    assert not any("causal" in n for n in a.notes + list(ma.notes)) and SAYS not in a.to_html()
    assert json.loads(a.to_json())["causal"] is False


# ----------------------------------------------------------------------------------- no attentions


def test_an_architecture_without_attentions_gets_the_typed_error(tmp_path, capsys):
    from transformers import MambaConfig, MambaModel

    tok = gpt2_tokenizer()
    tok.save(str(tmp_path / "tokenizer.json"))
    torch.manual_seed(0)
    MambaModel(MambaConfig(vocab_size=tok.get_vocab_size(), hidden_size=16, state_size=4, num_hidden_layers=1,
                           intermediate_size=32)).save_pretrained(tmp_path)
    with pytest.raises(ModelHasNoAttentions) as err:
        tx.load_model(tmp_path)
    msg = str(err.value)
    assert "mamba" in msg and "no attention weights" in msg
    # it says what to do: which models work, and how to go back to the bundled one
    assert "BERT-like encoder or a GPT-2-like decoder" in msg and "ATTNVIZ_MODEL_PATH" in msg
    capsys.readouterr()  # save_pretrained's progress bar
    assert main(["text", TEXT, "--model", str(tmp_path)]) == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and "Traceback" not in stderr and "no attention weights" in stderr


def test_a_forward_that_drops_or_refuses_attentions(gpt2_dir, tmp_path, monkeypatch):
    from transformers.models.gpt2 import modeling_gpt2

    real = modeling_gpt2.GPT2Model.forward

    def no_attentions(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        out.attentions = None
        return out

    dropped = shutil.copytree(gpt2_dir, tmp_path / "dropped")  # a new folder: not in the model cache
    monkeypatch.setattr(modeling_gpt2.GPT2Model, "forward", no_attentions)
    with pytest.raises(ModelHasNoAttentions, match="returns no attention weights: choose a transformer"):
        tx.load_model(dropped)

    def refuses(self, *args, output_attentions=None, **kwargs):
        raise TypeError("forward() got an unexpected keyword argument 'output_attentions'")

    refused = shutil.copytree(gpt2_dir, tmp_path / "refused")
    monkeypatch.setattr(modeling_gpt2.GPT2Model, "forward", refuses)
    with pytest.raises(ModelHasNoAttentions, match=r"cannot be run on token ids with output_attentions=True \(TypeError\)"):
        tx.analyze_text(TEXT, model_path=refused)


def test_decoder_query_matches_the_word_inside_the_text(gpt2_dir):
    """Byte-level BPE: a word typed as a query must be the ' word' piece the text contains, not 'word'."""
    tok = tx.load_model(gpt2_dir).tokenizer
    words = [w.strip(".") for w in TEXT.split()[1:]]
    word = next(w for w in words if len(tok.encode(" " + w).ids) == 1 and tok.encode(w).ids != tok.encode(" " + w).ids)
    enc = tx.encode_text(TEXT, "static", model_path=gpt2_dir)
    inside = [i for i, (s, e) in enumerate(enc.offsets) if TEXT[s:e] == word]
    assert inside, (word, enc.tokens)
    q = tx.embed_query(word, "static", model_path=gpt2_dir)
    assert torch.allclose(q, enc.vectors[inside[0]])
    # BERT-like tokenizers are not space-sensitive: nothing changes for them
    assert torch.allclose(tx.embed_query("kitten", "static"), tx.embed_query(" kitten", "static"))


def test_decoder_labels_are_the_users_characters_for_any_script(gpt2_dir):
    """Byte-level pieces of accents, CJK and emoji are shown as the user's text, not as BPE bytes (Ã©)."""
    text = "Café naïve 学习 🙂 ok"
    tk = tx.tokenize(text, gpt2_dir)
    for label, (s, e) in zip(tk.tokens, tk.offsets):
        assert label == text[s:e], (label, text[s:e])
    assert not [t for t in tk.tokens if "Ã" in t or "Ġ" in t]  # no byte-level spelling leaks into a label


# ------------------------------------------------------------------------------------- the one cache


@pytest.fixture(scope="module")
def vocab_only_dir(bert_dir, tmp_path_factory) -> Path:
    """The tiny BERT without tokenizer.json: transformers must build the fast tokenizer from vocab.txt."""
    folder = tmp_path_factory.mktemp("vocab-only")
    for f in bert_dir.iterdir():
        if f.name != "tokenizer.json":
            shutil.copy(f, folder / f.name)
    vocab = json.loads((bert_dir / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    (folder / "vocab.txt").write_text("\n".join(sorted(vocab, key=vocab.get)) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": True}),
                                                  encoding="utf-8")
    return folder


NO_NETWORK = r"""
import json, os, socket, sys
for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.pop(var, None)  # nothing but local_files_only may keep the loads off the hub
tried = []
def refuse(*args, **kwargs):
    tried.append(repr(args[:2]))
    raise OSError("network access attempted")
socket.socket.connect = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
import attnviz.text as tx
for folder in sys.argv[1:]:
    tx.analyze_text("The kitten sat on the bank.", model_path=folder or None)
print(json.dumps({"tried": tried, "env": [v for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") if v in os.environ]}))
"""


def test_loading_never_touches_a_hub_nor_the_environment(gpt2_dir, bert_dir, vocab_only_dir):
    """Offline by construction: every file is read with local_files_only / from_file, with the offline
    variables unset and every socket refused (the bundled model, a decoder, an encoder, a folder whose
    tokenizer transformers must convert); and importing attnviz.text sets no variable."""
    folders = ["", str(gpt2_dir), str(bert_dir), str(vocab_only_dir)]
    out = subprocess.run([sys.executable, "-c", NO_NETWORK, *folders], capture_output=True, text=True, cwd=ROOT,
                         timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"tried": [], "env": []}


def test_a_vocab_only_folder_is_converted_locally(bert_dir, vocab_only_dir):
    m = tx.load_model(vocab_only_dir)
    assert m.prefix_tokens == ("[CLS]",) and m.suffix_tokens == ("[SEP]",)
    assert m.tokenizer.encode("the kitten", add_special_tokens=False).tokens == \
        tx.load_model(bert_dir).tokenizer.encode("the kitten", add_special_tokens=False).tokens


def test_models_live_in_the_one_cache_loaded_once(bert_dir, tmp_path, monkeypatch):
    import threading

    from attnviz.loaders import hf
    from attnviz.loaders.cache import MODELS

    assert MODELS.peek(hf.KIND, (str(Path(bert_dir).resolve()), "cpu")) is tx.load_model(bert_dir)
    fresh = shutil.copytree(bert_dir, tmp_path / "fresh")  # a folder not in the cache yet
    loads = []
    real = hf._load_cpu
    monkeypatch.setattr(hf, "_load_cpu", lambda key: loads.append(key) or real(key))
    got, barrier = [], threading.Barrier(6)

    def load():
        barrier.wait()
        got.append(tx.load_model(fresh))

    threads = [threading.Thread(target=load) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads == [str(fresh.resolve())] and len(got) == 6 and len({id(m) for m in got}) == 1  # one load
    assert tx.load_model(str(fresh) + "/") is got[0]  # the same folder spelled differently


def test_transformers_names_resolve_under_one_lock_from_many_threads():
    """The preload thread and sessions import from transformers at once: every thread gets the real class."""
    import subprocess
    import sys

    code = (
        "import threading\n"
        "from attnviz.loaders.cache import from_transformers\n"
        "names = [('', 'AutoModel'), ('', 'AutoTokenizer'), ('models.dinov2.modeling_dinov2', 'Dinov2Model'),\n"
        "         ('utils', 'logging'), ('', 'CLIPModel'), ('models.bert.modeling_bert', 'BertModel')] * 2\n"
        "got, errors = {}, []\n"
        "def run(i, mod, name):\n"
        "    try:\n"
        "        got[i] = from_transformers(mod, name)[0]\n"
        "    except Exception as err:\n"
        "        errors.append(repr(err))\n"
        "threads = [threading.Thread(target=run, args=(i, m, n)) for i, (m, n) in enumerate(names)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "assert not errors, errors\n"
        "assert all(got[i] is got[i + 6] for i in range(6))\n"
        "assert got[0].__name__ == 'AutoModel' and got[2].__name__ == 'Dinov2Model'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
