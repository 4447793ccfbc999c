"""Sub-commands ``data list``, ``data show`` and ``data download`` of the ``sparsecoder`` command."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

__all__ = ["add_commands"]


# Keywords of `sparsecoder.data.load` that `data show` passes itself, and the flag that sets each: as `--set`
# options they would reach load() twice (`limit`, its other keyword, is taken from --set).
SHOW_OWN_KEYWORDS = {"name": "the NAME argument", "seed": "--seed", "data_dir": "--data-dir"}

# the most image pixels across that `data show` lays plain vectors side by side in
VECTORS_WIDTH = 2000


def add_commands(subparsers) -> None:
    """Register ``sparsecoder data ...`` on the ``sparsecoder`` parser's ``subparsers``."""
    data = subparsers.add_parser("data", help="list, inspect and download data sources",
                                 description="Data sources of the registry (sparsecoder.data.load).")
    sub = data.add_subparsers(dest="data_command", metavar="ACTION")
    data.set_defaults(func=lambda args: (data.print_help(), 1)[1])

    p = sub.add_parser("list", help="print the registered data sources and their options",
                       description="Print every registered data source: whether it works offline from "
                                   "embedded files or needs a file, what it is, and its options with their "
                                   "defaults (set them with --set in `data show`, data_options in a config).")
    p.set_defaults(func=_list)

    p = sub.add_parser(
        "show", help="write a grid of samples of a source to a PNG",
        description="Load a source (seeded) and write a grid of samples of one split, in pixel space "
                    "(Split.to_pixels), to --out; prints the source's description.",
    )
    p.add_argument("name", metavar="NAME", help="source name (see `sparsecoder data list`)")
    p.add_argument("--out", required=True, type=Path, metavar="PNG", help="path of the grid image to write")
    p.add_argument("--data-dir", default=None, help="user-supplied data (folder or file) for the source")
    p.add_argument("--set", dest="options", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="source option, e.g. --set patch_size=16 n_train=1000 (YAML values); also limit=N "
                        "(training rows); the seed and data folder are --seed and --data-dir")
    p.add_argument("--seed", type=int, default=0, help="seed of the source's split and sampling (default 0)")
    p.add_argument("--split", choices=("train", "val", "test"), default="train",
                   help="split to draw the samples from (default train)")
    p.add_argument("-n", "--count", type=int, default=64, help="number of samples in the grid (default 64)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=_show)

    p = sub.add_parser(
        "download", help="download a full data set (MNIST) with MD5 verification",
        description="Download the four MNIST IDX .gz files from the standard mirrors into --dir, verifying "
                    "each file's MD5; then use it with data_dir=DIR.",
    )
    p.add_argument("dataset", choices=("mnist",), help="data set to download (only mnist)")
    p.add_argument("--dir", required=True, type=Path, metavar="DIR", help="folder to write the files into")
    p.add_argument("--mirror", action="append", default=None, metavar="URL",
                   help="base URL to try (repeatable); default: the standard mirrors")
    p.set_defaults(func=_download)


def _list(args: argparse.Namespace) -> int:
    from sparsecoder.data import list_sources, source_options

    for name, description, embedded in list_sources():
        where = "embedded default" if embedded else "needs a file"
        print(f"{name:18s} [{where}] {description}")
        options = ", ".join(f"{k}={v!r}" for k, v in source_options(name).items())
        print(f"{'':18s} options: {options or 'none'}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from sparsecoder.config import parse_overrides
    from sparsecoder.data import load
    from sparsecoder.io import check_output_file
    from sparsecoder.viz import image_grid

    if args.count < 1:
        raise ValueError(f"--count must be >= 1, got {args.count}")
    if not 0 <= args.seed < 2**63:
        raise ValueError(f"--seed must be in [0, 2**63 - 1], got {args.seed}")
    if args.out.suffix.lower() != ".png":
        raise ValueError(f"--out {args.out} must end in .png")
    check_output_file(args.out, overwrite=args.overwrite)  # before the data load
    options = parse_overrides(args.options)
    taken = [key for key in options if key in SHOW_OWN_KEYWORDS]
    if taken:
        raise ValueError("; ".join(f"--set {key}=... is not a source option: use {SHOW_OWN_KEYWORDS[key]}"
                                   for key in taken))
    data = load(args.name, seed=args.seed, data_dir=args.data_dir, **options)
    split = getattr(data, args.split)
    count = min(args.count, len(split))
    pixels = split.to_pixels(split.x[:count], slice(0, count))
    shape, ncols = data.image_shape, None
    if shape is None:
        # plain vectors: draw each as one row of pixels; long ones fewer to a row (64 vectors of 5,000
        # values in 8 columns were 40,009 pixels wide, a grid image_grid refuses)
        shape = (1, data.dim)
        ncols = max(1, min(math.ceil(math.sqrt(count)), VECTORS_WIDTH // (data.dim + 1)))
    image_grid(pixels, shape, args.out, ncols=ncols, normalize="each",
               title=f"{args.name} ({args.split}, first {count})")
    print(data.describe())
    print(f"wrote {args.out}")
    return 0


def _download(args: argparse.Namespace) -> int:
    from sparsecoder.data.download import download_mnist

    paths = download_mnist(args.dir, args.mirror, quiet=False)
    print(f"{len(paths)} files in {args.dir}; use them with data_dir={args.dir}")
    return 0
