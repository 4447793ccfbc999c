"""Training speed per epoch and the fraction of one thread's matmul peak it uses (issue 15).

Trains each variant's MNIST preset for ``--epochs`` epochs with one torch thread and reports the
steady-state seconds per epoch (median of epochs 2…N from ``history.csv``, validation included), the test
PSNR / sparsity of the encoder codes, the mean FISTA iterations per sample and the useful GFLOP/s as a
fraction of the measured single-thread ``torch.mm`` peak::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_training.py --variants sdl,vdl,vdl-nl --epochs 10
    PYTHONPATH=src .venv/bin/python benchmarks/bench_training.py --device cuda

Useful FLOPs per training sample (multiply–add = 2 FLOP), ``l`` code size, ``d`` pixels, ``h`` hidden:

* linear decoder: FISTA ``k·2l²`` (one fused Gram ``addmm`` per iteration) ``+ 2dl`` (``Y·W``), decoder
  step ``6dl`` (forward, backward);
* one-hidden-layer decoder: FISTA ``k·4(lh + hd)`` (forward and input-gradient per iteration), decoder
  step ``6(lh + hd)``;
* encoder step: ``6·p`` with ``p`` the encoder's weight entries (each used once per sample) — a lower
  bound for the unrolled LISTA encoder.

The comparison with the authors' released code is run with ``../shared/ds-bench`` (see
``benchmarks/README.md``); this script times ours.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import shutil
import statistics
import time
from pathlib import Path

import torch

VARIANTS = {
    "sdl": ("sdl-mnist", 5e-3),
    "vdl": ("vdl-mnist", 2e-2),
    "vdl-nl": ("vdl-nl-mnist", 1e-2),
    "sdl-nl": ("sdl-nl-mnist", 5e-3),
    "do": ("do-mnist", 5e-3),
}


def matmul_peak_gflops(device: str, n: int = 1024, repeats: int = 20) -> float:
    """Best-of-``repeats`` float32 ``torch.mm`` GFLOP/s of an ``n×n`` product on ``device``."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        torch.mm(a, b)
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best / 1e9


def useful_flops_per_sample(model, fista_iterations: float) -> dict[str, float]:
    """Useful FLOPs per training sample by part (module docstring)."""
    decoder = model.decoder
    linears = [m for m in decoder.modules() if isinstance(m, torch.nn.Linear)]
    macs = sum(m.in_features * m.out_features for m in linears)
    if len(linears) == 1:
        l = linears[0].in_features
        fista = fista_iterations * 2 * l * l + 2 * macs
    else:
        fista = fista_iterations * 4 * macs
    encoder_weights = sum(p.numel() for name, p in model.encoder.named_parameters() if p.dim() >= 2)
    return {"fista": fista, "decoder_step": 6.0 * macs, "encoder_step": 6.0 * encoder_weights}


def run_variant(name: str, epochs: int, device: str, out: Path) -> dict:
    from sparsecoder.train import train

    preset, lam = VARIANTS[name]
    run_dir = out / name
    shutil.rmtree(run_dir, ignore_errors=True)
    start = time.perf_counter()
    metrics = train(preset, run_dir, progress=False,
                    overrides={"epochs": epochs, "lam": lam, "device": device, "num_threads": 1})
    wall = time.perf_counter() - start
    with (run_dir / "history.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    seconds = [float(r["seconds"]) for r in rows]
    steady = statistics.median(seconds[1:] if len(seconds) > 1 else seconds)
    iterations = statistics.mean(float(r["fista_iterations"]) for r in rows)
    return {"variant": name, "preset": preset, "lam": lam, "s_per_epoch": steady, "first_epoch_s": seconds[0],
            "wall_s": wall, "fista_iterations": iterations, "psnr": metrics["psnr"],
            "sparsity": metrics["sparsity"], "n_train": metrics["n_train"], "run_dir": str(run_dir)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="sdl,vdl,vdl-nl",
                        help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", default="/tmp/sparsecoder-bench-training",
                        help="run folders and results.json (outside the source tree)")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    if args.epochs < 2:
        parser.error("--epochs must be >= 2 (the first epoch is warm-up; steady state is epochs 2…N)")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible to torch; use --device cpu")
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    peak = matmul_peak_gflops(args.device)
    results = []
    for name in variants:
        result = run_variant(name, args.epochs, args.device, out)
        model = _load_trained_model(Path(result["run_dir"]))
        parts = useful_flops_per_sample(model, result["fista_iterations"])
        # useful work = training samples only; validation, logging and checkpoints count as overhead
        flops = result["n_train"] * sum(parts.values())
        result["useful_gflops"] = flops / result["s_per_epoch"] / 1e9
        result["fraction_of_peak"] = result["useful_gflops"] / peak
        result["flops_per_sample"] = parts
        results.append(result)
        print(json.dumps(result), flush=True)

    load = " ".join(f"{x:.1f}" for x in _load_average())
    lines = [
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, device {args.device}, 1 thread, {args.epochs} epochs, load average "
        f"{load}; single-thread float32 torch.mm peak {peak:.0f} GFLOP/s",
        "",
        "| variant | λ | s/epoch | FISTA iterations | test PSNR | zeros | useful GFLOP/s | of peak |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['variant']} | {r['lam']:g} | {r['s_per_epoch']:.2f} "
                     f"| {r['fista_iterations']:.1f} | {r['psnr']:.2f} | {100 * r['sparsity']:.1f} % "
                     f"| {r['useful_gflops']:.1f} "
                     f"| {100 * r['fraction_of_peak']:.0f} % |")
    table = "\n".join(lines) + "\n"
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "table.md").write_text(table)
    print(table)
    return 0


def _load_trained_model(run_dir: Path):
    from sparsecoder.train import load_run

    return load_run(run_dir)[1]


def _load_average() -> tuple[float, float, float]:
    try:
        import os

        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


if __name__ == "__main__":
    raise SystemExit(main())
