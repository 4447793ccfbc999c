"""FISTA passes per sample, ours vs the authors' ``ISTA(FISTA=True)``, on the same decoder and batches.

Loads a trained run folder (encoder + decoder), takes ``--batches`` training batches of 250 MNIST digits
in float64, starts both solvers from the encoder's codes with the run's λ, step, β, T, γ and tolerance,
and prints per batch: our mean and max iterations per sample (``n_iter``: gradient passes, the converging
one included), the authors' logged count (``inf_steps``: it leaves the converging pass out) and the
largest code difference, and the fraction of zero codes of each. Their loop computes every row of the
batch until the last row converges, so the row-passes it computes per sample are our *max*; ours compacts
frozen rows away and computes our *mean*. A row of theirs that has stopped keeps taking the momentum's
extrapolated point (its step is zeroed, not its momentum), so it drifts on, clamped at 0, until the batch
stops: their codes have a few tenths of a point more zeros than ours::

    PYTHONPATH=src .venv/bin/python benchmarks/fista_passes_vs_reference.py RUN_DIR --reference /tmp/ds-ref \\
        --shim ../shared/ds-bench/shim
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch
from _common import at_least


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a trained sparse-autoencoder run folder (MNIST)")
    parser.add_argument("--reference", type=Path, required=True,
                        help="checkout of github kevtimova/deep-sparse (its utils.py is imported, unchanged)")
    parser.add_argument("--shim", type=Path, required=True, help="ds-bench's torchvision shim folder")
    parser.add_argument("--batches", type=at_least(1), default=2)
    args = parser.parse_args(argv)
    for path in (args.run, args.reference / "utils.py", args.shim):
        if not path.exists():
            parser.error(f"{path} does not exist")
    if "def ISTA(" not in (args.reference / "utils.py").read_text(errors="replace"):
        parser.error(f"--reference {args.reference}: its utils.py has no ISTA function, not the authors' "
                     f"deep-sparse checkout; export it with ../shared/ds-bench/setup.sh")
    if not (args.shim / "torchvision").is_dir():
        parser.error(f"--shim {args.shim}: no torchvision/ there; give ../shared/ds-bench/shim")
    sys.path[:0] = [str(args.shim), str(args.reference)]
    import utils as reference  # the authors' module

    from sparsecoder.data.mnist import load_mnist
    from sparsecoder.eval.metrics import sparsity
    from sparsecoder.inference.fista import fista
    from sparsecoder.train import load_run

    torch.set_num_threads(1)
    config, model = load_run(args.run)[:2]
    model = model.double()
    beta = config.beta if config.collapse_guard == "variance" else 0.0
    x = torch.as_tensor(load_mnist(seed=config.seed).train.x[: 250 * args.batches]).double()
    for b in range(args.batches):
        Y = x[250 * b: 250 * (b + 1)]
        with torch.no_grad():
            start = model.encoder(Y)
        ours = fista(Y, model.decoder, config.lam, z0=start, step=config.fista_step, tol=config.fista_tol,
                     max_iter=config.fista_max_iter, beta=beta, var_threshold=config.var_threshold,
                     gamma=config.gamma, record_energy=False)
        theirs = reference.ISTA(copy.deepcopy(model.decoder), Y, True, True, config.lam,
                                config.fista_max_iter,
                                config.fista_step, True, start, beta, config.var_threshold, config.gamma,
                                config.fista_tol, False, False)
        print(f"batch {b}: ours mean {ours.n_iter.double().mean():.3f} max {int(ours.n_iter.max())} | "
              f"theirs count {float(theirs['inf_steps']):.3f} (+1 converging pass = "
              f"{float(theirs['inf_steps']) + 1:.3f}) | max |codes − theirs| "
              f"{float((ours.codes - theirs['Zs']).abs().max()):.2g} | zeros ours "
              f"{100 * sparsity(ours.codes):.2f} % theirs {100 * sparsity(theirs['Zs']):.2f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
