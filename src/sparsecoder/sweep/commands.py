"""Sub-command ``sweep`` of the ``sparsecoder`` command."""

from __future__ import annotations

import argparse
import sys

from sparsecoder.util import user_path  # a leading ~ expanded, an empty path refused

__all__ = ["add_commands"]


def add_commands(subparsers) -> None:
    """Register ``sparsecoder sweep`` on the ``sparsecoder`` parser's ``subparsers``."""
    p = subparsers.add_parser(
        "sweep", help="train presets × grid × seeds as Ray tasks (resumable), with results tables and plots",
        description="Train every PRESET × grid point × seed as a Ray task, each into the run folder "
                    "DIR/<preset>/<key=value,...>/seed=<s>, then write DIR/results.csv, DIR/results.md "
                    "(mean ± std over seeds) and DIR/psnr_sparsity.png (sparse coding) or "
                    "DIR/vae_metrics.png (VAEs). Rerunning the same command skips finished trials and "
                    "resumes interrupted ones.",
    )
    p.add_argument("presets", nargs="+", metavar="PRESET", help="preset names (see `sparsecoder presets`)")
    p.add_argument("--out", required=True, type=user_path, metavar="DIR",
                   help="sweep directory (new, or this sweep's own to resume it; shared storage when trials "
                        "run on several machines)")
    p.add_argument("--grid", action="extend", nargs="+", default=[], metavar="KEY=V1,V2,...",
                   help="values of one config key to sweep (repeat for a product grid); lam=grid takes "
                        "each preset's lam_grid")
    p.add_argument("--seeds", default="0", metavar="0,1,2|0-4", help="seeds of every grid point (default 0)")
    p.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="config value for every trial, e.g. --set epochs=5 limit=500")
    p.add_argument("--address", default=None, metavar="auto|HOST:PORT|ray://HOST:PORT",
                   help="join an existing Ray cluster (started with `ray start --head`); default: start a "
                        "local Ray on this machine's cores inside the command")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, metavar="N",
                   help="Ray CPUs per trial = torch threads per trial (default 1)")
    p.add_argument("--gpus-per-trial", type=float, default=0.0, metavar="N",
                   help="Ray GPUs per trial (default 0: trials run on CPU)")
    p.add_argument("--max-concurrent", type=int, default=None, metavar="N",
                   help="at most N trials at a time (1: one after the other); default: as many as the "
                        "CPUs/GPUs allow")
    p.add_argument("--serial", action="store_true",
                   help="train the trials one after the other in this process, without Ray (same run "
                        "folders: a sweep can be resumed either way)")
    p.add_argument("--retry-failed", action="store_true",
                   help="run the trials recorded as failed or diverged again (a trial lost to a dead "
                        "Ray worker is resumed without it)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_sweep)


def _sweep(args: argparse.Namespace) -> int:
    from sparsecoder.sweep.executor import RECORDED
    from sparsecoder.sweep.run import sweep

    try:
        result = sweep(args.presets, args.out, grid=args.grid, seeds=args.seeds, overrides=args.overrides,
                       address=args.address, cpus_per_trial=args.cpus_per_trial,
                       gpus_per_trial=args.gpus_per_trial, max_concurrent=args.max_concurrent,
                       retry_failed=args.retry_failed, progress=not args.quiet,
                       executor="serial" if args.serial else "ray")
    except KeyboardInterrupt as err:  # Ctrl-C, SIGTERM or SIGHUP (cli.stop_signal_as_interrupt)
        from sparsecoder.cli import interrupted

        what, status = interrupted(err)
        print(f"{what}; running trials were cancelled and keep their last completed epoch. Rerun the "
              f"same command to resume the sweep in {args.out}", file=sys.stderr)
        return status
    counts = result["counts"]
    lost = (f", {counts['lost']} lost (their Ray worker died or was stopped: rerun the same command to "
            f"resume them)") if counts["lost"] else ""
    print(f"sweep {args.out}: {counts['done']} trained, {counts['skipped']} skipped (finished before, or "
          f"failed: --retry-failed), {counts['failed']} failed, {counts['diverged']} diverged{lost}",
          file=sys.stderr)
    for path in result["files"]:
        print(path)
    bad = [r for r in result["rows"] if r["status"] in RECORDED]
    for row in bad:
        print(f"{row['run_folder']}: {row['status']}: {row['message']}", file=sys.stderr)
    return 1 if bad else 0
