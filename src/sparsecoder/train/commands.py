"""Sub-commands ``train``, ``evaluate``, ``presets``, ``encode`` and ``decode`` of ``sparsecoder``."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from sparsecoder.util import user_path

__all__ = ["add_commands"]


def add_commands(subparsers) -> None:
    """Register the training sub-commands on the ``sparsecoder`` parser's ``subparsers``."""
    p = subparsers.add_parser(
        "train", help="train a preset into a run folder",
        description="Train a preset (see `sparsecoder presets`) into the run folder --out: config.yaml, "
                    "history.csv, model.safetensors (best validation epoch), checkpoint.pt (last epoch), "
                    "preprocessing.json, digests.json, metrics.json and PNG pictures.",
    )
    p.add_argument("preset", metavar="PRESET", help="preset name, or a preset-format YAML file "
                   "(e.g. another run's config.yaml)")
    p.add_argument("--out", required=True, type=user_path, metavar="DIR",
                   help="run folder (new or empty; an existing run's with --resume or --overwrite)")
    p.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set lam=0.01 epochs=5 limit=500 (YAML values)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in DIR from its checkpoint.pt (only epochs/device/num_threads "
                        "may change)")
    p.add_argument("--overwrite", action="store_true", help="replace the run files of an existing run in DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_train)

    p = subparsers.add_parser(
        "evaluate", help="recompute the test metrics of a saved run",
        description="Reload a run's best weights, recompute its test metrics, rewrite metrics.json and "
                    "print them.",
    )
    p.add_argument("run_dir", metavar="DIR", type=user_path,
                   help="run folder written by `sparsecoder train`")
    _device_option(p)
    p.set_defaults(func=_evaluate)

    p = subparsers.add_parser("presets", help="list the presets (name, paper, description)",
                              description="List every preset: its name, the paper it reproduces and what "
                                          "it is.")
    p.set_defaults(func=_presets)

    p = subparsers.add_parser(
        "encode", help="codes of an array of rows with a saved run's encoder",
        description="Encode the rows of INPUT.npy (one sample per row; samples of more axes, e.g. n × H × W, "
                    "are flattened per sample as the arrays source flattens them) with a saved run's "
                    "model (encoder / posterior mean; FISTA for runs without an encoder) and write the "
                    "codes (n × latents, float32) to --out. The run folder alone is enough (its training "
                    "data may be gone). --input model (default): rows in MODEL SPACE, normalised exactly "
                    "as the run's data source normalises (MNIST: (x/255 - 0.1307)/0.3081 of 28×28 images "
                    "flattened row-major). --input raw: rows in the source's own units (MNIST: pixel "
                    "values 0-255 as in the IDX files; arrays: values as in the file; cifar_patches: RGB "
                    "patches 0-255, R, G, B planes); the run's stored preprocessing is applied.",
    )
    p.add_argument("run_dir", metavar="DIR", type=user_path,
                   help="run folder written by `sparsecoder train`")
    p.add_argument("input", metavar="INPUT.npy", type=user_path,
                   help="array (n, d) of rows ((n, H, W, ...): flattened per sample)")
    p.add_argument("--input", dest="space", choices=("model", "raw"), default="model",
                   help="units of the rows: model space (default) or the data source's raw units")
    p.add_argument("--out", required=True, type=user_path, metavar="CODES.npy",
                   help="where to write the codes")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    _device_option(p)
    p.set_defaults(func=_encode)

    p = subparsers.add_parser(
        "decode", help="rows decoded from codes with a saved run's decoder",
        description="Decode the codes in CODES.npy (n × latents, e.g. from `sparsecoder encode`) with a "
                    "saved run's decoder (D z; a VAE's mean reconstruction) and write the rows to --out. "
                    "--output model (default): model-space rows (float32). --output raw: the run's stored "
                    "preprocessing inverted, rows in the data source's own units (float64; MNIST pixel "
                    "values, not clipped or rounded; cifar_patches: the grey RGB patch of that "
                    "luminance). decode(encode(x)) is the run's reconstruction of x.",
    )
    p.add_argument("run_dir", metavar="DIR", type=user_path,
                   help="run folder written by `sparsecoder train`")
    p.add_argument("input", metavar="CODES.npy", type=user_path, help="array (n, latents) of codes")
    p.add_argument("--output", dest="space", choices=("model", "raw"), default="model",
                   help="units of the rows written: model space (default) or the data source's raw units")
    p.add_argument("--out", required=True, type=user_path, metavar="ROWS.npy",
                   help="where to write the rows")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    _device_option(p)
    p.set_defaults(func=_decode)


def _device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, metavar="DEVICE",
                        help="where to run the model: cpu, cuda, cuda:N or auto (default: the run's device "
                             "setting; cpu uses a run trained on a GPU on a machine without one)")


def _print_metrics(metrics: dict) -> None:
    print(json.dumps(metrics, indent=2))


