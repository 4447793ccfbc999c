"""The config dataclasses of the model families (``model: sparse_autoencoder`` and ``model: vae`` in a
preset) and the bounds they check, apart from the models' torch code: listing and validating presets
(``sparsecoder presets``, :func:`sparsecoder.config.config_classes`) imports this module only, not torch.
The model modules re-export each class under its old name (``sparsecoder.models.vae.VAEConfig``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

from sparsecoder.config import MAX_LOSS_WEIGHT, CommonConfig, UsedWhen, check, register_config

__all__ = ["SparseAutoencoderConfig", "VAEConfig", "POSTERIORS", "PRIORS", "ANALYTIC_PAIRS"]

# The VAE's latent distributions (sparsecoder.models.distributions), and the (posterior, prior) pairs whose
# KL divergence it computes in closed form (kl="analytic").
POSTERIORS = ("gaussian", "cauchy")
PRIORS = ("gaussian", "laplace", "cauchy")
ANALYTIC_PAIRS = {("gaussian", "gaussian"), ("gaussian", "laplace"), ("cauchy", "cauchy")}

# Unrolled LISTA steps of the encoder (the paper's: 3); every encoding runs them all, so 10**9 would hang
# each batch instead of failing.
MAX_LISTA_ITERATIONS = 1000


@register_config("sparse_autoencoder")
@dataclass(frozen=True)
class SparseAutoencoderConfig(CommonConfig):
    """Configuration of :class:`~sparsecoder.models.sparse_autoencoder.SparseAutoencoder` (paper symbols in
    brackets; SPEC §2.5–2.7).

    The defaults are the VDL / MNIST row of the paper's Table 3; the presets in
    ``sparsecoder/presets/*.yaml`` set every variant explicitly.

    Attributes
    ----------
    encoder : {"lista", "none"}
        LISTA encoder (Algorithm 1) or none (DO: FISTA starts from ``fista_init``, codes always come from
        FISTA).
    decoder : {"linear", "mlp"}
        ``ŷ = W z`` or ``ŷ = W2 ReLU(W1 z + b1)`` (the "-NL" variants).
    collapse_guard : {"unit_norm", "variance", "weight_decay", "none"}
        SDL/DO, VDL, WDL, or the no-guard ablation.
    n_components : int
        Code size ``l`` (128 MNIST, 256 patches).
    hidden_size : int
        Hidden size ``m`` of the ``mlp`` decoder (1024 MNIST, 2048 patches).
    lista_iterations : int
        LISTA refinements ``L`` (3).
    lam : float
        Sparsity weight λ in reference scaling (SPEC §2.1).
    lam_grid : tuple of float
        The paper's λ grid for this preset (used by sweeps; training uses ``lam``).
    gamma : float
        γ, weight of the encoder-proximity term in FISTA (must be 0 without an encoder).
    beta : float
        β, weight of the variance hinge (> 0 exactly when ``collapse_guard == "variance"``).
    var_threshold : float
        T, the hinge's lower bound on each code component's batch std (0.5).
    fista_step : float or {"lipschitz", "backtracking"}
        FISTA step η_k (a fixed float in the paper: 0.5 or 1).
    fista_max_iter, fista_tol : int, float
        FISTA's iteration cap K (200) and per-sample relative-change tolerance (1e-3).
    fista_init : float
        The value every code component starts FISTA from without an encoder (DO, DO-NL; the authors'
        ``--Zs_init_val``, default 0). The ``mlp`` decoder needs it > 0: with ``b1 = 0`` at
        initialisation, zero codes give zero hidden pre-activations, where ReLU's gradient is 0, so FISTA
        never leaves 0 and nothing is learned (the ``do-nl-*`` presets set 0.1).
    fista_restart : bool
        Per-sample adaptive momentum restart in FISTA (O'Donoghue & Candès 2015; ``fista(restart=...)``):
        the same energy and tolerance in fewer passes where the momentum oscillates. On in ``sdl-nl-mnist``
        (about 40 % fewer passes, the same test PSNR and sparsity as plain FISTA and the authors' code:
        issue 15); off — the paper's plain FISTA — elsewhere.
    lr_decoder, lr_encoder : float
        Adam learning rates η_D, η_E.
    weight_decay_decoder : float
        Adam weight decay on the decoder's weight matrices (WDL: 5e-4; > 0 exactly for that guard).
    weight_decay_hidden_bias : float
        wd(b1), weight decay on the hidden bias of the ``mlp`` decoder.
    weight_decay_encoder_bias : float
        wd(b), weight decay on the LISTA bias.
    lr_halve_every : int or None
        Halve the decoder learning rate every this many epochs (30 for VDL-NL), or never.
    """

    # named by the trainer's divergence message besides the step sizes and learning rates (not a config key)
    LOSS_SCALES: ClassVar[tuple[str, ...]] = ("lam", "beta", "gamma", "var_threshold")
    # keys used only under some setting of another (a preset's take their off value or default when unused;
    # a user's are refused: config.layered_config)
    USED_WHEN: ClassVar[dict[str, UsedWhen]] = {
        "hidden_size": UsedWhen("decoder", ("mlp",)),
        "weight_decay_hidden_bias": UsedWhen("decoder", ("mlp",), off=0.0),
        "lista_iterations": UsedWhen("encoder", ("lista",)),
        "lr_encoder": UsedWhen("encoder", ("lista",)),
        "gamma": UsedWhen("encoder", ("lista",), off=0.0),
        "weight_decay_encoder_bias": UsedWhen("encoder", ("lista",), off=0.0),
        "beta": UsedWhen("collapse_guard", ("variance",), off=0.0),
        "var_threshold": UsedWhen("collapse_guard", ("variance",)),
        "weight_decay_decoder": UsedWhen("collapse_guard", ("weight_decay",), off=0.0),
        "fista_init": UsedWhen("encoder", ("none",), off=0.0),
    }

    encoder: Literal["lista", "none"] = "lista"
    decoder: Literal["linear", "mlp"] = "linear"
    collapse_guard: Literal["unit_norm", "variance", "weight_decay", "none"] = "variance"
    n_components: int = 128
    hidden_size: int = 1024
    lista_iterations: int = 3
    lam: float = 2e-2
    lam_grid: tuple[float, ...] = (0.0, 1e-3, 3e-3, 5e-3, 1e-2, 2e-2)
    gamma: float = 5.0
    beta: float = 10.0
    var_threshold: float = 0.5
    fista_step: float | Literal["lipschitz", "backtracking"] = 0.5
    fista_max_iter: int = 200
    fista_tol: float = 1e-3
    fista_restart: bool = False
    fista_init: float = 0.0
    lr_decoder: float = 3e-4
    lr_encoder: float = 1e-4
    weight_decay_decoder: float = 0.0
    weight_decay_hidden_bias: float = 0.0
    weight_decay_encoder_bias: float = 0.0
    lr_halve_every: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.n_components >= 1, "n_components", f"must be >= 1, got {self.n_components}")
        check(self.hidden_size >= 1, "hidden_size", f"must be >= 1, got {self.hidden_size}")
        check(0 <= self.lista_iterations <= MAX_LISTA_ITERATIONS, "lista_iterations",
              f"must be in [0, {MAX_LISTA_ITERATIONS}], got {self.lista_iterations}")
        check(math.isfinite(self.fista_tol) and self.fista_tol >= 0, "fista_tol",
              f"must be a finite number >= 0, got {self.fista_tol}")
        float32 = "it enters the float32 energy or Adam's squared gradients"
        for key in ("lam", "gamma", "beta", "weight_decay_decoder", "weight_decay_hidden_bias",
                    "weight_decay_encoder_bias"):
            value = getattr(self, key)
            check(0 <= value <= MAX_LOSS_WEIGHT, key,
                  f"must be a finite number >= 0 and <= {MAX_LOSS_WEIGHT:g} ({float32}), got {value}")
        check(all(0 <= v <= MAX_LOSS_WEIGHT for v in self.lam_grid), "lam_grid",
              f"every value must be a finite number >= 0 and <= {MAX_LOSS_WEIGHT:g} ({float32}), got "
              f"{list(self.lam_grid)}")
        check(0 < self.var_threshold <= MAX_LOSS_WEIGHT, "var_threshold",
              f"must be > 0 and <= {MAX_LOSS_WEIGHT:g} (its square enters the float32 energy), "
              f"got {self.var_threshold}")
        if not isinstance(self.fista_step, str):
            check(self.fista_step > 0 and math.isfinite(self.fista_step), "fista_step",
                  f"must be a number > 0, 'lipschitz' or 'backtracking', got {self.fista_step}")
        check(self.fista_max_iter >= 1, "fista_max_iter", f"must be >= 1, got {self.fista_max_iter}")
        check(0 <= self.fista_init <= MAX_LOSS_WEIGHT, "fista_init",
              f"must be a finite number >= 0 and <= {MAX_LOSS_WEIGHT:g} (codes are non-negative), "
              f"got {self.fista_init}")
        for key in ("lr_decoder", "lr_encoder"):
            value = getattr(self, key)
            check(math.isfinite(value) and value > 0, key, f"must be a number > 0, got {value}")
        check(self.lr_halve_every is None or self.lr_halve_every >= 1, "lr_halve_every",
              f"must be >= 1 or null (never), got {self.lr_halve_every}")
        if self.collapse_guard == "variance":
            check(self.beta > 0, "beta", "collapse_guard=variance (VDL) needs beta > 0 (the paper uses 10)")
        else:
            check(self.beta == 0, "beta",
                  f"beta={self.beta} > 0 turns on the variance hinge; set collapse_guard=variance for that "
                  f"(collapse_guard is '{self.collapse_guard}', which needs beta=0)")
        if self.collapse_guard == "weight_decay":
            check(self.weight_decay_decoder > 0, "weight_decay_decoder",
                  "collapse_guard=weight_decay (WDL) needs weight_decay_decoder > 0 (the paper uses 5e-4)")
        else:
            check(self.weight_decay_decoder == 0, "weight_decay_decoder",
                  f"decoder weight decay is the WDL guard; set collapse_guard=weight_decay to use it "
                  f"(collapse_guard is '{self.collapse_guard}', which needs weight_decay_decoder=0)")
        if self.encoder == "none":
            check(self.gamma == 0, "gamma",
                  "encoder=none (DO) has no encoder prediction to stay close to; set gamma=0")
            check(self.weight_decay_encoder_bias == 0, "weight_decay_encoder_bias",
                  "encoder=none has no encoder bias; set weight_decay_encoder_bias=0")
        if self.decoder == "linear":
            check(self.weight_decay_hidden_bias == 0, "weight_decay_hidden_bias",
                  "the linear decoder has no hidden bias b1; set weight_decay_hidden_bias=0 or decoder=mlp")

# Scales (prior_scale, likelihood_sigma) and β enter the float32 loss through s², 1/s² and β·KL: outside
# these bounds a first step's loss is already inf/NaN (prior_scale=1e-300 is 0 in float32), and the run
# would stop as "diverged" blaming the learning rate.
SCALE_RANGE = (1e-8, 1e8)
MAX_BETA = MAX_LOSS_WEIGHT
# Sample counts: the Monte-Carlo KL holds (kl_samples, batch, n_latents) tensors; evaluation decodes the
# test set eval_samples times.
MAX_KL_SAMPLES = 1000
MAX_EVAL_SAMPLES = 10000
# The ResNet encoder builds each block as its own layers (the paper's: 2); 10**4 blocks take seconds just to
# construct, 10**6 minutes, before anything could say the model is absurd.
MAX_RESNET_BLOCKS = 1000


@register_config("vae")
@dataclass(frozen=True)
class VAEConfig(CommonConfig):
    """Configuration of :class:`~sparsecoder.models.vae.VAE`; the paper symbol is given where there is one."""

    # named by the trainer's divergence message besides the learning rates (a ClassVar: not a config key)
    LOSS_SCALES: ClassVar[tuple[str, ...]] = ("beta", "prior_scale", "likelihood_sigma")
    # keys used only under some setting of another (a preset's take their off value or default when unused;
    # a user's are refused: config.layered_config)
    USED_WHEN: ClassVar[dict[str, UsedWhen]] = {
        "likelihood_sigma": UsedWhen("likelihood", ("gaussian",)),
        "kl_samples": UsedWhen("kl", ("monte_carlo",)),
        "resnet_blocks": UsedWhen("encoder", ("resnet",)),
        "decoder_hidden": UsedWhen("decoder", ("pyle",)),
        "unit_norm_decoder": UsedWhen("decoder", ("linear",), off=False),
    }

    n_latents: int = 450  # latent size l (450 in Jiang & de la Iglesia, 16x16 patches)
    posterior: Literal["gaussian", "cauchy"] = "gaussian"
    prior: Literal["gaussian", "laplace", "cauchy"] = "laplace"
    prior_scale: float = 0.1  # b of Laplace(0, b); std of N(0, s²); scale of Cauchy(0, s)
    kl: Literal["analytic", "monte_carlo"] = "analytic"
    kl_samples: int = 1  # samples of the Monte-Carlo KL per training step
    beta: float = 1.0  # β, weight of the KL term (β < 1: the SVAE heuristic)
    encoder: Literal["mlp", "resnet", "pyle"] = "mlp"
    encoder_hidden: int = 512
    resnet_blocks: int = 2
    decoder: Literal["linear", "pyle"] = "linear"
    decoder_hidden: int = 500
    unit_norm_decoder: bool = False  # project each decoder column onto the unit sphere after every step
    likelihood: Literal["gaussian", "bce", "mse"] = "gaussian"
    likelihood_sigma: float = math.exp(-1.0)  # σ of the Gaussian likelihood (Barello: e^-1)
    lr: float = 1e-3  # Adam learning rate
    eval_samples: int = 50  # posterior samples for the test MSE (SPEC §4)
    active_threshold: float = 0.5  # a latent is active when the std of its posterior mean exceeds this

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.n_latents >= 1, "n_latents", f"must be >= 1, got {self.n_latents}")
        low, high = SCALE_RANGE
        for key in ("prior_scale", "likelihood_sigma"):
            value = getattr(self, key)
            check(low <= value <= high, key,
                  f"must be in [{low:g}, {high:g}] (its square and reciprocal enter the float32 loss), "
                  f"got {value}")
        check(1 <= self.kl_samples <= MAX_KL_SAMPLES, "kl_samples",
              f"must be in [1, {MAX_KL_SAMPLES}], got {self.kl_samples}")
        check(0 <= self.beta <= MAX_BETA, "beta",
              f"must be in [0, {MAX_BETA:g}] (β·KL enters the float32 loss), got {self.beta}")
        check(self.encoder_hidden >= 1, "encoder_hidden", f"must be >= 1, got {self.encoder_hidden}")
        check(1 <= self.resnet_blocks <= MAX_RESNET_BLOCKS, "resnet_blocks",
              f"must be in [1, {MAX_RESNET_BLOCKS}], got {self.resnet_blocks}")
        check(self.decoder_hidden >= 1, "decoder_hidden", f"must be >= 1, got {self.decoder_hidden}")
        check(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        check(1 <= self.eval_samples <= MAX_EVAL_SAMPLES, "eval_samples",
              f"must be in [1, {MAX_EVAL_SAMPLES}], got {self.eval_samples}")
        check(self.active_threshold >= 0, "active_threshold", f"must be >= 0, got {self.active_threshold}")
        # E_q z² and E_q |z| are infinite for a Cauchy q: KL against a Gaussian or Laplace prior is +∞, and a
        # Monte-Carlo estimate of it is a finite number that grows without bound with the sample count
        check(self.posterior != "cauchy" or self.prior == "cauchy", "prior",
              f"a cauchy posterior and a {self.prior} prior have an infinite KL divergence (the Cauchy's "
              f"tails are heavier than the prior's), so the ELBO is -inf; set prior=cauchy, or "
              f"posterior=gaussian for a {self.prior} prior")
        # the same tails through an unbounded decoder: E_q‖x − Uz‖² is infinite, so is the expected
        # reconstruction term of the ELBO; its estimates (test mse, elbo, score) follow the largest sample
        check(self.posterior != "cauchy" or self.decoder != "linear", "decoder",
              "a cauchy posterior through the linear decoder has an infinite expected reconstruction error "
              "(E|z|² is infinite for a Cauchy q, and x̂ = Uz is unbounded), so the ELBO is -inf and the "
              "test mse of samples is meaningless; set decoder=pyle (bounded sigmoid output), or "
              "posterior=gaussian for the linear decoder")
        if self.kl == "analytic":
            check((self.posterior, self.prior) in ANALYTIC_PAIRS, "kl",
                  f"no closed form for a {self.posterior} posterior and a {self.prior} prior; closed forms "
                  f"exist for (posterior, prior) in {sorted(ANALYTIC_PAIRS)}; set kl=monte_carlo")
        check(not self.unit_norm_decoder or self.decoder == "linear", "unit_norm_decoder",
              "unit-norm columns apply to the linear decoder only; "
              "set decoder=linear or unit_norm_decoder=false")
        check(self.likelihood != "bce" or self.decoder == "pyle", "likelihood",
              "bce needs decoder=pyle (logit outputs in [0, 1] after the sigmoid); use gaussian or mse")
