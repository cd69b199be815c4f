"""``attnviz text``: attention over a text from the command line.

    attnviz text "The kitten sat on the mat." --query cat --json
    cat essay.txt | attnviz text - --query "river bank" --no-matrix --json
    attnviz text --file essay.txt --similarity euclidean --temperature 2

JSON output: ``{tokens, offsets, weights, scores, similarity, encoder, device, ...}`` where
``offsets`` are [start, end) character spans into the input, ``weights`` the token x token matrix
(``null`` with ``--no-matrix`` or above ``MATRIX_MAX_TOKENS`` tokens), and ``scores`` one number per
token: the query's weights with ``--query``, else the attention each token receives.
"""

from __future__ import annotations

import argparse
import sys

from .cli import DEVICE_HELP, device_arg
from .errors import EmptyText, FileNotFound, InvalidParameter
from .settings import load_settings

#: the --encoder names, spelled out here so that ``--help`` imports no torch (attnviz.text does);
#: tests/test_cold_start.py checks they are ``attnviz.text.ENCODERS``' keys, in order
ENCODER_NAMES = ("contextual", "static", "random")


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "text", help="attention over a text: tokens, weights, scores (JSON with --json)",
        description="Attention over a text under a similarity function: self-attention, or a query's "
                    "attention with --query. Reads TEXT, or stdin when TEXT is '-' or missing.",
    )
    p.add_argument("text", nargs="?", default=None, metavar="TEXT",
                   help="the text; '-' (or nothing, with piped input) reads stdin")
    p.add_argument("--file", "-f", metavar="PATH", help="read the text from a UTF-8 file instead")
    p.add_argument("--similarity", "-s", default="cosine", metavar="NAME",
                   help="similarity function (see `attnviz similarities`); default cosine")
    p.add_argument("--temperature", "-t", type=float, default=None, metavar="T",
                   help="softmax temperature; default: the similarity's own default")
    p.add_argument("--encoder", "-e", default="contextual", metavar="NAME",
                   help=f"token vectors: {', '.join(ENCODER_NAMES)} (default contextual)")
    p.add_argument("--query", "-q", default=None, metavar="WORDS",
                   help="a word or phrase: scores become softmax(sim(query, token) / T)")
    p.add_argument("--token", type=int, default=None, metavar="I",
                   help="scores become token I's row of the self-attention (ignored with --query)")
    p.add_argument("--merge-words", action="store_true", help="merge word pieces into whole words")
    p.add_argument("--device", default=None, help=DEVICE_HELP)
    p.add_argument("--model", default=None, metavar="DIR",
                   help="a local Hugging Face model folder (default: $ATTNVIZ_MODEL_PATH, else the bundled all-MiniLM-L6-v2)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--no-matrix", action="store_true", help="leave the token x token matrix out of the JSON")
    p.add_argument("--top", type=int, default=10, metavar="K", help="rows in the table (default 10)")
    p.add_argument("--html", metavar="PATH", help="also write the highlighted text as a standalone HTML file")
    p.set_defaults(func=run)
    return p


def read_input(text: str | None, file: str | None, stdin=None) -> str:
    """The text from the argument, a file, or stdin; one friendly error for anything unreadable."""
    from .text import MAX_TEXT_CHARS

    stdin = sys.stdin if stdin is None else stdin
    if file is not None:
        if text is not None:
            raise InvalidParameter("Give the text either as an argument or with --file, not both.")
        try:
            with open(file, "rb") as fh:
                raw = fh.read(MAX_TEXT_CHARS * 4 + 1)
        except FileNotFoundError:
            raise FileNotFound(f"Cannot read {file!r}: there is no file there (check the path).") from None
        except OSError as err:
            raise InvalidParameter(f"Cannot read {file!r}: {err.strerror or err}.") from None
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidParameter(f"{file!r} is not UTF-8 text.") from None
    if text is None or text == "-":
        if text is None and stdin.isatty():
            raise EmptyText("No text given: pass TEXT, '-' with piped input, or --file PATH.")
        try:
            data = stdin.buffer.read(MAX_TEXT_CHARS * 4 + 1) if hasattr(stdin, "buffer") else stdin.read()
        except OSError as err:
            raise InvalidParameter(f"Cannot read standard input: {err}.") from None
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise InvalidParameter("Standard input is not UTF-8 text.") from None
        return data
    return text


def run(args) -> int:
    from .similarity import get_similarity
    from .text import MATRIX_MAX_TOKENS, analyze_text

    get_similarity(args.similarity)  # a bad name fails before any input is read or the model loads
    if args.top < 0:
        raise InvalidParameter(f"--top must be 0 or more, got {args.top}.")
    if args.query is not None and not args.query.strip():
        raise EmptyText("The query is empty: give --query a word or a phrase.")
    text = read_input(args.text, args.file)
    analysis = analyze_text(
        text, similarity=args.similarity, temperature=args.temperature, encoder=args.encoder, query=args.query,
        device=device_arg(args.device), model_path=args.model or load_settings().model_path, merge_words=args.merge_words,
        token=None if args.query is not None else args.token, include_matrix=False if args.no_matrix else "auto",
        row_stats=False,  # entropies come with the matrix; the blocked pass is not worth it here
    )
    if args.html:
        try:
            analysis.save(args.html if args.html.lower().endswith((".html", ".htm")) else args.html + ".html")
        except OSError as err:
            raise InvalidParameter(f"Cannot write {args.html!r}: {err.strerror or err}.") from None
    if args.json:
        sys.stdout.write(analysis.to_json(include_matrix=not args.no_matrix) + "\n")
        return 0
    print(f"{len(analysis.tokens)} tokens · {analysis.caption()}")
    for note in analysis.notes:
        print(f"note: {note}")
    if analysis.weights is None and not args.no_matrix and len(analysis.tokens) > MATRIX_MAX_TOKENS:
        print(f"note: the full matrix is left out above {MATRIX_MAX_TOKENS:,} tokens")
    print(f"{'rank':>4}  {'index':>6}  {'score':>9}  token")
    for rank, (i, tok, score) in enumerate(analysis.top_tokens(args.top), 1):
        start, end = analysis.offsets[i]
        shown = text[start:end].replace("\n", " ")
        print(f"{rank:>4}  {i:>6}  {score:>9.5f}  {shown}" + (f"  ({tok})" if tok != shown.lower() else ""))
    return 0
