"""Checks shared by the benchmark scripts: bad arguments are refused before any work, in one line naming
the problem and the fix (``parser.error``), and nothing a user made is replaced.

* :func:`at_least` — an ``argparse`` type for counts and sizes (``type=at_least(1)``).
* :func:`output_folder` — a script's ``--out`` folder must be new, empty, or one this same script wrote
  before (it leaves a marker file there), since the script replaces the run folders it names inside it.
* :func:`output_file` — a user-named output file (table, plot): not a folder, its folder writable, an
  existing file only with ``--overwrite``; written later with :func:`write_text` (atomic).
* :func:`optional_module` — a competitor that may be missing (SPAMS): the module, or ``None`` with a note
  naming the pip command.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from sparsecoder.io import atomic_write_text, check_output_file

BENCH_EXTRA = {"spams": "spams-bin==2.6.14", "tensorboardX": "tensorboardX==2.6.5"}


def at_least(low, kind=int):
    """``argparse`` type: a ``kind`` (int or float) number ``>= low``."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if not value >= low:  # also refuses nan
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {text}")
        return value

    parse.__name__ = f"{kind.__name__} >= {low}"
    return parse


def marker(script: str) -> str:
    return f".written-by-{Path(script).stem}"


def output_folder(parser: argparse.ArgumentParser, path, script: str, option: str = "--out") -> Path:
    """Refuse (``parser.error``) an ``option`` folder the script could not use without replacing files a user
    made: a file, or a non-empty folder without this script's marker. Creates the folder and the marker."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        parser.error(f"{option} {path} is a file, not a folder; choose a new folder")
    mark = path / marker(script)
    if path.is_dir() and any(path.iterdir()) and not mark.is_file():
        parser.error(f"{option} {path} is not empty and was not written by {Path(script).name}; its files "
                     f"would be replaced. Choose a new or empty folder")
    try:
        check_output_file(mark, overwrite=True, option=option)
        path.mkdir(parents=True, exist_ok=True)
        mark.touch()
    except (OSError, ValueError) as err:
        parser.error(str(err))
    return path


def output_file(parser: argparse.ArgumentParser, path, option: str, overwrite: bool = False) -> Path | None:
    """``sparsecoder.io.check_output_file`` with its refusal as ``parser.error``; ``None`` passes through."""
    if path is None:
        return None
    try:
        return check_output_file(path, overwrite=overwrite, option=option)
    except (OSError, ValueError) as err:
        parser.error(str(err))


def write_text(path, text: str) -> None:
    """Atomic: an interrupted run leaves the previous file or the new one, never half a table."""
    atomic_write_text(Path(path), text)


def optional_module(name: str, what: str):
    """The module ``name``, or ``None`` after a note on stderr: ``what`` is skipped, and how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        print(f"note: {name} is not installed; {what} skipped (`make bench`, or "
              f"`pip install {BENCH_EXTRA.get(name, name)}`)", file=sys.stderr, flush=True)
        return None


def require_module(parser: argparse.ArgumentParser, name: str, what: str):
    """The module ``name``, or ``parser.error`` naming ``what`` needs it and the install command."""
    try:
        return importlib.import_module(name)
    except ImportError:
        parser.error(f"{what} needs {name}, which is not installed: `make bench`, or "
                     f"`pip install {BENCH_EXTRA.get(name, name)}`")
