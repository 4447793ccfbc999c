"""Peak resident memory of training on a float32 ``.npy`` larger than the memory it needs.

Writes a ``--size-gb`` float32 ``.npy`` (rows of ``--dim`` Gaussian values with per-column means and
scales) into a temporary folder outside the repository (``--dir``, default the system temp dir), then, in
a fresh Python process, trains the linear ``sdl-mnist`` preset on it through the ``arrays`` source for one
epoch, no ``limit`` (every row is read once), tiny ``n_components``, a large batch, per-feature
standardisation and 0.5 % validation / test splits (those two are materialised in memory by design). The
child reports its peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``) after importing the library (baseline)
and after training. The file is deleted at the end unless ``--keep``.

    PYTHONPATH=src python benchmarks/bench_mmap_rss.py --size-gb 2

Heavy: 2 GB of disk and a few minutes of one CPU core; run it once.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import at_least


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


def write_npy(path: Path, n_rows: int, dim: int, seed: int = 0) -> None:
    """A float32 (n_rows, dim) .npy written chunk by chunk with plain file writes (no mapping)."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(-5, 5, size=dim).astype(np.float32)
    scales = rng.uniform(0.5, 3, size=dim).astype(np.float32)
    with open(path, "wb") as fh:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
                  "shape": (n_rows, dim)}
        np.lib.format.write_array_header_1_0(fh, header)
        for start in range(0, n_rows, 65536):
            rows = min(65536, n_rows - start)
            block = rng.standard_normal((rows, dim), dtype=np.float32) * scales + means
            fh.write(block.tobytes())


def child(args: argparse.Namespace) -> None:
    """Train on the file and print one JSON line of measurements."""
    import torch

    from sparsecoder.train import train

    torch.set_num_threads(1)
    baseline = peak_rss_mb()
    overrides = {
        "data": "arrays", "data_dir": str(args.path), "epochs": 1, "n_components": args.n_components,
        "batch_size": args.batch_size, "fista_max_iter": 50, "num_threads": 1, "device": "cpu",
        "data_options": {"standardize": "feature", "val_fraction": 0.005, "test_fraction": 0.005},
    }
    started = time.perf_counter()
    metrics = train("sdl-mnist", args.run_dir, overrides=overrides, progress=False)
    print(json.dumps({"baseline_peak_rss_mb": baseline, "peak_rss_mb": peak_rss_mb(),
                      "seconds": time.perf_counter() - started, "n_train": metrics["n_train"],
                      "psnr": metrics["psnr"], "sparsity": metrics["sparsity"]}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-gb", type=at_least(0.0, float), default=2.0,
                        help="file size in GB (1e9 bytes)")
    parser.add_argument("--dim", type=at_least(1), default=256, help="values per row")
    parser.add_argument("--n-components", type=at_least(1), default=16)
    parser.add_argument("--batch-size", type=at_least(1), default=4096)
    parser.add_argument("--dir", type=Path, default=None, help="where to write the file (default: temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the generated file and run folder")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0

    n_rows = int(args.size_gb * 1e9 / (4 * args.dim))
    if n_rows < 1000:  # 0.5 % validation and test rows each, and a training split
        parser.error(f"--size-gb {args.size_gb} of rows of --dim {args.dim} values is {n_rows} rows; give at "
                     f"least {4 * args.dim * 1000 / 1e9:.2g} GB")
    repo = Path(__file__).resolve().parents[1]
    if args.dir is not None:
        if not args.dir.is_dir():
            parser.error(f"--dir {args.dir} is not an existing folder; give one (outside the repository)")
        if args.dir.resolve() == repo or repo in args.dir.resolve().parents:
            parser.error(f"--dir {args.dir} is inside the repository; choose a folder outside it")
    work = Path(tempfile.mkdtemp(prefix="bench_mmap_", dir=args.dir))
    try:
        path = work / "big.npy"
        started = time.perf_counter()
        write_npy(path, n_rows, args.dim)
        size_mb = path.stat().st_size / 2**20
        print(f"wrote {path}: {n_rows} × {args.dim} float32, {size_mb:.0f} MiB in "
              f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
        command = [sys.executable, str(Path(__file__).resolve()), "--child", "--path", str(path),
                   "--run-dir", str(work / "run"), "--n-components", str(args.n_components),
                   "--batch-size", str(args.batch_size)]
        result = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ))
        if result.returncode != 0:
            print(result.stderr, file=sys.stderr)
            return result.returncode
        measured = json.loads(result.stdout.strip().splitlines()[-1])
        measured.update(file_mib=size_mb, rows=n_rows, dim=args.dim, batch_size=args.batch_size)
        print(json.dumps(measured, indent=2))
        print(f"peak RSS {measured['peak_rss_mb']:.0f} MiB (after imports "
              f"{measured['baseline_peak_rss_mb']:.0f} MiB) training one epoch on a {size_mb:.0f} MiB file: "
              f"{measured['peak_rss_mb'] / size_mb:.2f} × the file size", file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
