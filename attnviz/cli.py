"""The ``attnviz`` command line (also ``python -m attnviz``).

Sub-commands: ``text``, ``image``, ``head`` and ``heads`` (registered by cli_text.py / cli_image.py /
cli_head.py / cli_heads.py),
``similarities`` (the registry, or the generated reference page with ``--markdown``), ``devices`` and
``samples`` (the shipped photos and texts). Only the module of the command being run is imported, and
heavy libraries (torch, transformers, Pillow) only inside its run function: ``attnviz --help`` stays fast.
Bad input prints one line on stderr and exits 2; it never shows a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

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


#: sub-commands defined in their own modules -> (module, the help line `attnviz --help` shows). Only the module of
#: the command being run is imported (its parser is built by the module's register()); --help needs none of
#: them, so it never imports torch. tests/test_cold_start.py checks each line equals the module's own help.
COMMANDS = {
    "text": ("cli_text", "attention over a text: tokens, weights, scores (JSON with --json)"),
    "image": ("cli_image", "parallel attention over an image's patches: JSON scores and an overlay PNG"),
    "head": ("cli_head", "inside one trained head: q, k, v, scores, weights, output (JSON with --json)"),
    "heads": ("cli_heads", "the model's own attention (a head, every head, rollout) as a PNG or HTML file"),
}


def _samples(args) -> int:
    found = sample_files()
    if args.name is None:
        for name, path in found.items():
            print(f"{name:<18} {path}")
        return 0
    key = args.name[:-len(Path(args.name).suffix)] if Path(args.name).suffix else args.name
    if key not in found:
        from .errors import InvalidParameter

        raise InvalidParameter(f"Unknown sample {args.name!r}: choose one of {', '.join(found)}.")
    print(found[key])
    return 0


def sample_files() -> dict[str, Path]:
    """The photos and texts shipped in ``attnviz/assets``, by file stem (``china`` -> .../china.jpg)."""
    from importlib.resources import files

    folder = Path(str(files("attnviz.assets")))
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in SAMPLE_SUFFIXES}


#: the files `attnviz samples` lists (the licences and the package's own files are not samples)
SAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png", ".txt")


def _command_of(argv: list[str]) -> str | None:
    """The sub-command argv names (the first word that is not an option: top-level options take no value)."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(commands=None) -> argparse.ArgumentParser:
    """The full parser, or with ``commands`` (names) only those sub-commands' own parsers: the others get a
    placeholder with their help line, so ``attnviz --help`` imports no sub-command module."""
    import importlib

    parser = _Parser(prog="attnviz", description="See where attention goes in text and images, under any similarity function.")
    parser.add_argument("--version", action="version", version=f"attnviz {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module, help_line) in COMMANDS.items():
        if commands is None or name in commands:  # imported here: they import DEVICE_HELP and device_arg from here
            importlib.import_module(f".{module}", __package__).register(sub)
        else:
            sub.add_parser(name, help=help_line)
    p = sub.add_parser("similarities", help="list the similarity functions (formula, source, default temperature)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--markdown", action="store_true", help="print the generated reference page (docs/similarities.md)")
    p.set_defaults(func=_similarities)
    p = sub.add_parser("devices", help="list the devices this machine has")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_devices)
    p = sub.add_parser("samples", help="the sample photos and texts that ship with attnviz: names and paths",
                       description="Without NAME: every sample's name and path. With NAME: that file's path, e.g. "
                                   "attnviz image \"$(attnviz samples china)\" --json")
    p.add_argument("name", nargs="?", default=None, metavar="NAME", help="a sample's name (china, text_en_bank, ...)")
    p.set_defaults(func=_samples)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser([_command_of(argv)])
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
