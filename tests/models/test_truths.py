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
