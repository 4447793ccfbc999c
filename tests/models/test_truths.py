"""Models checked against independent truths (hand formulas, torch.distributions, autograd, numpy)."""

from __future__ import annotations

import torch

from sparsecoder.models.vae import VAE, VAEConfig


def test_linear_vae_atoms_are_a_detached_copy_of_the_decoder_columns():
    """``atoms()`` of a linear-decoder VAE returned the decoder's weight Parameter itself (requires_grad):
    ``.numpy()`` raised, and editing the "atoms" under no_grad rewrote the model's weights. It is a copy, as
    the sparse autoencoder's ``atoms()`` and the Pyle decoder's."""
    model = VAE(VAEConfig(n_latents=5, encoder_hidden=8), 4)
    weight = model.decoder.weight.detach().clone()
    atoms = model.atoms()
    assert not atoms.requires_grad
    assert torch.equal(atoms, weight) and atoms.shape == (4, 5)
    assert atoms.cpu().numpy().shape == (4, 5)
    with torch.no_grad():
        atoms.mul_(2.0)
    assert torch.equal(model.decoder.weight.detach(), weight)
    torch.testing.assert_close(model.decoder_column_norms(), weight.norm(dim=0))


def test_analytic_kl_agrees_with_a_monte_carlo_of_torch_distributions():
    """Gauss‖Laplace (folded-normal form) and Cauchy‖Cauchy (closed form) against 200,000 samples of
    torch.distributions' densities, within 5 standard errors (float64)."""
    import math

    from sparsecoder.models.distributions import Posterior, kl_analytic

    D = torch.distributions
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(0)
    try:
        mu = torch.tensor([0.0, 0.3, -1.2, 2.0, 0.05], dtype=torch.float64)
        log_s = torch.tensor([0.0, -1.0, 0.5, -2.0, -3.0], dtype=torch.float64)
        scale = log_s.exp()
        for family, prior, b in (("gaussian", "laplace", 0.1), ("gaussian", "laplace", 1.0),
                                 ("cauchy", "cauchy", 0.3)):
            q = D.Normal(mu, scale) if family == "gaussian" else D.Cauchy(mu, scale)
            p = (D.Laplace(torch.zeros_like(mu), torch.full_like(mu, b)) if prior == "laplace"
                 else D.Cauchy(torch.zeros_like(mu), torch.full_like(mu, b)))
            z = q.sample((200_000,))
            values = q.log_prob(z) - p.log_prob(z)
            error = values.std(dim=0) / math.sqrt(z.shape[0])
            analytic = kl_analytic(Posterior(family, mu, log_s), prior, b)
            gap = (analytic - values.mean(dim=0)).abs()
            assert bool((gap <= 5 * error + 1e-12).all()), (family, prior, b)
    finally:
        torch.random.set_rng_state(generator_state)


def test_sparse_autoencoder_energy_lista_and_atoms_against_numpy():
    """VDL-NL: the logged energy of SPEC §2.1 at the FISTA codes, the LISTA forward of §2.3 and the atoms
    D(e_i) − D(0) of §2.4, each recomputed with numpy in float64."""
    import numpy as np

    from sparsecoder.models.sparse_autoencoder import SparseAutoencoder, SparseAutoencoderConfig

    config = SparseAutoencoderConfig(n_components=6, hidden_size=10, decoder="mlp", collapse_guard="variance",
                                     lam=0.01, gamma=5.0, beta=10.0, fista_step=0.05)
    model = SparseAutoencoder(config, 8)
    with torch.no_grad():
        model.encoder.input_layer.bias.normal_(generator=torch.Generator().manual_seed(1))
        model.decoder.hidden.bias.normal_(generator=torch.Generator().manual_seed(2))
    Y = torch.randn(9, 8, generator=torch.Generator().manual_seed(3))
    y = Y.double().numpy()
    def array(p):
        return p.detach().double().numpy()

    U, b, S = (array(p) for p in (model.encoder.input_layer.weight, model.encoder.input_layer.bias,
                                  model.encoder.lateral.weight))
    u = y @ U.T + b
    z_encoder = np.maximum(u, 0)
    for _ in range(3):
        z_encoder = np.maximum(u + z_encoder @ S.T, 0)
    np.testing.assert_allclose(model.encoder(Y).detach().double().numpy(), z_encoder, atol=1e-5)

    W1, b1, W2 = (array(p) for p in (model.decoder.hidden.weight, model.decoder.hidden.bias,
                                     model.decoder.output.weight))

    def decode(Z):
        return np.maximum(Z @ W1.T + b1, 0) @ W2.T

    atoms = (decode(np.eye(6)) - decode(np.zeros((1, 6)))).T
    np.testing.assert_allclose(model.atoms().double().numpy(), atoms, atol=1e-6)

    logs = model.training_losses(Y).logs
    Z = model.infer(Y).codes.double().numpy()
    reconstruction = np.mean(np.mean((y - decode(Z)) ** 2, axis=1))
    l1 = 0.01 * np.abs(Z).sum(axis=1).mean()
    hinge = 10.0 * np.sum(np.maximum(0.5 - Z.std(axis=0, ddof=1), 0) ** 2) / 9
    proximity = 5.0 * np.mean(np.mean((Z - z_encoder) ** 2, axis=1))
    for key, value in (("reconstruction", reconstruction), ("l1", l1), ("hinge", hinge)):
        np.testing.assert_allclose(logs[key], value, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(logs["energy"], reconstruction + l1 + hinge + proximity, rtol=1e-5)
