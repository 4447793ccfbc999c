"""The ``sparsecoder`` command. It only parses arguments and calls the library.

Each area adds its own sub-commands through an ``add_commands(subparsers)`` function in the modules
listed in ``COMMAND_MODULES``; user mistakes (:class:`ValueError`, :class:`OSError` such as a missing
file, a full disk or a read-only folder, a busy run folder) become a one-line ``error: ...`` and exit
status 2 instead of a traceback. Any other exception is a last-resort one-line ``error: ...`` with exit
status 1 and the hint to rerun with ``SPARSECODER_DEBUG=1``, which shows the traceback instead.

SIGTERM (what ``kill``, ``timeout``, batch schedulers and container runtimes send) and SIGHUP (the
terminal was closed; where the platform has it) stop a command as Ctrl-C does
(:func:`stop_signal_as_interrupt`): the exception unwinds, so a half-written temp file is removed and a
training run prints what its checkpoint holds and how to resume; exit status 128 + the signal's number
(143 for SIGTERM, 129 for SIGHUP).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

COMMAND_MODULES = [
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


# The signals that stop a command cleanly (:func:`stop_signal_as_interrupt`): SIGTERM, and SIGHUP where the
# platform has one (not on Windows).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Terminated(KeyboardInterrupt):
    """A stop signal (:data:`STOP_SIGNALS`) received by a command, raised where the command was, like Ctrl-C's
    :class:`KeyboardInterrupt` (a subclass of it, so every handler of Ctrl-C handles it too)."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        super().__init__(signal.Signals(self.signum).name)


def interrupted(err: KeyboardInterrupt) -> tuple[str, int]:
    """``(what, exit status)`` of a Ctrl-C (``"interrupted"``, 130) or a stop signal (``"stopped by
    SIGTERM"``, 143; ``"stopped by SIGHUP"``, 129)."""
    if isinstance(err, Terminated):
        return f"stopped by {signal.Signals(err.signum).name}", 128 + err.signum
    return "interrupted", 130


@contextlib.contextmanager
def stop_signal_as_interrupt() -> Iterator[None]:
    """Within the block, each of :data:`STOP_SIGNALS` (SIGTERM, SIGHUP) raises :class:`Terminated` (a
    :class:`KeyboardInterrupt`) instead of ending the process on the spot: ``finally`` blocks run (atomic
    writes remove their temp file, the run folder's lock is released) and the command says what it kept. A
    signal the caller set to be ignored or handled (``nohup`` ignores SIGHUP) is left as it is; outside the
    main thread (where Python cannot set handlers) nothing changes."""
    def raise_terminated(signum, frame):
        if signum == getattr(signal, "SIGHUP", None):
            _leave_closed_terminal()
        raise Terminated(signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) is signal.SIG_DFL:
                previous[signum] = signal.signal(signum, raise_terminated)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _leave_closed_terminal(fds: tuple[int, ...] = (1, 2)) -> None:
    """Point stdout and stderr (``fds``) that are a terminal no longer there (SIGHUP: it was closed) to the
    null device: writing there fails (EIO), which turned the clean stop into an error, status 1 (the
    progress bar's last line, the message saying what the checkpoint holds). A terminal still there, a file
    or a pipe is kept."""
    import errno
    import termios

    for fd in fds:
        try:
            termios.tcgetattr(fd)  # EIO once the terminal hung up (ENOTTY for a file or a pipe)
        except termios.error as err:
            if err.args and err.args[0] == errno.EIO:
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, fd)
                os.close(null)


def guarded(command) -> int:
    """``command()``'s exit status, with the command line's handling of errors (module docstring): user
    mistakes are one ``error: ...`` line and status 2, anything else one line and status 1 (tracebacks
    with ``SPARSECODER_DEBUG=1``), Ctrl-C and SIGTERM / SIGHUP one line and 130 / 143 / 129."""
    from sparsecoder.train.integrity import RunFolderBusy

    debug = os.environ.get("SPARSECODER_DEBUG", "") not in ("", "0")
    try:
        with stop_signal_as_interrupt():
            return int(command() or 0)
    except KeyboardInterrupt as err:
        what, status = interrupted(err)
        print(what, file=sys.stderr)
        return status
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    return guarded(lambda: args.func(args))


def _one_line(err: BaseException) -> str:
    """The exception's message on one line (an OSError without its own path gets its filename)."""
    text = " ".join(str(err).split())
    filename = getattr(err, "filename", None)
    if isinstance(err, OSError) and filename is not None and str(filename) not in text:
        text = f"{filename}: {text}"
    return text or type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
