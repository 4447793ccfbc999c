"""The closed-form step for the one-hidden-layer ReLU decoder (SDL-NL, VDL-NL; issue 15).

The truth is autograd: the same decoder wrapped in a module the closed form does not recognise goes
through ``_GradientStep`` (gradient by ``torch.autograd.grad``, the hinge from a full-batch copy).
"""

import pytest
import torch
from torch import nn

from sparsecoder.inference.energy import encoder_proximity_energy, reconstruction_energy
from sparsecoder.inference.fista import _MLPStep, _relu_mlp_layers, fista
from sparsecoder.nn.decoders import MLPDecoder


class AutogradOnly(nn.Module):
    """The same function as ``inner``, in a module the closed-form path does not recognise."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, z):
        return self.inner(z)


def _decoder(l=12, hidden=40, d=30, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    decoder = MLPDecoder(l, hidden, d).to(dtype)
    with torch.no_grad():  # a bias that leaves some hidden units off and some on at the start
        decoder.hidden.bias.uniform_(-0.2, 0.3)
    return decoder


def _problem(n=40, l=12, d=30, dtype=torch.float64, seed=1):
    generator = torch.Generator().manual_seed(seed)
    Y = torch.randn(n, d, generator=generator, dtype=dtype)
    z0 = torch.rand(n, l, generator=generator, dtype=dtype) * 0.5
    return Y, z0


def test_recognises_the_mlp_decoder_and_plain_sequential_only():
    decoder = _decoder()
    assert _relu_mlp_layers(decoder) is not None
    sequential = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 5, bias=False))
    weight_in, bias_in, weight_out, bias_out = _relu_mlp_layers(sequential)
    assert weight_in is sequential[0].weight and bias_out is None
    assert _relu_mlp_layers(AutogradOnly(decoder)) is None
    assert _relu_mlp_layers(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 5))) is None

    class Rescaled(MLPDecoder):
        def forward(self, z):
            return 2.0 * super().forward(z)

    assert _relu_mlp_layers(Rescaled(4, 8, 5)) is None


@pytest.mark.parametrize("gamma", [0.0, 3.0])
def test_closed_form_gradient_step_matches_autograd(gamma):
    """``V − η∇f(V)`` of reconstruction + proximity, float64, against ``torch.autograd.grad``."""
    decoder = _decoder()
    Y, V = _problem()
    z_encoder = torch.rand_like(V)
    eta = 0.3
    step = _MLPStep(Y, _relu_mlp_layers(decoder), 0.0, eta, True, gamma=gamma, z_encoder=z_encoder, beta=0.0,
                    var_threshold=0.5)
    closed = step.gradient_step(V)
    point = V.clone().requires_grad_(True)
    energy = reconstruction_energy(Y, decoder(point)) + encoder_proximity_energy(point, z_encoder, gamma)
    (gradient,) = torch.autograd.grad(energy, point)
    active = (decoder.hidden(V) > 0).float().mean()
    assert 0.2 < active < 0.9  # both sides of the ReLU are exercised
    torch.testing.assert_close(closed, V - eta * gradient, atol=1e-13, rtol=0)


@pytest.mark.parametrize("positive", [True, False])
@pytest.mark.parametrize("beta,gamma", [(0.0, 0.0), (0.0, 2.0), (10.0, 2.0), (10.0, 0.0)])
def test_iterates_and_iteration_counts_equal_the_autograd_path(beta, gamma, positive):
    decoder = _decoder()
    Y, z0 = _problem()
    kwargs = dict(z0=z0, step=0.5, tol=1e-3, max_iter=300, beta=beta, var_threshold=0.5, gamma=gamma,
                  positive=positive)
    closed = fista(Y, decoder, 0.01, **kwargs)
    reference = fista(Y, AutogradOnly(decoder), 0.01, **kwargs)
    assert torch.equal(closed.n_iter, reference.n_iter)
    assert closed.n_iter.min() < closed.n_iter.max()  # rows froze at different times: compaction used
    torch.testing.assert_close(closed.codes, reference.codes, atol=1e-8, rtol=0)
    torch.testing.assert_close(closed.energy, reference.energy, atol=1e-9, rtol=0)  # every iterate
    assert torch.equal(closed.converged, reference.converged)


def test_sequential_decoder_with_output_bias_equals_autograd():
    torch.manual_seed(3)
    decoder = nn.Sequential(nn.Linear(12, 40), nn.ReLU(), nn.Linear(40, 30)).double()
    Y, z0 = _problem()
    kwargs = dict(z0=z0, step=0.5, tol=1e-4, max_iter=300, gamma=1.0)
    closed = fista(Y, decoder, 0.02, **kwargs)
    reference = fista(Y, AutogradOnly(decoder), 0.02, **kwargs)
    assert torch.equal(closed.n_iter, reference.n_iter)
    torch.testing.assert_close(closed.codes, reference.codes, atol=1e-8, rtol=0)


def test_compaction_equals_solving_each_row_alone():
    """Without the hinge the rows are independent: the batch (frozen rows dropped from the working set as
    they freeze) gives each row the codes and iteration count it gets alone (a batch of one, nothing to
    compact)."""
    decoder = _decoder()
    Y, z0 = _problem(n=12)
    kwargs = dict(step=0.5, tol=1e-3, max_iter=300, gamma=1.0, record_energy=False)
    batch = fista(Y, decoder, 0.01, z0=z0, **kwargs)
    assert batch.n_iter.min() < batch.n_iter.max()
    for i in range(Y.shape[0]):
        alone = fista(Y[i:i + 1], decoder, 0.01, z0=z0[i:i + 1], **kwargs)
        assert int(alone.n_iter[0]) == int(batch.n_iter[i])
        torch.testing.assert_close(alone.codes[0], batch.codes[i], atol=1e-12, rtol=0)



@pytest.mark.parametrize("decoder_kind", ["mlp", "dictionary"])
def test_momentum_follows_beck_teboulle(decoder_kind):
    """The iterates are those of Beck & Teboulle's FISTA written out by hand (gradient by autograd):
    ``y_1 = x_0, t_1 = 1``, ``x_k = shrink(y_k − η∇f(y_k), λη)``, ``t_{k+1} = (1 + √(1 + 4t_k²))/2``,
    ``y_{k+1} = x_k + ((t_k − 1)/t_{k+1})(x_k − x_{k−1})`` — the first momentum step is at ``y_3`` (the
    schedule of the authors' code), not at ``y_2``."""
    Y, x0 = _problem()
    if decoder_kind == "mlp":
        decoder = _decoder()
    else:
        decoder = torch.randn(30, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(4)) * 0.3
    lam, eta, gamma = 0.01, 0.5, 1.0

    def decode(z):
        return decoder(z) if decoder_kind == "mlp" else z @ decoder.T

    def gradient(z):
        z = z.clone().requires_grad_(True)
        energy = reconstruction_energy(Y, decode(z)) + encoder_proximity_energy(z, x0, gamma)
        return torch.autograd.grad(energy, z)[0]

    x_previous, x, y, t = x0, x0, x0, 1.0
    for k in range(1, 6):
        x_previous, x = x, torch.clamp(y - eta * gradient(y) - lam * eta, min=0.0)
        t_next = (1.0 + (1.0 + 4.0 * t * t) ** 0.5) / 2.0
        y, t = x + ((t - 1.0) / t_next) * (x - x_previous), t_next
        ours = fista(Y, decoder, lam, z0=x0, step=eta, gamma=gamma, tol=0.0, max_iter=k, record_energy=False)
        torch.testing.assert_close(ours.codes, x, atol=1e-12, rtol=0)


def test_gram_form_switch_keeps_the_gradient_step_exact():
    """A long solve switches to ``r W2 = h G − c`` once the row-passes made would have paid for ``G``
    (ski-rental rule): every step, before and after the switch, equals autograd's; a decoder whose hidden
    layer is at least twice the output (no saving) never switches."""
    decoder = _decoder()  # h = 40 < 2d = 60
    Y, V = _problem()
    step = _MLPStep(Y, _relu_mlp_layers(decoder), 0.0, 0.3, True, gamma=0.0, z_encoder=V, beta=0.0,
                    var_threshold=0.5)
    point = V.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(reconstruction_energy(Y, decoder(point)), point)
    switched_at = None
    for k in range(8):
        torch.testing.assert_close(step.gradient_step(V), V - 0.3 * gradient, atol=1e-13, rtol=0)
        if switched_at is None and step.gram is not None:
            switched_at = k
    # h²d + m·hd = 48,000 + 48,000 multiply-adds; 40 rows × h(2d − h) = 32,000 saved per pass: the
    # fourth call (index 3) comes after the 3 passes that would have paid for it
    assert switched_at == 3
    wide = _decoder(hidden=64, d=30)  # h ≥ 2d
    step = _MLPStep(Y, _relu_mlp_layers(wide), 0.0, 0.3, True, gamma=0.0, z_encoder=V, beta=0.0,
                    var_threshold=0.5)
    for _ in range(20):
        step.gradient_step(V)
    assert step.gram is None


def _restarted_fista_by_hand(y, decoder, x0, lam, eta, gamma, tol, max_iter):
    """One row of FISTA with O'Donoghue & Candès' gradient restart, written out (gradient by autograd):
    the momentum schedule of :func:`test_momentum_follows_beck_teboulle`, and ``t ← 1`` after a step whose
    ``(y_k − x_k)·(x_k − x_{k−1}) > 0``; stops once ``||x_k − x_{k−1}|| ≤ tol·||x_{k−1}||``."""
    def gradient(z):
        z = z.clone().requires_grad_(True)
        energy = reconstruction_energy(y, decoder(z)) + encoder_proximity_energy(z, x0, gamma)
        return torch.autograd.grad(energy, z)[0]

    x_previous, x, t, restarts = x0, x0, 0.0, 0
    for k in range(1, max_iter + 1):
        t_next = (1.0 + (1.0 + 4.0 * t * t) ** 0.5) / 2.0
        point = x + ((t - 1.0) / t_next) * (x - x_previous) if k > 1 else x
        new = torch.clamp(point - eta * gradient(point) - lam * eta, min=0.0)
        if float(((point - new) * (new - x)).sum()) > 0:
            t_next, restarts = 1.0, restarts + 1
        x_previous, x, t = x, new, t_next
        norm = torch.linalg.vector_norm
        if float(norm(x - x_previous)) <= tol * float(norm(x_previous)):
            return x, k, restarts
    return x, max_iter, restarts


def _planted_problem(n=40, lam=0.002):
    """Digits of the decoder itself: ``y = D(z) + noise`` with sparse non-negative ``z`` (30 % non-zero),
    started from random codes — every row converges (on random ``Y`` some rows keep switching hidden
    units on and off and never meet a tight tolerance)."""
    decoder = _decoder()
    generator = torch.Generator().manual_seed(5)
    truth = torch.rand(n, 12, generator=generator, dtype=torch.float64)
    truth = truth * (torch.rand(n, 12, generator=generator, dtype=torch.float64) < 0.3)
    with torch.no_grad():
        Y = decoder(truth) + 0.01 * torch.randn(n, 30, generator=generator, dtype=torch.float64)
    z0 = torch.rand(n, 12, generator=generator, dtype=torch.float64) * 0.5
    return decoder, Y, z0, lam


def test_restart_follows_the_hand_written_restarted_fista_row_by_row():
    """``fista(restart=True)`` with the closed-form MLP step equals restarted FISTA written out by hand
    for each row alone (no hinge: the rows are independent), codes and iteration counts, and the
    restart fires (it changes the iterates of plain FISTA)."""
    decoder, Y, z0, lam = _planted_problem(n=8)
    eta, gamma, tol = 1.0, 0.5, 1e-4
    ours = fista(Y, decoder, lam, z0=z0, step=eta, gamma=gamma, tol=tol, max_iter=1000, restart=True,
                 record_energy=False)
    plain = fista(Y, decoder, lam, z0=z0, step=eta, gamma=gamma, tol=tol, max_iter=1000, record_energy=False)
    total_restarts = 0
    for i in range(Y.shape[0]):
        codes, n_iter, restarts = _restarted_fista_by_hand(Y[i:i + 1], decoder, z0[i:i + 1], lam, eta, gamma,
                                                           tol, 1000)
        total_restarts += restarts
        assert int(ours.n_iter[i]) == n_iter
        torch.testing.assert_close(ours.codes[i:i + 1], codes, atol=1e-10, rtol=0)
    assert bool(ours.converged.all())
    assert total_restarts > 0 and not torch.equal(ours.n_iter, plain.n_iter)


@pytest.mark.parametrize("beta", [0.0, 10.0])
def test_restart_equals_the_autograd_path(beta):
    decoder = _decoder()
    Y, z0 = _problem()
    kwargs = dict(z0=z0, step=0.5, tol=1e-4, max_iter=400, beta=beta, var_threshold=0.5, gamma=1.0,
                  restart=True)
    closed = fista(Y, decoder, 0.01, **kwargs)
    reference = fista(Y, AutogradOnly(decoder), 0.01, **kwargs)
    assert torch.equal(closed.n_iter, reference.n_iter)
    torch.testing.assert_close(closed.codes, reference.codes, atol=1e-8, rtol=0)


def test_restart_reaches_plain_fistas_energy_in_fewer_passes():
    """On the planted problem, restarted FISTA stops (same tolerance) at an energy no higher than plain
    FISTA's, after fewer gradient passes, at a point as close to a fixed point of the proximal gradient
    map (gradient by autograd) as plain FISTA's."""
    decoder, Y, z0, lam = _planted_problem()
    eta = 1.0
    kwargs = dict(z0=z0, step=eta, tol=1e-4, max_iter=5000)
    plain = fista(Y, decoder, lam, **kwargs)
    restarted = fista(Y, decoder, lam, restart=True, **kwargs)
    assert bool(plain.converged.all()) and bool(restarted.converged.all())
    assert int(restarted.n_iter.sum()) < 0.6 * int(plain.n_iter.sum())
    assert float(restarted.energy[-1]) <= float(plain.energy[-1]) * (1 + 1e-6)

    def fixed_point_residual(codes):
        z = codes.clone().requires_grad_(True)
        (gradient,) = torch.autograd.grad(reconstruction_energy(Y, decoder(z)), z)
        moved = torch.clamp(codes - eta * gradient - lam * eta, min=0.0)
        return float(torch.linalg.vector_norm(moved - codes, dim=1).max())

    assert fixed_point_residual(restarted.codes) <= max(1e-3, 2 * fixed_point_residual(plain.codes))


def test_restart_must_be_a_bool():
    Y, z0 = _problem()
    with pytest.raises(ValueError, match="restart must be True or False"):
        fista(Y, _decoder(), 0.01, z0=z0, restart="yes")
