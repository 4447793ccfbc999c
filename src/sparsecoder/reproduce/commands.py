"""Sub-command ``reproduce`` of the ``sparsecoder`` command."""

from __future__ import annotations

import argparse
import sys

from sparsecoder.util import user_path  # a leading ~ expanded, an empty path refused

__all__ = ["add_commands"]


def add_commands(subparsers) -> None:
    """Register ``sparsecoder reproduce`` on the ``sparsecoder`` parser's ``subparsers``."""
    p = subparsers.add_parser(
        "reproduce", help="run one of the papers' experiments (tables, figures) as one resumable command",
        description="Run experiment NAME into DIR: DIR/results.md (our numbers beside the paper's), "
                    "DIR/results.csv (one row per measured cell, mean and std over seeds), PNG figures (but "
                    "jiang-table1, a table) and "
                    "the trial run folders under DIR/trials. Rerunning the same command skips finished "
                    "trials. `sparsecoder reproduce --list` shows the experiments.",
    )
    p.add_argument("name", nargs="?", metavar="NAME", help="experiment (see --list)")
    p.add_argument("--list", action="store_true", help="list the experiments with estimated times")
    p.add_argument("--out", type=user_path, metavar="DIR",
                   help="experiment folder (new, or its own to resume)")
    p.add_argument("--quick", action="store_true", help="tiny profile of the same protocol (minutes)")
    p.add_argument("--data-dir", default=None, metavar="PATH",
                   help="user-supplied full data (MNIST IDX folder, image folder, ...); default: embedded "
                        "data")
    p.add_argument("--address", default=None, metavar="auto|HOST:PORT|ray://HOST:PORT",
                   help="run the trials on an existing Ray cluster; default a local Ray on this machine")
    p.add_argument("--serial", action="store_true",
                   help="train the trials one after the other in this process, without Ray")
    p.add_argument("--max-concurrent", type=int, default=None, metavar="N",
                   help="at most N trials at a time (default: one per CPU core)")
    p.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="change a setting of the experiment's profile (e.g. epochs=50 seeds=[0,1])")
    p.add_argument("--retry-failed", action="store_true",
                   help="train the trials recorded as failed or diverged again (a rerun skips them; it "
                        "resumes a trial lost to a dead Ray worker without this)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_reproduce)


def _reproduce(args: argparse.Namespace) -> int:
    from sparsecoder.reproduce import list_experiments, reproduce

    if args.list:
        rows = list_experiments()
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            print(f"{r['name']:<{width}}  {r['paper']}, {r['figure']}  [quick {r['quick']}, full {r['full']} "
                  f"on 2 CPU cores]\n{'':<{width}}  {r['measures']}")
        return 0
    if not args.name or args.out is None:
        raise ValueError("give an experiment NAME and --out DIR (or --list to see the experiments)")
    if args.serial and args.address:
        raise ValueError("--serial runs the trials in this process; leave out --address")
    try:
        result = reproduce(args.name, args.out, quick=args.quick, data_dir=args.data_dir,
                           address=args.address, overrides=args.overrides,
                           executor="serial" if args.serial else "ray", max_concurrent=args.max_concurrent,
                           progress=not args.quiet, retry_failed=args.retry_failed)
    except KeyboardInterrupt as err:  # Ctrl-C, SIGTERM or SIGHUP (cli.stop_signal_as_interrupt)
        from sparsecoder.cli import interrupted

        what, status = interrupted(err)
        print(f"{what}; rerun the same command to resume {args.out}", file=sys.stderr)
        return status
    for path in result["files"]:
        print(path)
    for line in result["unfinished"]:  # as `sweep`: the results lack these trials, exit status 1
        print(line, file=sys.stderr)
    retry = len(result["unfinished"]) - len(result["foreign"]) - len(result["damaged"]) - len(result["lost"])
    if result["lost"]:
        print(f"{len(result['lost'])} trial(s) were lost (their Ray worker died or was stopped); the results "
              f"leave them out. Rerun the same command to resume them", file=sys.stderr)
    if retry:
        print(f"{retry} trial(s) failed or diverged; the results leave them out. Rerun with --retry-failed "
              f"to train them again", file=sys.stderr)
    if result["foreign"]:  # --retry-failed leaves a finished run as it is: as `sweep` says on their rows
        from sparsecoder.sweep.executor import FOREIGN_FIX

        print(f"{len(result['foreign'])} trial folder(s) hold a finished run that is not the trial's; the "
              f"results leave them out, and --retry-failed leaves them as they are: {FOREIGN_FIX}",
              file=sys.stderr)
    if result["damaged"]:  # the trial's own run, its metrics.json unreadable: the trial's line names the file
        print(f"{len(result['damaged'])} trial folder(s) hold a finished run whose metrics.json is damaged "
              f"(unreadable); the results leave them out, and --retry-failed leaves them as they are: move "
              f"that metrics.json out of the folder and rerun (the trial resumes and is measured again)",
              file=sys.stderr)
    return 1 if result["unfinished"] else 0
