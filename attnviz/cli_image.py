"""``attnviz image``: parallel attention over an image's patches, from the command line.

    attnviz image PATH [--similarity NAME] [--temperature T] [--patch PX] [--query ROW,COL]
                       [--out overlay.png] [--json]

``--json`` prints ``{width, height, grid: [rows, cols], scores: rows x cols, similarity, device, ...}``
(``width``/``height`` of the upright image; ``scores`` = the query patch's row with ``--query``, else
the attention each patch receives); otherwise a short summary. ``--out`` writes the overlay PNG at
the image's full size. Bad input: one line on stderr and exit 2 (cli.py turns our typed errors into that).
"""

from __future__ import annotations

import argparse
import sys

from .cli import DEVICE_HELP, device_arg


def _row_col(text: str) -> tuple[int, int]:
    parts = text.replace(" ", "").split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        r, c = int(parts[0]), int(parts[1])
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ROW,COL (two whole numbers, e.g. 3,5), got {text!r}") from None
    if r < 0 or c < 0:
        raise argparse.ArgumentTypeError(f"ROW and COL count from 0, got {text!r}")
    return r, c


def _grid(text: str) -> tuple[int, int]:
    text = text.lower().replace("x", ",")
    try:
        return _row_col(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected ROWS,COLS (e.g. 16,24), got {text!r}") from None


def register(subparsers) -> argparse.ArgumentParser:
    from .image import MAX_COMPUTE_SIDE, MAX_IMAGE_PIXELS, VIEWS
    from .render import COLORMAPS, DEFAULT_COLORMAP

    p = subparsers.add_parser(
        "image", help="parallel attention over an image's patches: JSON scores and an overlay PNG",
        description="Cut an image into patches, describe each patch by its colour and texture, and let every "
                    "patch attend to every other one at once. Prints the scores; --out writes the heatmap "
                    f"drawn over the photo at full size. Images up to {MAX_IMAGE_PIXELS / 1e6:g} megapixels "
                    f"(features are computed on a copy at most {MAX_COMPUTE_SIDE} px on its long side).")
    p.add_argument("path", metavar="PATH", help="a JPEG, PNG, WebP, GIF, BMP or TIFF file")
    p.add_argument("--similarity", default="cosine", metavar="NAME",
                   help="similarity function (see `attnviz similarities`; default: cosine)")
    p.add_argument("--temperature", type=float, default=None, metavar="T",
                   help="softmax temperature (default: the similarity's own default)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--patch", type=int, default=None, metavar="PX",
                      help="patch side in pixels (default: 24 patches along the long side)")
    size.add_argument("--grid", type=_grid, default=None, metavar="ROWS,COLS", help="the grid size instead of --patch")
    p.add_argument("--query", type=_row_col, default=None, metavar="ROW,COL",
                   help="the patch whose attention to show (row and column from 0); default: attention received")
    p.add_argument("--view", choices=VIEWS, default=None,
                   help="which map: query (needs --query), received, pooling "
                        "(default: query with --query, else received)")
    p.add_argument("--out", default=None, metavar="overlay.png", help="write the overlay PNG (full resolution) here")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--device", default=None, help=DEVICE_HELP)
    p.add_argument("--colormap", choices=COLORMAPS, default=DEFAULT_COLORMAP, help="overlay colour map")
    p.add_argument("--opacity", type=float, default=0.5, help="overlay opacity, 0 to 1 (default 0.5)")
    p.add_argument("--grid-lines", action="store_true", help="draw the patch grid on the overlay")
    p.add_argument("--position-weight", type=float, default=0.0, metavar="W",
                   help="weight of the patch position in its features (default 0: appearance only)")
    p.add_argument("--features", default=None, metavar="MODEL",
                   help="a local .pt2 (torch.export) or TorchScript file to compute patch features with")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from .errors import InvalidParameter
    from .image import attend_patches, compute_features, load_upload
    from .overlay import check_opacity

    out = args.out
    if out is not None and not out.lower().endswith(".png"):
        raise InvalidParameter(f"--out must name a .png file, got {out!r}.")
    check_opacity(args.opacity)  # checked even without --out: a bad option is an error either way
    device = device_arg(args.device)
    image = load_upload(args.path)  # the one loader, under the deployment's ATTNVIZ_MAX_IMAGE_PIXELS
    feats = compute_features(image, patch=args.patch, grid=args.grid, position_weight=args.position_weight,
                             extractor=args.features, device=device)
    res = attend_patches(image, feats, similarity=args.similarity, temperature=args.temperature, query=args.query,
                         view=args.view, device=device)
    if out is not None:
        res.save(out, cmap=args.colormap, opacity=args.opacity, show_grid=args.grid_lines)
    if res.warning:
        print(f"attnviz: {res.warning}", file=sys.stderr)
    if args.json:
        print(res.to_json())
        return 0
    print(f"{res.width} x {res.height} px, {res.grid.rows} x {res.grid.cols} patches, {res.similarity} "
          f"T={res.temperature:g} on {res.device}: {res.view_label}")
    print("strongest patches (row, col: weight): "
          + ", ".join(f"({r}, {c}): {w:.4f}" for r, c, w in res.top_patches(5)))
    if out is not None:
        print(f"overlay written to {out} ({res.width} x {res.height})")
    return 0


__all__ = ["register", "run"]
