"""The ``sparsecoder`` command. It only parses arguments and calls the library.

Each area adds its own sub-commands through an ``add_commands(subparsers)`` function in the modules
listed in ``COMMAND_MODULES``; user mistakes (:class:`ValueError`, :class:`OSError` such as a missing
file, a full disk or a read-only folder, a busy run folder) become a one-line ``error: ...`` and exit
status 2 instead of a traceback. Any other exception is a last-resort one-line ``error: ...`` with exit
status 1 and the hint to rerun with ``SPARSECODER_DEBUG=1``, which shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMAND_MODULES = [
    "sparsecoder.inference.commands",
    "sparsecoder.data.commands",
    "sparsecoder.train.commands",
    "sparsecoder.sweep.commands",
    "sparsecoder.reproduce.commands",
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
    from sparsecoder.train.integrity import RunFolderBusy

    debug = os.environ.get("SPARSECODER_DEBUG", "") not in ("", "0")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, RunFolderBusy) as err:
        if debug:
            raise
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - the last guard: no traceback reaches a user
        if debug:
            raise
        print(f"error: {type(err).__name__}: {_one_line(err)} (unexpected; rerun with SPARSECODER_DEBUG=1 "
              f"for the traceback and report it)", file=sys.stderr)
        return 1


def _one_line(err: BaseException) -> str:
    """The exception's message on one line (an OSError without its own path gets its filename)."""
    text = " ".join(str(err).split())
    filename = getattr(err, "filename", None)
    if isinstance(err, OSError) and filename is not None and str(filename) not in text:
        text = f"{filename}: {text}"
    return text or type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
