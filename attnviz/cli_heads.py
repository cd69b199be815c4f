"""``attnviz heads``: the trained model's own attention, every layer and head, written to a file.

    attnviz heads "The kitten sat on the mat." --layer 2 --head 5 --out head.png
    attnviz heads "The bank of the river." --grid --out heads.png
    attnviz heads --file essay.txt --model ./my-bert --out heads.html       # the full page

``--out`` chooses the format by its suffix (:func:`attnviz.export.save`): ``.png`` one labelled picture
(the ``--layer`` x ``--head`` matrix, the ``--grid`` of every head, or ``--rollout``), ``.html`` one
standalone page (the highlighted text, that matrix, rollout and the grid), ``.json`` every layer x head's
weights, ``.csv`` the one matrix. Layers and heads count from 0; negative numbers count from the end;
without ``--layer`` the last layer, without ``--head`` the mean of its heads.
"""

from __future__ import annotations

import argparse
import sys

from .cli import DEVICE_HELP, device_arg
from .cli_text import read_input
from .errors import InvalidParameter
from .settings import load_settings

#: what ``--out`` may end in
OUT_SUFFIXES = (".png", ".html", ".htm", ".json", ".csv")


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "heads", help="the model's own attention (a head, every head, rollout) as a PNG or HTML file",
        description="The trained model's attention over a text, read with output_attentions=True, written to "
                    "--out: a labelled PNG of one layer x head (--layer, --head), of every head (--grid) or of "
                    "the rollout (--rollout), or a standalone HTML page with all of them.",
    )
    p.add_argument("text", nargs="?", default=None, metavar="TEXT",
                   help="the text; '-' (or nothing, with piped input) reads stdin")
    p.add_argument("--file", "-f", metavar="PATH", help="read the text from a UTF-8 file instead")
    p.add_argument("--layer", "-l", type=int, default=None, metavar="L", help="the layer (0 = first, -1 = last; default last)")
    p.add_argument("--head", "-H", type=int, default=None, metavar="H",
                   help="the head in that layer (default: the mean of its heads)")
    view = p.add_mutually_exclusive_group()
    view.add_argument("--grid", action="store_true", help="every layer x head at once (PNG)")
    view.add_argument("--rollout", action="store_true", help="attention rollout over all layers (PNG)")
    p.add_argument("--start", type=int, default=0, metavar="I",
                   help="the first token of the window the model reads (long text; default 0)")
    p.add_argument("--include-special", action="store_true", help="keep [CLS] / [SEP] in the matrices")
    p.add_argument("--out", "-o", required=True, metavar="FILE",
                   help="where to write: .png (a picture), .html (a page), .json or .csv")
    p.add_argument("--device", default=None, help=DEVICE_HELP)
    p.add_argument("--model", default=None, metavar="DIR",
                   help="a local Hugging Face model folder (default: $ATTNVIZ_MODEL_PATH, else the bundled all-MiniLM-L6-v2)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from .text import model_attentions

    if (args.grid or args.rollout) and (args.layer is not None or args.head is not None):
        raise InvalidParameter("--grid and --rollout show every layer: leave out --layer and --head.")
    if not args.out.lower().endswith(OUT_SUFFIXES):
        raise InvalidParameter(f"--out must end in {', '.join(OUT_SUFFIXES)}, got {args.out!r}.")
    text = read_input(args.text, args.file)
    ma = model_attentions(text, start=args.start, device=device_arg(args.device),
                          model_path=args.model or load_settings().model_path)
    head = "rollout" if args.rollout else ("average" if args.head is None else args.head)
    layer = ma.layer_index(args.layer)  # a bad index fails here, before anything is written
    ma.head_index(head)
    view = "grid" if args.grid else ("rollout" if args.rollout else "matrix")
    path = ma.save(args.out, view=view, layer=layer, head=head, include_special=args.include_special)
    what = ma.view_title(view, layer, head)
    print(f"wrote {path} ({what}; {len(ma.tokens)} tokens)")
    for note in ma.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0
