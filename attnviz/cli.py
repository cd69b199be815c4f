"""The ``attnviz`` command line (also ``python -m attnviz``).

Sub-commands: ``text`` and ``image`` (registered by cli_text.py / cli_image.py), ``similarities``
(the registry, or the generated reference page with ``--markdown``) and ``devices``.
Bad input prints one line on stderr and exits 2; it never shows a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import __version__
from .errors import AttnvizError

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line, exit 2, like ours
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"attnviz: error: {message}\n")


def device_arg(value: str | None) -> str:
    """``--device`` when given, else ``ATTNVIZ_DEVICE``, else ``auto``; a device this machine lacks
    raises :class:`DeviceUnavailable` naming the variable it came from."""
    if value is not None:
        return value
    from .devices import resolve_device
    from .errors import DeviceUnavailable
    from .settings import env_device

    device = env_device()
    try:
        resolve_device(device)
    except DeviceUnavailable as err:
        raise DeviceUnavailable(f"ATTNVIZ_DEVICE={device!r}: {err}") from None
    return device


#: the --device help of every sub-command
DEVICE_HELP = "cpu, cuda, cuda:N, mps or auto (default: $ATTNVIZ_DEVICE, else auto)"


def _similarities(args) -> int:
    from .similarity import SIMILARITIES

    if args.markdown:
        from .docs import similarity_reference

        sys.stdout.write(similarity_reference())
        return 0
    rows = [
        {"name": s.name, "label": s.label, "formula": s.formula, "sentence": s.sentence, "source": s.source,
         "url": s.url, "default_temperature": s.default_temperature, "untrained": s.untrained}
        for s in SIMILARITIES.values()
    ]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        for r in rows:
            flag = "  (untrained parameters)" if r["untrained"] else ""
            print(f"{r['name']:<11} T={r['default_temperature']:<5g} {r['label']}{flag}")
    return 0


def _devices(args) -> int:
    from .devices import available_devices, best_device, device_label

    devices = available_devices()
    if args.json:
        print(json.dumps({"devices": devices, "best": best_device()}))
    else:
        for d in devices:
            print(("* " if d == best_device() else "  ") + device_label(d))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="attnviz", description="See where attention goes in text and images, under any similarity function.")
    parser.add_argument("--version", action="version", version=f"attnviz {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    from . import cli_head, cli_image, cli_text  # here, not at the top: they import DEVICE_HELP and device_arg from here

    for module in (cli_text, cli_image, cli_head):
        module.register(sub)
    p = sub.add_parser("similarities", help="list the similarity functions (formula, source, default temperature)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--markdown", action="store_true", help="print the generated reference page (docs/similarities.md)")
    p.set_defaults(func=_similarities)
    p = sub.add_parser("devices", help="list the devices this machine has")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_devices)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return int(args.func(args) or 0)
    except AttnvizError as err:
        print(f"attnviz: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("attnviz: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except MemoryError:
        print("attnviz: out of memory: try a shorter text or a smaller image", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as err:  # never a traceback for users; details with ATTNVIZ_DEBUG=1
        import os

        if os.environ.get("ATTNVIZ_DEBUG"):
            raise
        print(f"attnviz: internal error ({type(err).__name__}: {err}); run with ATTNVIZ_DEBUG=1 for details",
              file=sys.stderr)
        return EXIT_INTERNAL
