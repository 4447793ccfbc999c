"""The demo with a VAE preset (found by the viz bug hunt)."""

from __future__ import annotations

import json


def test_demo_of_a_vae_preset_prints_its_metrics_and_every_picture(tmp_path, capsys):
    """`--preset vae-gauss-mnist2d` printed "Test metrics (encoder codes = amortised inference):" over
    nothing (only the sparse autoencoders' keys were looked up) and left samples.png, latent_scatter.png and
    latent_grid.png out of the list of pictures."""
    from sparsecoder import demo

    out = tmp_path / "d"
    assert demo.main(["--out", str(out), "--epochs", "1", "--preset", "vae-gauss-mnist2d"]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert "encoder codes" not in printed  # that note is about the sparse autoencoders' LISTA codes
    assert f"{metrics['elbo']:.2f}" in printed and f"{metrics['mse']:.4f}" in printed
    assert f"{metrics['active_units']} of {metrics['n_latents']}" in printed
    for name in ("atoms.png", "samples.png", "reconstructions.png", "latent_scatter.png", "latent_grid.png",
                 "history.png"):
        assert (out / name).is_file() and str((out / name).resolve()) in printed, name