def stopped_message(what: str, preset, out: Path, restart: str | None = None) -> str:
    """What a training run into ``out`` stopped by Ctrl-C or a stop signal (``what``: "interrupted",
    "stopped by SIGTERM", …) keeps and how to go on: the ``train --resume`` command once it has a checkpoint,
    and ``restart`` (how to start over, e.g. the demo's "start the demo again with --overwrite") beside it,
    or alone before the first epoch."""
    checkpoint = out / "checkpoint.pt"
    if checkpoint.is_file():
        command = shlex.join(["sparsecoder", "train", str(preset), "--out", str(out), "--resume"])
        return (f"{what}; the last completed epoch is saved in {checkpoint}. Continue with: {command}"
                + (f", or {restart}" if restart else ""))
    if restart:
        return f"{what} before the first epoch completed; {restart}"
    again = " (train again with --overwrite)" if (out / "config.yaml").is_file() else ""
    return f"{what} before the first epoch completed; nothing to resume{again}"


def _train(args: argparse.Namespace) -> int:
    from sparsecoder.config import absolute_data_paths, parse_overrides
    from sparsecoder.train.distributed import RankFailed, process_rank
    from sparsecoder.train.trainer import TrainingDiverged, train

    if args.resume and args.overwrite:
        raise ValueError("--resume continues the run in --out and --overwrite replaces it: choose one")
    overrides = absolute_data_paths(parse_overrides(args.overrides))
    replacing = _run_identity(args.out) if args.overwrite else None
    try:
        metrics = train(args.preset, args.out, overrides=overrides, resume=args.resume,
                        overwrite=args.overwrite, progress=not args.quiet)
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    except RankFailed as err:  # another process of a torchrun run stopped it (it printed its own error)
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:  # Ctrl-C, SIGTERM or SIGHUP (cli.stop_signal_as_interrupt)
        from sparsecoder.cli import interrupted

        what, status = interrupted(err)
        if replacing is not None and _run_identity(args.out) == replacing:  # the old run's files untouched
            print(f"{what} before the new run replaced the one in {args.out}, which is unchanged; start the "
                  f"new run again with --overwrite", file=sys.stderr)
        else:
            print(stopped_message(what, args.preset, args.out), file=sys.stderr)
        return status
    if process_rank() == 0:  # under torchrun only rank 0 reports
        _print_metrics(metrics)
        print(f"run folder: {args.out}", file=sys.stderr)
    return 0


def _run_identity(out: Path) -> tuple | None:
    """What identifies the run in ``out`` (device, inode and modification time of its ``config.yaml`` and
    ``checkpoint.pt``; every write replaces a file by a new one), or None without both files: tells a run
    that ``--overwrite`` had not yet replaced when it was stopped."""
    try:
        stats = [os.stat(out / name) for name in ("config.yaml", "checkpoint.pt")]
    except OSError:
        return None
    return tuple((s.st_dev, s.st_ino, s.st_mtime_ns) for s in stats)


def _evaluate(args: argparse.Namespace) -> int:
    from sparsecoder.train.run import TEST_DATA_CHANGED, evaluate_run

    metrics = evaluate_run(args.run_dir, device=args.device)
    _print_metrics(metrics)
    if metrics.get(TEST_DATA_CHANGED):
        print(f"note: {metrics[TEST_DATA_CHANGED]}", file=sys.stderr)
    return 0


def _presets(args: argparse.Namespace) -> int:
    from sparsecoder.config import list_presets

    presets = list_presets()
    if not presets:
        print("no presets installed")
        return 0
    rows = [("NAME", "PAPER", "DESCRIPTION")] + [(p.name, p.paper, p.description) for p in presets]
    name_width = max(len(r[0]) for r in rows)
    paper_width = max(len(r[1]) for r in rows)
    for name, paper, description in rows:
        print(f"{name:<{name_width}}  {paper:<{paper_width}}  {description}".rstrip())
    return 0


def _check_paths(args: argparse.Namespace) -> None:
    """Refuse, before any work, an ``--out`` that is not a new ``.npy`` file (or an existing one with
    --overwrite) or that is the input file itself (:func:`sparsecoder.io.check_output_file`). The input file
    is read and checked by ``encode_run``/``decode_run`` (:func:`sparsecoder.data.arrays.read_rows_file`:
    header against size, dtype, memory, values; an ``.npz``, ``.mat`` or text file named as such)."""
    from sparsecoder.io import check_output_file

    out = Path(args.out)
    if out.suffix.lower() != ".npy":
        raise ValueError(f"--out must be a .npy file, got {out}")
    check_output_file(out, overwrite=args.overwrite, inputs=[args.input])


def _encode(args: argparse.Namespace) -> int:
    from sparsecoder.io import atomic_write_npy
    from sparsecoder.train.run import encode_run

    _check_paths(args)
    codes = encode_run(args.run_dir, args.input, input_space=args.space, device=args.device)
    atomic_write_npy(args.out, codes, overwrite=args.overwrite)  # a file made there meanwhile is kept
    print(f"wrote {args.out}: codes of shape {codes.shape[0]} × {codes.shape[1]}", file=sys.stderr)
    return 0


def _decode(args: argparse.Namespace) -> int:
    from sparsecoder.io import atomic_write_npy
    from sparsecoder.train.run import decode_run

    _check_paths(args)
    rows = decode_run(args.run_dir, args.input, output_space=args.space, device=args.device)
    atomic_write_npy(args.out, rows, overwrite=args.overwrite)  # a file made there meanwhile is kept
    print(f"wrote {args.out}: {args.space}-space rows of shape {rows.shape[0]} × {rows.shape[1]}",
          file=sys.stderr)
    return 0
