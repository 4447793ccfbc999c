"""The ``sparsecoder`` command. It only parses arguments and calls the library.

Each area adds its own sub-commands through an ``add_commands(subparsers)`` function in the modules
listed in ``COMMAND_MODULES``; user mistakes (:class:`ValueError`, :class:`FileNotFoundError`) become a
one-line ``error: ...`` and exit status 2 instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = [
    "sparsecoder.inference.commands",
    "sparsecoder.data.commands",
    "sparsecoder.train.commands",
    "sparsecoder.sweep.commands",
]


def build_parser() -> argparse.ArgumentParser:
    from sparsecoder import __version__

    parser = argparse.ArgumentParser(
        prog="sparsecoder",
        description="Sparse coding, dictionary learning and sparse VAEs: train presets, evaluate runs, "
        "encode arrays, inspect data.",
    )
    parser.add_argument("--version", action="version", version=f"sparsecoder {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name:
                continue
            raise
        module.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, NotADirectoryError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
