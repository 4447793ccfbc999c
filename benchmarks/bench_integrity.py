"""Cost of the run-folder digests (issue 11, item 3): writing a file with its SHA-256 recorded
(``write_digested``: digests.json twice + the file) against a plain atomic write, and verifying it.

Best of 5 on one random 64 MiB file (a large checkpoint) in a temporary folder; one run, so the ratio is
comparable even on a busy machine.

    PYTHONPATH=src python benchmarks/bench_integrity.py
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from sparsecoder.io import atomic_write_bytes
from sparsecoder.train.integrity import verify_digest, write_digested

MIB = 64


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)  # --help; no options
    data = os.urandom(MIB << 20)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "checkpoint.pt"
        cases = {"atomic_write_bytes": lambda: atomic_write_bytes(path, data),
                 "write_digested": lambda: write_digested(path, data),
                 "verify_digest": lambda: verify_digest(path)}
        best = {}
        for name, run in cases.items():
            times = []
            for _ in range(5):
                started = time.perf_counter()
                run()
                times.append(time.perf_counter() - started)
            best[name] = min(times)
    for name, seconds in best.items():
        print(f"{name:20s} {seconds * 1e3:8.1f} ms  ({MIB / seconds:.0f} MiB/s)")
    print(f"write_digested / atomic_write_bytes = {best['write_digested'] / best['atomic_write_bytes']:.2f}")


if __name__ == "__main__":
    main()
