"""SVAE vs SVAE-heuristics vs SVAE-Norm on whitened natural-image patches, and Pyle's 2-D MNIST VAEs.

Trains the presets ``svae-patches``, ``svae-heuristics-patches``, ``svae-norm-patches`` (450 latents,
Laplace(0, 0.1) prior, 16x16 whitened patches of the photographs shipped with scikit-image/scikit-learn)
and ``vae-{gauss,laplace,cauchy}-mnist2d`` through the shared trainer, then prints a markdown table of
active units and test MSE next to Jiang & de la Iglesia's Table 1 (154 / - / 374 of 450 active;
MSE 0.00875 / - / 0.00769). Run folders (atoms.png, latent_scatter.png, ...) go under ``--out``.

    python benchmarks/vae_patches.py --out runs/vae_bench --epochs 30
"""

from __future__ import annotations

import argparse
import json

from _common import at_least, output_folder, write_text

from sparsecoder.train import train

PAPER = {"svae-patches": ("154", "0.00875"), "svae-heuristics-patches": ("—", "—"),
         "svae-norm-patches": ("374", "0.00769")}


def table_row(name: str, m: dict) -> str:
    """One preset's markdown row. ``evaluate`` leaves out the keys it has no value for (no ``mse_std`` for one
    posterior sample, no ``decoder_norm_active`` when no latent is active): shown as "—"."""

    def value(key, spec):
        return format(m[key], spec) if key in m else "—"

    paper = PAPER.get(name, ("", ""))
    return (f"| {name} | {m['active_units']} / {m['n_latents']} | {m['active_units_max']} | "
            f"{value('mse', '.5f')} ± {value('mse_std', '.5f')} | "
            f"{value('decoder_norm_active', '.3f')} / {value('decoder_norm_inactive', '.3f')} | "
            f"{value('elbo', '.1f')} | {paper[0]} | {paper[1]} | {m['seconds']:.0f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/vae_bench",
                        help="a new or empty folder, or one this script wrote (its run folders are replaced)")
    parser.add_argument("--epochs", type=at_least(1), default=30)
    parser.add_argument("--threads", type=at_least(1), default=1)
    parser.add_argument("--skip-mnist2d", action="store_true")
    args = parser.parse_args(argv)
    out = output_folder(parser, args.out, __file__)
    common = {"epochs": args.epochs, "num_threads": args.threads, "device": "cpu"}
    rows = []
    names = list(PAPER)
    if not args.skip_mnist2d:
        names += [f"vae-{p}-mnist2d" for p in ("gauss", "laplace", "cauchy")]
    for name in names:
        metrics = train(name, out / name, overrides=common, overwrite=True, progress=False)
        rows.append((name, metrics))
        print(f"{name}: done in {metrics['seconds']:.0f} s", flush=True)
    print(f"\n{args.epochs} epochs, {args.threads} thread(s); run folders under {out}\n")
    print("| preset | active units (std > 0.5) | active (max criterion) | test MSE ± std (50 samples) "
          "| decoder norm active / inactive | ELBO | paper active | paper MSE | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, m in rows:
        print(table_row(name, m))
    write_text(out / "summary.json", json.dumps({n: {k: v for k, v in m.items() if not isinstance(v, list)}
                                                  for n, m in rows}, indent=2))


if __name__ == "__main__":
    main()
