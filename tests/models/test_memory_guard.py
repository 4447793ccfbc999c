"""The one guard against a model too large for memory (sparsecoder.models.common.check_fits_in_memory), for
every model family: the parameters are counted exactly on torch's meta device, nothing is allocated, and a
model whose training state (weights, gradients, Adam's two moments: 16 bytes per float32 parameter) exceeds
the machine's memory is refused naming its size keys, the count, the GiB and the fix."""

import time

import pytest
import torch
from torch import nn

from sparsecoder import SAE
from sparsecoder import util as util_module
from sparsecoder.config import ConfigError, list_presets, load_preset
from sparsecoder.data.base import DataSplits, Split
from sparsecoder.models import build_model, model_class
from sparsecoder.models.common import check_fits_in_memory, training_size
from sparsecoder.models.sparse_autoencoder import SparseAutoencoder
from sparsecoder.models.vae import VAE
from sparsecoder.util import physical_memory

PRESETS = [preset.name for preset in list_presets()]
N_FEATURES = 25

# one small configuration of each architecture the two families build
SMALL = [
    ("sdl-mnist", {"n_components": 7}),  # LISTA encoder, linear decoder, unit-norm columns
    ("sdl-nl-mnist", {"n_components": 7, "hidden_size": 13}),  # LISTA encoder, one-hidden-layer decoder
    ("do-mnist", {"n_components": 7}),  # no encoder
    ("do-nl-mnist", {"n_components": 7, "hidden_size": 13}),
    ("vdl-nl-patches", {"n_components": 7, "hidden_size": 13}),
    ("svae-mnist", {"n_latents": 7, "encoder_hidden": 11}),  # mlp encoder, linear decoder
    ("svae-norm-patches", {"n_latents": 7, "encoder_hidden": 11}),  # resnet, unit-norm columns
    ("vae-gauss-mnist", {"n_latents": 7, "encoder_hidden": 11, "decoder_hidden": 13}),  # pyle / pyle
    ("vae-laplace-synthetic", {"n_latents": 7, "encoder_hidden": 11,
                               "encoder": "mlp", "decoder": "linear", "likelihood": "gaussian"}),
    ("vae-cauchy-patches", {"n_latents": 7, "encoder_hidden": 11, "encoder": "resnet", "resnet_blocks": 3,
                            "decoder": "linear", "likelihood": "gaussian", "posterior": "gaussian",
                            "kl": "monte_carlo"}),  # (a Cauchy posterior needs the bounded pyle decoder)
]


def _config(preset, **overrides):
    return load_preset(preset, {"device": "cpu", **overrides})[1]


def _splits(n_features, n_rows=10):
    # values in [0, 1]: every likelihood (bce included) accepts them
    def split():
        return Split(x=torch.rand(n_rows, n_features, generator=torch.Generator().manual_seed(0)))

    return DataSplits(name="rows", train=split(), val=split(), test=split(), image_shape=None,
                      normalization="none")


def _real_count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("preset", "sizes"), SMALL, ids=[f"{p}-{i}" for i, (p, _) in enumerate(SMALL)])
def test_the_meta_count_is_the_count_of_the_model_really_built(preset, sizes):
    config = _config(preset, **sizes)
    cls = model_class(config.model_name)
    count, size = training_size(lambda: cls(config, N_FEATURES))
    model = cls(config, N_FEATURES)  # the independent truth: the real module's parameters
    assert count == _real_count(model)
    assert size == 16 * count  # float32 weights, gradients and Adam's two moments; no buffers
    assert all(not p.is_meta for p in model.parameters())


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_builds_on_the_meta_device_with_the_real_count(preset):
    # from_config (what build_model calls) too: no family initialises from data values
    config = _config(preset)
    cls = model_class(config.model_name)
    data = _splits(64)
    with torch.device("meta"):
        meta = cls.from_config(config, data)
    assert all(p.is_meta for p in meta.parameters())
    real = build_model(config, data)
    assert training_size(lambda: cls(config, 64))[0] == _real_count(meta) == _real_count(real)


def _only_meta_modules(monkeypatch):
    """Record the default device of every nn.Linear built: proof that nothing real was allocated."""
    devices = []
    init = nn.Linear.__init__

    def spy(self, *args, **kwargs):
        devices.append(torch.empty(0).device.type)
        init(self, *args, **kwargs)

    monkeypatch.setattr(nn.Linear, "__init__", spy)
    return devices


@pytest.mark.parametrize(
    ("preset", "sizes", "message"),
    [("sdl-nl-mnist", {"n_components": 300, "hidden_size": 64},
      r"a sparse autoencoder on 25 features \(n_components=300, hidden_size=64\) has 118,664 parameters, "
      r"1\.8 MiB to train .*more than this machine's 1\.0 MiB; lower n_components or hidden_size$"),
     ("sdl-mnist", {"n_components": 300},  # hidden_size does not size a linear decoder
      r"\(n_components=300\) has \d\d\d,\d\d\d parameters.*; lower n_components$"),
     ("svae-norm-mnist", {"n_latents": 400, "encoder_hidden": 64},
      r"a VAE on 25 features \(n_latents=400, encoder_hidden=64, resnet_blocks=2\) has [\d,]+ parameters, .*"
      r"lower n_latents, encoder_hidden or resnet_blocks$")],
)
def test_a_model_larger_than_the_memory_is_refused_before_any_allocation(preset, sizes, message, monkeypatch):
    monkeypatch.setattr(util_module, "physical_memory", lambda: 2**20)  # a machine of 1 MiB
    config = _config(preset, **sizes)
    devices = _only_meta_modules(monkeypatch)
    with pytest.raises(ConfigError, match="^the model does not fit in this machine's memory: "):
        build_model(config, _splits(N_FEATURES))
    with pytest.raises(ConfigError, match=message):
        model_class(config.model_name)(config, N_FEATURES)
    assert devices and set(devices) == {"meta"}


