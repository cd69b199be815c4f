"""``attnviz head``: inside one trained head, from the command line.

    attnviz head "The kitten sat on the mat." --layer 2 --head 5 --json
    attnviz head "The bank of the river." -l -1 -H 0 --similarity cosine --temperature 0.1 --json
    attnviz head --image photo.jpg -l 9 -H 2 --similarity cosine -t 0.1 --json     # DINOv2-small on a photo

JSON output: ``{tokens, layer, head, d_head, q, k, v, scores, weights, output, max_abs_diff, diagonal_share,
notice}`` (floats rounded to ``--decimals``); with ``--similarity`` also ``swapped_weights`` (this head's,
n x n), ``drift`` (cosine of the sentence embeddings before and after), ``overlap`` and ``similarity`` /
``temperature``. Without ``--json``: each token's strongest key under the head, and the swap's summary.
With ``--image``: DINOv2-small (``attnviz.trace.head_trace_image``), tokens "[CLS]" + patch labels, ``kind``
"image", drift = cosine of the [CLS] embedding; ``--resolution`` sets the long side (default 224).
"""

from __future__ import annotations

import argparse
import json
import sys

from .cli import DEVICE_HELP, device_arg
from .cli_text import read_input
from .errors import InvalidParameter
from .settings import load_settings


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "head", help="inside one trained head: q, k, v, scores, weights, output (JSON with --json)",
        description="Recompute one head of the model (layers and heads from 0; negative counts from the end) "
                    "from its own weights; with --similarity, rescore it with that similarity and run the "
                    "rest of the model on the new weights.",
    )
    p.add_argument("text", nargs="?", default=None, metavar="TEXT",
                   help="the text; '-' (or nothing, with piped input) reads stdin")
    p.add_argument("--file", "-f", metavar="PATH", help="read the text from a UTF-8 file instead")
    p.add_argument("--image", "-i", metavar="PATH", default=None,
                   help="trace DINOv2-small's head on this photo instead of a text")
    p.add_argument("--resolution", type=int, default=224, metavar="PX",
                   help="with --image: the long side in pixels, a multiple of 14 (default 224)")
    p.add_argument("--layer", "-l", type=int, required=True, metavar="L", help="the layer (0 = first, -1 = last)")
    p.add_argument("--head", "-H", type=int, required=True, metavar="H", help="the head in that layer")
    p.add_argument("--similarity", "-s", default=None, metavar="NAME",
                   help="also swap the head's scoring for this similarity (see `attnviz similarities`)")
    p.add_argument("--temperature", "-t", type=float, default=None, metavar="T",
                   help="the swap's softmax temperature; default: the similarity's own default")
    p.add_argument("--max-tokens", type=int, default=64, metavar="N",
                   help="trace the first N word pieces (default 64; the special tokens come on top)")
    p.add_argument("--decimals", type=int, default=5, metavar="D", help="round floats in the JSON (default 5)")
    p.add_argument("--device", default=None, help=DEVICE_HELP)
    p.add_argument("--model", default=None, metavar="DIR",
                   help="a local BERT-like model folder (default: $ATTNVIZ_MODEL_PATH, else the bundled all-MiniLM-L6-v2)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from .similarity import get_similarity
    from .trace import head_trace, swap_head_similarity

    if args.similarity is not None:
        get_similarity(args.similarity)  # a bad name fails before the model loads
    elif args.temperature is not None:
        raise InvalidParameter("--temperature goes with --similarity: name the similarity to swap in.")
    if not 0 <= args.decimals <= 12:
        raise InvalidParameter(f"--decimals must be between 0 and 12, got {args.decimals}.")
    device = device_arg(args.device)
    swap = None
    if args.image is not None:
        from .image import load_upload
        from .trace import head_trace_image, swap_head_similarity_image

        if args.text is not None or args.file is not None:
            raise InvalidParameter("Give either a text or --image, not both.")
        photo = load_upload(args.image, name=args.image)
        trace = head_trace_image(photo, args.layer, args.head, resolution=args.resolution, device=device)
        if args.similarity is not None:
            swap = swap_head_similarity_image(photo, trace.layer, trace.head, args.similarity, args.temperature,
                                              resolution=args.resolution, device=device)
        return _report(args, trace, swap)
    text = read_input(args.text, args.file)
    model = args.model or load_settings().model_path
    trace = head_trace(text, args.layer, args.head, model=model, device=device, max_tokens=args.max_tokens)
    if args.similarity is not None:
        swap = swap_head_similarity(text, trace.layer, trace.head, args.similarity, args.temperature, model=model,
                                    device=device, max_tokens=args.max_tokens)
    return _report(args, trace, swap)


def _report(args, trace, swap) -> int:
    if args.json:
        out = trace.to_dict(decimals=args.decimals)
        if swap is not None:
            d = swap.to_dict(decimals=args.decimals)
            out.update(similarity=d["similarity"], temperature=d["temperature"], swapped_weights=d["swapped_weights"][0],
                       drift=swap.drift, overlap=swap.overlap)
        sys.stdout.write(json.dumps(out, ensure_ascii=False, allow_nan=False) + "\n")
        return 0
    share = trace.diagonal_share()
    print(f"{trace.model_name} layer {trace.layer}, head {trace.head}: {trace.n} tokens, d_head {trace.d_head}; "
          f"max |Δ| vs the model's attention {trace.max_abs_diff:.1e}")
    print(f"weight on itself: head {share['model']:.3f}, seed {trace.seed_similarity} on the same h {share['seed']:.3f}")
    if trace.notice:
        print(f"note: {trace.notice}")
    print(f"{'index':>5}  {'token':<16} {'strongest key':<16} {'weight':>7}")
    for i, tok in enumerate(trace.tokens):
        j = int(trace.weights[i].argmax())
        print(f"{i:>5}  {tok:<16} {trace.tokens[j]:<16} {trace.weights[i, j]:>7.4f}")
    if swap is not None:
        print(f"swap to {swap.similarity} (T={swap.temperature:g}): overlap {swap.overlap:.4f}, "
              f"{'[CLS]' if swap.kind == 'image' else 'sentence'} drift (cosine) {swap.drift:.6f}; most moved: "
              + ", ".join(f"{t} {d:.2e}" for _, t, d in swap.moved_tokens[:3]))
    return 0