def test_rows_too_wide_for_the_memory_are_named_as_a_fix_with_the_width_that_fits(monkeypatch):
    # audit 2026-11-29: a model too large only because of its rows' width (100,000 features, 8 atoms) was
    # told "lower n_components" alone, though no n_components fits; the width that fits is now named too
    monkeypatch.setattr(util_module, "physical_memory", lambda: 2**20)  # a machine of 1 MiB
    config = _config("sdl-mnist", n_components=8)
    message = (r"\(n_components=8\) has 1,600,072 parameters.*; lower n_components, or give rows of at most "
               r"4,091 features \(these have 100,000")
    with pytest.raises(ConfigError, match=message):
        SparseAutoencoder(config, 100_000)
    assert training_size(lambda: SparseAutoencoder(config, 4091))[1] <= 2**20
    assert training_size(lambda: SparseAutoencoder(config, 4092))[1] > 2**20
    SparseAutoencoder(config, 4091)  # built: the width named fits
    # where even one feature per row would not fit, fewer features is no fix and is not offered
    with pytest.raises(ConfigError, match=r"; lower n_components or hidden_size$"):
        SparseAutoencoder(_config("sdl-nl-mnist", n_components=300, hidden_size=64), 100_000)


def test_a_model_that_fits_is_built_as_before(monkeypatch):
    config = _config("sdl-nl-mnist", n_components=8, hidden_size=8)
    count = training_size(lambda: SparseAutoencoder(config, N_FEATURES))[0]
    monkeypatch.setattr(util_module, "physical_memory", lambda: 16 * count)  # exactly enough
    model = SparseAutoencoder(config, N_FEATURES)
    assert _real_count(model) == count
    monkeypatch.setattr(util_module, "physical_memory", lambda: None)  # a platform that does not say
    assert torch.equal(SparseAutoencoder(config, N_FEATURES).decoder.atoms(), model.decoder.atoms())


@pytest.mark.parametrize(
    ("cls", "preset", "sizes", "n_features", "message"),
    [(SparseAutoencoder, "sdl-nl-mnist", {"n_components": 10**6, "hidden_size": 10**5}, 784,
      r"\(n_components=1000000, hidden_size=100000\) has 1,100,863,500,000 parameters, 16,404\.1 GiB"),
     # 10**10 × 10**10 lateral weights: torch cannot even describe the tensor (its size overflows int64)
     (SparseAutoencoder, "sdl-nl-mnist", {"n_components": 10**10}, 784,
      r"\(n_components=10000000000, hidden_size=1024\) has a tensor of more than 2\*\*63 bytes"),
     (VAE, "svae-norm-mnist", {"n_latents": 10**6, "encoder_hidden": 10**5}, 784,
      r"\(n_latents=1000000, encoder_hidden=100000, resnet_blocks=2\) has [\d,]+ parameters")],
)
def test_genuinely_huge_sizes_are_refused_at_once(cls, preset, sizes, n_features, message):
    # the real tensors would be terabytes: a refusal in a few milliseconds proves none was allocated
    config = _config(preset, **sizes)
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=message):
        cls(config, n_features)
    assert time.perf_counter() - start < 5


def test_the_scikit_learn_estimator_goes_through_the_same_guard():
    rows = torch.rand(20, 784).numpy()
    with pytest.raises(ConfigError, match=r"n_components=1000000, hidden_size=100000\).*lower n_components"):
        SAE("sdl", "mlp", n_components=10**6, hidden_size=10**5, max_epochs=1).fit(rows)


def test_a_model_that_cannot_be_built_on_the_meta_device_is_left_to_the_allocator():
    class ReadsValues(nn.Module):  # an initialisation from data values: no meta implementation
        def __init__(self, config):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(config))
            if self.weight.is_meta:
                raise NotImplementedError("Cannot copy out of meta tensor; no data!")

    assert training_size(lambda: ReadsValues(4)) is None
    check_fits_in_memory(ReadsValues, 4)  # no up-front count: build_model's backstop is the guard


def test_physical_memory_is_the_machines():
    memory = physical_memory()
    assert memory is None or memory > 2**26


@pytest.mark.parametrize(("preset", "key", "value", "message"), [
    ("svae-norm-patches", "resnet_blocks", 10**4, r"'resnet_blocks': must be in \[1, 1000\], got 10000"),
    ("sdl-mnist", "lista_iterations", 10**9, r"'lista_iterations': must be in \[0, 1000\], got 1000000000"),
])
def test_layer_counts_that_would_take_minutes_to_build_or_run_are_refused_by_the_config(preset, key, value,
                                                                                        message):
    """10**4 ResNet blocks took ~11 s to build (on meta, to count them) before the config refused nothing;
    10**9 LISTA steps would hang every batch. Both are refused when the config is made."""
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=message):
        load_preset(preset, {key: value})
    assert time.perf_counter() - start < 2.0
    load_preset(preset, {key: 1000})  # the bound itself is allowed


def test_a_cuda_device_index_beyond_the_gpus_is_named(monkeypatch):
    # device=cuda:5 on a one-GPU machine passed until the model was moved ("invalid device ordinal")
    from sparsecoder.models.common import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"'cuda:5', but this machine has 1 GPU \(cuda:0 to cuda:0\)"):
        resolve_device("cuda:5")
    assert resolve_device("cuda:0") == torch.device("cuda", 0) and resolve_device("cuda").index is None
