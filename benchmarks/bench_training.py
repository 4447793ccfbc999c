"""Training speed per epoch and the fraction of one thread's matmul peak it uses (issue 15).

Trains each variant's MNIST preset for ``--epochs`` epochs with one torch thread and reports the
steady-state seconds per epoch (median of epochs 2…N, each from the end of the previous epoch's checkpoint
write to the end of its own: training, validation and the epoch's files, as the authors' epochs are timed;
before 2026-11-28 16:00 it was ``history.csv``'s ``seconds``, which stop before the writes), the test
PSNR / sparsity of the encoder codes, the mean FISTA iterations per sample and the useful GFLOP/s as a
fraction of the measured single-thread ``torch.mm`` peak (best of 20 1024² products, sampled before the
benchmark and again before each of our runs: the highest sample)::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_training.py --variants sdl,vdl,vdl-nl --epochs 10
    PYTHONPATH=src .venv/bin/python benchmarks/bench_training.py --device cuda

Useful FLOPs per training sample (multiply–add = 2 FLOP), ``l`` code size, ``d`` pixels, ``h`` hidden:

* linear decoder: FISTA ``k·2l²`` (one fused Gram ``addmm`` per iteration) ``+ 2dl`` (``Y·W``), decoder
  step ``6dl`` (forward, backward);
* one-hidden-layer decoder: FISTA ``k·4(lh + hd)`` (forward and input-gradient per iteration), decoder
  step ``6(lh + hd)``; long solves (SDL-NL) switch to the Gram form ``r W2 = h G − c``
  (``inference/fista.py::_MLPStep``), which does ≈ 30 % fewer FLOPs per pass for the same iterates — the
  count stays the direct form's, so for SDL-NL the rate is work done per second, not FLOPs executed;
* encoder step: ``6·p`` with ``p`` the encoder's weight entries (each used once per sample) — a lower
  bound for the unrolled LISTA encoder.

Side by side with the authors' released code (github ``kevtimova/deep-sparse``) when their checkout is
given with ``--reference DIR`` (exported by ``../shared/ds-bench/setup.sh``; needs ``tensorboardX``)::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_training.py --reference /tmp/ds-ref \
        --variants sdl,vdl,wdl,do,sdl-nl,vdl-nl --epochs 10 --table table.md

The embedded MNIST digits are written as gzipped IDX files with the authors' ``--data_splits`` index
lists, from the same seeded 55:5:10 split our ``mnist`` source uses, so both tools train, validate and
test on the same images. Their ``main.py`` runs unchanged through the kit's ``run_timed.py`` (one thread,
per-epoch wall time including their validation and logging) with the flags of their
``scripts/MNIST_*.sh`` (WDL and DO: the SDL script with the decoder normalisation replaced by weight decay,
or without an encoder — :data:`REFERENCE`); ours trains the matching preset with the same λ, one thread.
Runs alternate theirs / ours per variant. Quality: test PSNR and fraction of zero codes of the encoder
after training, best-validation weights, on the same digits: their evaluation (``eval_denoising.py``)
takes the whole batches of the test file (``drop_last``: the first 500 of 714) and logs ``psnr_orig`` /
``L0_orig`` per batch — theirs is the mean of those batches (equal sizes), ours the same quantities of our
encoder on the same first 500 test digits (``metrics.json`` has ours on all 714). (Before 2026-11-28 13:00
this script took their last batch alone.) Both train on the training split cut to a whole number of
batches (3,750 of the 3,929 digits, ``--train-samples``): their loader drops the last incomplete batch and
ours spreads it over the others, so without the cut ours would make 16 Adam steps per epoch to their 15.

``--seeds K`` trains each tool K times per variant (their script's seed + 0…K−1; ours the preset's seed +
0…K−1 on the preset seed's split, ``split_seed``) and gives quality as the mean ± std over seeds and the
difference of the means, s/epoch as the median of the runs.

``--profile`` splits our steady-state epoch into its parts — FISTA (training batches), encoder forward,
decoder forward + losses + logs, backward + Adam + projection, validation, checkpoint + history, and
the rest (batching, the loop, Python) — by wall-clock timers around those functions during the run (each
part's time excludes the parts nested in it), with the useful GFLOP/s of the FISTA and step parts.

``--products`` (CPU) trains each variant once more, 3 epochs in ``OUT/NAME-products``, under
``torch.profiler`` (operators, their shapes and FLOPs) from the end of the first epoch to the end of the
last, and lists the matrix products (``mm``, ``addmm``) of a steady epoch by shape: calls, seconds,
GFLOP/s and fraction of the peak, then all products together and every other operator's own time, and
the products' share of the *timed* (unprofiled) steady epoch. The profiler slows the small operators it
records, so the timed run is the one without it.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import gzip
import importlib
import json
import os
import platform
import re
import shutil
import statistics
import struct
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from _common import at_least, output_file, output_folder, require_module, write_text

VARIANTS = {
    "sdl": ("sdl-mnist", 5e-3),
    "vdl": ("vdl-mnist", 2e-2),
    "vdl-nl": ("vdl-nl-mnist", 1e-2),
    "sdl-nl": ("sdl-nl-mnist", 1e-2),
    "do": ("do-mnist", 5e-3),
    "wdl": ("wdl-mnist", 5e-3),
}

# The authors' script per variant, flag values replaced, and store-true flags removed. WDL and DO have no
# script of their own: the SDL script with the unit-norm projection replaced by the weight decay of our
# ``wdl-mnist`` preset, or with the encoder neither trained nor used (``do-mnist``: encoder none, γ = 0).
REFERENCE = {
    "sdl": ("MNIST_SDL.sh", {}, ()),
    "vdl": ("MNIST_VDL.sh", {}, ()),
    "sdl-nl": ("MNIST_SDL-NL.sh", {}, ()),
    "vdl-nl": ("MNIST_VDL-NL.sh", {}, ()),
    "wdl": ("MNIST_SDL.sh", {"norm_decoder": "0", "weight_decay_D": "0.0005"}, ()),
    "do": ("MNIST_SDL.sh", {"code_reg": "0"}, ("train_encoder", "use_Zs_enc_as_init")),
}
DEFAULT_DS_BENCH = Path(__file__).resolve().parents[2] / "shared" / "ds-bench"


def write_reference_data(directory: Path, seed: int = 0, train_samples: int | None = None) -> dict[str, int]:
    """The embedded MNIST digits as ``idx/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` and the
    authors' ``splits/MNIST_{train,val}.npy`` (indices into the IDX training file), from the same seeded
    split as our ``mnist`` source, its training part cut to the first ``train_samples`` (our ``limit``);
    returns the split sizes."""
    from sparsecoder.data.mnist import _split_indices, read_embedded_mnist

    pixels, labels = read_embedded_mnist()
    train, val, test = _split_indices(len(pixels), (55 / 70, 5 / 70, 10 / 70), seed)
    train = train[:train_samples]
    images = pixels.reshape(len(pixels), 28, 28).astype(np.uint8)
    labels = labels.astype(np.uint8)
    (directory / "idx").mkdir(parents=True, exist_ok=True)
    (directory / "splits").mkdir(parents=True, exist_ok=True)

    def write(name: str, array: np.ndarray) -> None:
        header = struct.pack(">IIII", 0x803, *array.shape) if array.ndim == 3 else \
            struct.pack(">II", 0x801, array.shape[0])
        with gzip.open(directory / "idx" / name, "wb") as handle:
            handle.write(header + array.tobytes())

    first = np.concatenate([train, val])  # the IDX training file: our train rows, then our val rows
    write("train-images-idx3-ubyte.gz", images[first])
    write("train-labels-idx1-ubyte.gz", labels[first])
    write("t10k-images-idx3-ubyte.gz", images[test])
    write("t10k-labels-idx1-ubyte.gz", labels[test])
    np.save(directory / "splits" / "MNIST_train.npy", np.arange(len(train), dtype=np.int64))
    np.save(directory / "splits" / "MNIST_val.npy", np.arange(len(train), len(first), dtype=np.int64))
    return {"train": len(train), "val": len(val), "test": len(test)}


def reference_flags(script: Path, overrides: dict[str, str], removed: tuple[str, ...] = ()) -> list[str]:
    """``main.py`` flags of one of the authors' ``scripts/*.sh``: ``--cuda`` dropped, the ``removed``
    store-true flags dropped, values replaced from ``overrides`` (added when the script lacks them)."""
    text = script.read_text().split("main.py", 1)[1]
    pairs = [(m.group(1), None if m.group(2) is None else m.group(2).strip('"'))
             for m in re.finditer(r'--(\w+)(?:\s+("[^"]*"|\$\w+))?', text)]
    pending = dict(overrides)
    flags: list[str] = []
    for key, value in pairs:
        if key == "cuda" or key in removed:
            continue
        if key in pending:
            value = pending.pop(key)
        flags += [f"--{key}"] + ([] if value is None else [value])
    for key, value in pending.items():
        flags += [f"--{key}", value]
    return flags


def script_seed(script: Path) -> int:
    """The ``--seed`` an authors' script passes (their ``main.py``'s default, 11, when it passes none)."""
    flags = reference_flags(script, {})
    return int(flags[flags.index("--seed") + 1]) if "--seed" in flags else 11


def run_reference(name: str, epochs: int, reference: Path, ds_bench: Path, data: Path, sizes: dict[str, int],
                  out: Path, seed_offset: int = 0) -> dict:
    """Train the authors' code for one variant through the kit's ``run_timed.py``; s/epoch and quality.
    ``seed_offset`` > 0: their script's ``--seed`` plus that (the run named ``theirs-NAME-sK``)."""
    script, overrides, removed = REFERENCE[name]
    label = f"theirs-{name}" + (f"-s{seed_offset}" if seed_offset else "")
    run_dir = out / label
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    script_path = reference / "scripts" / script
    seed = script_seed(script_path) + seed_offset
    flags = reference_flags(script_path, {
        **overrides, "seed": str(seed), "outdir": str(run_dir), "epochs": str(epochs), "num_workers": "0",
        "datadir": str(data / "idx"), "data_splits": str(data / "splits"),
        "n_training_samples": str(sizes["train"]), "n_val_samples": str(sizes["val"]),
        "n_test_samples": str(sizes["test"])}, removed)
    record = out / f"{label}.json"
    env = {**os.environ, "PYTHONPATH": str(ds_bench / "shim"), "DS_REPO": str(reference),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    with (out / f"{label}.log").open("w") as log:
        done = subprocess.run([sys.executable, str(ds_bench / "run_timed.py"), str(record), "--", *flags],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"the authors' code failed for {name} (exit {done.returncode}); see "
                           f"{out / f'{label}.log'}")
    timed = json.loads(record.read_text())
    seconds = timed["epoch_s"]
    scalars = timed["scalars"]
    lam = float(flags[flags.index("--sparsity_reg") + 1])
    if "--train_encoder" in flags:  # test images through their trained encoder
        # one value per whole test batch (drop_last: equal sizes), so their mean is the whole evaluation's
        psnr = statistics.mean(v for _, v in scalars["psnr_orig"])
        sparsity = statistics.mean(v for _, v in scalars["L0_orig"])
        source = "test, encoder"
    else:  # DO: their test metric would use the untrained encoder; their last validation FISTA codes
        psnr = scalars["epoch_stats_validation/PSNR"][-1][1]
        sparsity = scalars["epoch_stats_validation/frac_0s_Z"][-1][1]
        source = "validation, FISTA codes"
    return {"variant": name, "lam": lam, "s_per_epoch": statistics.median(seconds[1:] or seconds),
            "first_epoch_s": seconds[0], "wall_s": wall, "epochs": len(seconds),
            "seed": seed,
            "psnr": psnr, "sparsity": sparsity, "quality_source": source,
            "fista_iterations": statistics.mean(v for _, v in scalars["epoch_stats_training/inf_steps"]),
            "flags": flags}


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
    encoder = model.encoder if model.encoder is not None else torch.nn.Module()  # DO: no encoder
    encoder_weights = sum(p.numel() for name, p in encoder.named_parameters() if p.dim() >= 2)
    return {"fista": fista, "decoder_step": 6.0 * macs, "encoder_step": 6.0 * encoder_weights}


class PartTimer:
    """Wall-clock time per part of an epoch, each part's time *excluding* the parts nested in it; an
    ``opaque`` part (validation) keeps whatever runs inside it (its FISTA calls are validation's).
    ``end_epoch()`` closes one epoch: the time since the last close not in any part is "other"."""

    def __init__(self, clock=time.perf_counter) -> None:
        self.clock = clock
        self.epochs: list[dict[str, float]] = []
        self.current: dict[str, float] = defaultdict(float)
        self.stack: list[list] = []  # [label, start, nested seconds, opaque]
        self.epoch_start = clock()

    def wrap(self, function, label: str, opaque: bool = False):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            if any(entry[3] for entry in self.stack):
                return function(*args, **kwargs)
            self.stack.append([label, self.clock(), 0.0, opaque])
            try:
                return function(*args, **kwargs)
            finally:
                _, start, nested, _ = self.stack.pop()
                elapsed = self.clock() - start
                self.current[label] += elapsed - nested
                if self.stack:
                    self.stack[-1][2] += elapsed
        return timed

    def end_epoch(self) -> None:
        now = self.clock()
        parts = dict(self.current)
        parts["total"] = now - self.epoch_start
        parts[OTHER] = parts["total"] - sum(self.current.values())
        self.epochs.append(parts)
        self.current = defaultdict(float)
        self.epoch_start = now


PARTS = ("FISTA", "encoder forward", "decoder forward, losses, logs", "backward, Adam, projection",
         "validation", "checkpoint, history")
OTHER = "other (batching, loop, Python)"  # an epoch's time in none of the PARTS


@contextlib.contextmanager
def instrumented(timer: PartTimer):
    """Our training code with :class:`PartTimer` wrappers around the functions of each part (restored
    on exit). The epoch ends when its checkpoint is written (the trainer's last step of an epoch)."""
    sae_eval = importlib.import_module("sparsecoder.eval.sae")
    trainer = importlib.import_module("sparsecoder.train.trainer")  # `sparsecoder.train` is also a function
    from sparsecoder.models.sparse_autoencoder import SparseAutoencoder
    from sparsecoder.nn.encoders import LISTAEncoder
    from sparsecoder.train.optimization import Optimization

    def checkpoint_then_end_epoch(function):
        timed = timer.wrap(function, "checkpoint, history")

        @functools.wraps(function)
        def save(*args, **kwargs):
            result = timed(*args, **kwargs)
            timer.end_epoch()
            return result
        return save

    targets = [
        (SparseAutoencoder, "_fista", lambda f: timer.wrap(f, "FISTA")),
        (LISTAEncoder, "forward", lambda f: timer.wrap(f, "encoder forward")),
        (SparseAutoencoder, "training_losses", lambda f: timer.wrap(f, "decoder forward, losses, logs")),
        (Optimization, "step", lambda f: timer.wrap(f, "backward, Adam, projection")),
        (sae_eval, "validation_metrics", lambda f: timer.wrap(f, "validation", opaque=True)),
        (trainer, "save_weights", lambda f: timer.wrap(f, "checkpoint, history")),
        (trainer, "write_history", lambda f: timer.wrap(f, "checkpoint, history")),
        (trainer, "save_checkpoint", checkpoint_then_end_epoch),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in targets]
    try:
        for owner, name, make in targets:
            setattr(owner, name, make(getattr(owner, name)))
        yield timer
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


@contextlib.contextmanager
def epoch_ends(clock=time.perf_counter):
    """A list that receives ``clock()`` each time our trainer has written an epoch's checkpoint — the last
    thing it does in an epoch — so consecutive differences are whole epochs: training, validation,
    history, best weights and checkpoint, as the authors' epochs are timed (``run_timed.py``: until their
    loop asks for the next batch, after their checkpoint save). The trainer's ``history.csv`` ``seconds``
    stop before the writes."""
    trainer = importlib.import_module("sparsecoder.train.trainer")
    original = trainer.save_checkpoint
    ends: list[float] = []

    @functools.wraps(original)
    def save(*args, **kwargs):
        result = original(*args, **kwargs)
        ends.append(clock())
        return result

    trainer.save_checkpoint = save
    try:
        yield ends
    finally:
        trainer.save_checkpoint = original


def run_variant(name: str, epochs: int, device: str, out: Path, lam: float | None = None,
                train_samples: int | None = None, profile: bool = False, threads: int = 1,
                seed_offset: int = 0) -> dict:
    """Train our preset for one variant; ``seed_offset`` > 0: the preset's seed plus that, on the split of
    the preset's seed (``split_seed``), in the run folder ``NAME-sK``."""
    from sparsecoder.config import load_preset
    from sparsecoder.train import train

    preset, default_lam = VARIANTS[name]
    lam = default_lam if lam is None else lam
    run_dir = out / (name + (f"-s{seed_offset}" if seed_offset else ""))
    shutil.rmtree(run_dir, ignore_errors=True)
    timer = PartTimer()
    overrides = _overrides(preset, epochs, lam, device, threads, train_samples, seed_offset)
    base = load_preset(preset)[1]
    start = time.perf_counter()
    with instrumented(timer) if profile else contextlib.nullcontext(), epoch_ends() as ends:
        timer.epoch_start = timer.clock()
        metrics = train(preset, run_dir, progress=False, overrides=overrides)
    wall = time.perf_counter() - start
    with (run_dir / "history.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    seconds = [float(r["seconds"]) for r in rows]  # the first epoch's: without its writes
    epoch_seconds = [b - a for a, b in zip(ends, ends[1:], strict=False)]
    steady = statistics.median(epoch_seconds or seconds)
    iterations = statistics.mean(float(r["fista_iterations"]) for r in rows)
    result = {"variant": name, "preset": preset, "lam": lam, "s_per_epoch": steady,
              "seed": base.seed + seed_offset,
              "first_epoch_s": seconds[0], "wall_s": wall, "fista_iterations": iterations,
              "psnr": metrics["psnr"], "sparsity": metrics["sparsity"], "n_train": metrics["n_train"],
              "run_dir": str(run_dir), "epoch_seconds": epoch_seconds}
    if profile:  # mean seconds per steady-state epoch (2…N) of each part
        steady_epochs = timer.epochs[1:] or timer.epochs
        keys = [*PARTS, OTHER, "total"]
        result["profile"] = {k: statistics.mean(e.get(k, 0.0) for e in steady_epochs) for k in keys}
    return result


def _overrides(preset: str, epochs: int, lam: float, device: str, threads: int, train_samples: int | None,
               seed_offset: int = 0) -> dict:
    """Our training's overrides of ``preset``: λ, epochs, device, threads, training rows and, for
    ``seed_offset`` > 0, the preset's seed plus that on the split of the preset's seed (``split_seed``)."""
    from sparsecoder.config import load_preset

    overrides = {"epochs": epochs, "lam": lam, "device": device, "num_threads": threads,
                 "limit": train_samples}
    if seed_offset:
        base = load_preset(preset)[1]
        overrides |= {"seed": base.seed + seed_offset,
                      "data_options": {**base.data_options, "split_seed": base.seed}}
    return overrides


# a matrix product's operands among its operator's input shapes: mm(a, b[, out]), addmm(c, a, b, β, α[, out])
PRODUCTS = {"aten::mm": (0, 1), "aten::addmm": (1, 2)}


def product_profile(name: str, device: str, out: Path, lam: float | None = None,
                    train_samples: int | None = None, threads: int = 1, epochs: int = 3) -> dict:
    """Train ``epochs`` epochs of our preset for ``name`` (in ``OUT/NAME-products``) under
    ``torch.profiler``, recording from the end of the first epoch's checkpoint write to the end of the last
    epoch's: per steady epoch, each matrix-product shape's calls, seconds and FLOPs, and every other
    operator's own seconds (module docstring, ``--products``)."""
    from torch.profiler import ProfilerActivity, profile

    from sparsecoder.train import train

    preset, default_lam = VARIANTS[name]
    lam = default_lam if lam is None else lam
    run_dir = out / f"{name}-products"
    shutil.rmtree(run_dir, ignore_errors=True)
    profiler = profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_flops=True)
    trainer = importlib.import_module("sparsecoder.train.trainer")
    original, written = trainer.save_checkpoint, []

    @functools.wraps(original)
    def save(*args, **kwargs):
        result = original(*args, **kwargs)
        written.append(time.perf_counter())
        if len(written) == 1:
            profiler.start()
        elif len(written) == epochs:
            profiler.stop()
        return result

    trainer.save_checkpoint = save
    try:
        train(preset, run_dir, progress=False,
              overrides=_overrides(preset, epochs, lam, device, threads, train_samples))
    finally:
        trainer.save_checkpoint = original
        if 1 <= len(written) < epochs:
            profiler.stop()  # an interrupted run: do not leave the profiler recording
    steady = epochs - 1
    shapes: dict[tuple, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    other = 0.0
    for event in profiler.events():
        if event.name in PRODUCTS:
            first, second = PRODUCTS[event.name]
            key = (event.name.removeprefix("aten::"), tuple(event.input_shapes[first]),
                   tuple(event.input_shapes[second]))
            entry = shapes[key]
            entry[0] += 1 / steady
            entry[1] += event.self_cpu_time_total / 1e6 / steady
            entry[2] += event.flops / steady
        elif event.name.startswith("aten::"):  # operators, not record_function ranges (Adam.step)
            other += event.self_cpu_time_total / 1e6 / steady
    listed = [{"op": op, "a": list(a), "b": list(b), "calls": calls, "s": seconds, "flops": flops}
              for (op, a, b), (calls, seconds, flops) in sorted(shapes.items(), key=lambda kv: -kv[1][1])]
    return {"variant": name, "shapes": listed, "other_s": other,
            "profiled_epoch_s": (written[-1] - written[0]) / steady}


def product_lines(result: dict, products: dict, peak: float, top: int = 8) -> list[str]:
    """A markdown table of one variant's matrix products per steady epoch (``--products``)."""
    shapes = products["shapes"]  # by time, longest first
    seconds = sum(p["s"] for p in shapes)
    flops = sum(p["flops"] for p in shapes)
    timed = result["s_per_epoch"]

    def rate(f, s):
        return f"{f / s / 1e9:.1f} | {100 * f / s / 1e9 / peak:.0f} %" if s > 0 else "| "

    rate_all = flops / seconds / 1e9
    profiled, other = products["profiled_epoch_s"], products["other_s"]
    rest = profiled - seconds - other
    name = result["variant"].upper()
    lines = [f"{name}: of the profiled steady epoch ({profiled:.3f} s; timed without the profiler: "
             f"{timed:.3f} s), matrix products {seconds:.3f} s ({100 * seconds / profiled:.0f} %: "
             f"{flops / 1e9:.1f} GFLOP at {rate_all:.1f} GFLOP/s, {100 * rate_all / peak:.0f} % of the "
             f"peak), every other operator's own time {other:.3f} s ({100 * other / profiled:.0f} %), the "
             f"rest (Python, files, the profiler's own cost) {rest:.3f} s ({100 * rest / profiled:.0f} %)",
             "",
             "| product | calls per epoch | s/epoch | GFLOP/s | of peak |", "|---|---|---|---|---|"]
    for p in shapes[:top]:
        lines.append(f"| {p['op']} ({'×'.join(map(str, p['a']))}) · ({'×'.join(map(str, p['b']))}) "
                     f"| {p['calls']:.0f} | {p['s']:.3f} | {rate(p['flops'], p['s'])} |")
    rest = shapes[top:]
    if rest:
        calls, s, f = (sum(p[k] for p in rest) for k in ("calls", "s", "flops"))
        lines.append(f"| {len(rest)} other shapes | {calls:.0f} | {s:.3f} | {rate(f, s)} |")
    return lines + [""]


def combine_seeds(runs: list[dict]) -> dict:
    """One variant's runs over seeds as one result: the first run's fields, with s/epoch the median of
    the runs', quality (PSNR, zeros) and FISTA passes the mean, ``psnr_sd`` / ``sparsity_sd`` the sample
    std and ``runs`` each run's seed, s/epoch and quality. One run is returned as it is."""
    if len(runs) == 1:
        return runs[0]
    combined = dict(runs[0])
    combined["s_per_epoch"] = statistics.median(r["s_per_epoch"] for r in runs)
    combined["fista_iterations"] = statistics.mean(r["fista_iterations"] for r in runs)
    for key in ("psnr", "sparsity"):
        combined[key] = statistics.mean(r[key] for r in runs)
        combined[f"{key}_sd"] = statistics.stdev(r[key] for r in runs)
    combined["runs"] = [{k: r.get(k) for k in ("seed", "s_per_epoch", "psnr", "sparsity")} for r in runs]
    return combined


def pair_speedups(theirs_runs: list[dict], ours_runs: list[dict]) -> list[float]:
    """Their s/epoch over ours, seed by seed: each pair ran back to back (theirs, then ours with the same
    seed offset), so a pair shares the machine's state of those minutes, which the medians do not."""
    return [t["s_per_epoch"] / o["s_per_epoch"] for t, o in zip(theirs_runs, ours_runs, strict=True)]


def pair_lines(results: list[dict]) -> list[str]:
    """One line per variant with several seeds: the per-pair speed-ups, their median and range."""
    lines = []
    for r in results:
        ratios = r.get("pair_speedups", [])
        if len(ratios) > 1:
            lines.append(f"- {r['variant'].upper()}: " + ", ".join(f"{x:.2f}" for x in ratios)
                         + f" (median {statistics.median(ratios):.2f}, range {min(ratios):.2f}–"
                         f"{max(ratios):.2f})")
    if not lines:
        return []
    heading = "Speed-up per seed (their run, then ours with the same seed offset, back to back):"
    return ["", heading, ""] + lines


def profile_lines(result: dict, parts: dict[str, float]) -> list[str]:
    """A markdown table of one variant's profile: seconds per epoch, share, useful GFLOP/s where counted."""
    profile, n = result["profile"], result["n_train"]
    # forward = ⅓ and backward = ⅔ of the 6-FLOP-per-weight step counts
    flops = {"FISTA": parts["fista"], "encoder forward": parts["encoder_step"] / 3,
             "decoder forward, losses, logs": parts["decoder_step"] / 3,
             "backward, Adam, projection": 2 * (parts["decoder_step"] + parts["encoder_step"]) / 3}
    lines = [f"{result['variant'].upper()} (λ {result['lam']:g}): {profile['total']:.3f} s per steady epoch",
             "", "| part | s/epoch | share | useful GFLOP/s |", "|---|---|---|---|"]
    for key, seconds in profile.items():
        if key == "total":
            continue
        rate = f"{n * flops[key] / seconds / 1e9:.1f}" if key in flops and seconds > 0 else ""
        lines.append(f"| {key} | {seconds:.3f} | {100 * seconds / profile['total']:.0f} % | {rate} |")
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="sdl,vdl,vdl-nl",
                        help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--epochs", type=at_least(2), default=10,
                        help="at least 2: the first epoch is warm-up; steady state is epochs 2…N")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", default="/tmp/sparsecoder-bench-training",
                        help="run folders and results.json (outside the source tree): a new or empty folder, "
                             "or one this script wrote before (its run folders are replaced)")
    parser.add_argument("--reference", type=Path, default=None,
                        help="the authors' deep-sparse checkout (../shared/ds-bench/setup.sh): run it "
                             "side by side, one variant at a time, theirs then ours")
    parser.add_argument("--ds-bench", type=Path, default=DEFAULT_DS_BENCH,
                        help="the side-by-side kit (run_timed.py, shim/); default ../shared/ds-bench")
    parser.add_argument("--table", type=Path, default=None, help="markdown table file (default OUT/table.md)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --table file")
    parser.add_argument("--train-samples", type=at_least(0), default=3750,
                        help="training digits for both tools (the first of our split): 3,750 = 15 whole "
                             "batches of 250, what the authors' loader uses per epoch; 0 = all 3,929")
    parser.add_argument("--threads", type=at_least(1), default=1,
                        help="torch threads for our training (num_threads; the authors' code always runs on "
                             "one); the matmul peak and the table stay single-thread figures")
    parser.add_argument("--seeds", type=at_least(1), default=1,
                        help="train each tool this many times per variant (seeds: the script's / preset's "
                             "+ 0…K−1, ours on one split): quality as mean ± std over seeds, s/epoch the "
                             "median of the runs; the profile is the first run's")
    parser.add_argument("--profile", action="store_true",
                        help="split our steady epoch into FISTA / encoder / decoder step / validation / "
                             "checkpoint / other (timers around those functions)")
    parser.add_argument("--products", action="store_true",
                        help="CPU: one more 3-epoch run per variant under torch.profiler: our steady epoch's "
                             "matrix products by shape (calls, s, GFLOP/s, of peak) and the other operators")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    if not variants:
        parser.error(f"--variants names no variant; choose from {', '.join(VARIANTS)}")
    repeated = sorted({v for v in variants if variants.count(v) > 1})
    if repeated:  # the second run would replace the first's folder and both would be in the table
        parser.error(f"--variants names {', '.join(repeated)} more than once; use --seeds to train again")
    if args.products and args.device != "cpu":
        parser.error("--products profiles CPU operators (a GPU's products run asynchronously): use it with "
                     "--device cpu")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible to torch; use --device cpu")
    if args.reference is not None:
        if not (args.reference / "main.py").is_file() or not (args.reference / "scripts").is_dir():
            parser.error(f"--reference {args.reference}: no main.py and scripts/ there; export the authors' "
                         f"code with ../shared/ds-bench/setup.sh first")
        scripts = {p.name for p in (args.reference / "scripts").iterdir()}
        missing = sorted({REFERENCE[v][0] for v in variants} - scripts)
        if missing:
            parser.error(f"--reference {args.reference}: no scripts/{', scripts/'.join(missing)} there (not "
                         f"the authors' deep-sparse checkout?); export it with ../shared/ds-bench/setup.sh")
        if args.device != "cpu" or args.threads != 1:
            parser.error("--reference times the authors' code on one CPU thread (their --cuda flag is "
                         "dropped): a speed-up needs ours the same, --device cpu --threads 1")
        if not (args.ds_bench / "run_timed.py").is_file():
            parser.error(f"--ds-bench {args.ds_bench}: no run_timed.py there (the side-by-side kit)")
        require_module(parser, "tensorboardX", "--reference (the authors' code logs through it)")
    out = output_folder(parser, args.out, __file__)
    table_path = output_file(parser, args.table or out / "table.md", "--table",
                             overwrite=args.overwrite or args.table is None)
    torch.set_num_threads(1)
    train_samples = args.train_samples or None
    sizes = None
    if args.reference is not None:
        sizes = write_reference_data(out / "data", train_samples=train_samples)

    from sparsecoder.train import load_run

    # the machine's matmul rate drifts by up to ±15 % within minutes here: the peak is sampled before the
    # benchmark and again right before each of our runs, and the highest sample is the one used
    peaks = [matmul_peak_gflops(args.device)]
    results, theirs = [], {}
    for name in variants:
        theirs_runs, ours_runs = [], []
        for offset in range(args.seeds):  # theirs then ours, seed by seed
            lam = None
            if args.reference is not None:
                theirs_runs.append(run_reference(name, args.epochs, args.reference, args.ds_bench,
                                                 out / "data", sizes, out, seed_offset=offset))
                lam = theirs_runs[-1]["lam"]
                print(json.dumps({"theirs": {k: v for k, v in theirs_runs[-1].items() if k != "flags"}}),
                      flush=True)
            peaks.append(matmul_peak_gflops(args.device))
            run = run_variant(name, args.epochs, args.device, out, lam, train_samples,
                              args.profile and offset == 0, args.threads, seed_offset=offset)
            config, run_model = load_run(Path(run["run_dir"]))[:2]
            if offset == 0:
                model = run_model  # the FLOP count's
            if sizes is not None:  # quality on the test digits their evaluation uses (whole batches)
                run["psnr_all_test"], run["sparsity_all_test"] = run["psnr"], run["sparsity"]
                run["psnr"], run["sparsity"] = encoder_quality(config, run_model, sizes["test"] // 250 * 250)
            ours_runs.append(run)
        if theirs_runs:
            theirs[name] = combine_seeds(theirs_runs)
        result = combine_seeds(ours_runs)
        if theirs_runs:
            result["pair_speedups"] = pair_speedups(theirs_runs, ours_runs)
        if args.products:  # after the timed runs: the profiler's run is not one of them
            result["products"] = product_profile(name, args.device, out, ours_runs[0]["lam"], train_samples,
                                                 args.threads)
        parts = useful_flops_per_sample(model, result["fista_iterations"])
        # useful work = training samples only; validation, logging and checkpoints count as overhead
        flops = result["n_train"] * sum(parts.values())
        result["useful_gflops"] = flops / result["s_per_epoch"] / 1e9
        result["flops_per_sample"] = parts
        results.append(result)
        print(json.dumps(result), flush=True)

    for result in results:
        result["fraction_of_peak"] = result["useful_gflops"] / max(peaks)
    load = " ".join(f"{x:.1f}" for x in _load_average())
    lines = [
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, device {args.device}, ours on {args.threads} thread(s), "
        f"{args.epochs} epochs, load average {load}; single-thread float32 torch.mm peak {max(peaks):.0f} "
        f"GFLOP/s (the highest of {len(peaks)} samples, one before the benchmark and one before each of "
        f"our runs; the lowest {min(peaks):.0f})",
        "",
    ]
    def mark(t):
        return "" if t["quality_source"].startswith("test") else f" ({t['quality_source']})"

    def delta(ours, authors):  # not for DO, whose logged quality is of other codes
        if mark(authors):
            return "—"
        return (f"{ours['psnr'] - authors['psnr']:+.2f} dB / "
                f"{100 * (ours['sparsity'] - authors['sparsity']):+.1f}")

    def quality(run):
        if "psnr_sd" not in run:
            return f"{run['psnr']:.2f} / {100 * run['sparsity']:.1f} %"
        return (f"{run['psnr']:.2f} ± {run['psnr_sd']:.2f} / {100 * run['sparsity']:.1f} ± "
                f"{100 * run['sparsity_sd']:.1f} %")

    if theirs:
        if args.seeds > 1:
            lines += [f"{args.seeds} seeds per tool (theirs: their script's seed + 0…{args.seeds - 1}; ours: "
                      f"the preset's seed + 0…{args.seeds - 1} on the preset seed's split): s/epoch is the "
                      f"median of the runs, quality the mean ± sample std over seeds, Δ the difference of "
                      f"the means.", ""]
        lines += ["| variant | λ | authors' code s/epoch | ours s/epoch | speed-up | test PSNR / zeros, "
                  "authors' → ours | Δ PSNR / zeros, ours − authors' | FISTA passes per sample, "
                  "authors' / ours | ours: useful GFLOP/s, of peak |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in results:
            t = theirs[r["variant"]]
            lines.append(f"| {r['variant'].upper()} | {r['lam']:g} | {t['s_per_epoch']:.2f} "
                         f"| {r['s_per_epoch']:.2f} "
                         f"| {t['s_per_epoch'] / r['s_per_epoch']:.1f}× "
                         f"| {quality(t)}{mark(t)} → {quality(r)} "
                         f"| {delta(r, t)} "
                         f"| {t['fista_iterations']:.1f} / {r['fista_iterations']:.1f} "
                         f"| {r['useful_gflops']:.1f}, {100 * r['fraction_of_peak']:.0f} % |")
        lines += pair_lines(results)
    else:
        lines += ["| variant | λ | s/epoch | FISTA iterations | test PSNR | zeros | useful GFLOP/s "
                  "| of peak |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in results:
            lines.append(f"| {r['variant']} | {r['lam']:g} | {r['s_per_epoch']:.2f} "
                         f"| {r['fista_iterations']:.1f} | {quality(r).replace(' / ', ' | ')} "
                         f"| {r['useful_gflops']:.1f} "
                         f"| {100 * r['fraction_of_peak']:.0f} % |")
    if args.profile:
        lines += ["", "Where our steady epoch goes (`--profile`):", ""]
        for r in results:
            lines += profile_lines(r, r["flops_per_sample"])
    if args.products:
        lines += ["", "Matrix products of our steady epoch (`--products`: torch.profiler over epochs 2–3 "
                  "of a separate 3-epoch run):", ""]
        for r in results:
            lines += product_lines(r, r["products"], max(peaks))
    table = "\n".join(lines) + "\n"
    write_text(out / "results.json",
               json.dumps({"ours": results, "theirs": theirs, "peaks": peaks}, indent=2))
    write_text(table_path, table)
    print(table)
    return 0


@torch.no_grad()
def encoder_quality(config, model, n_test: int) -> tuple[float, float]:
    """Test PSNR (pixel space) and fraction of zero codes of a run's model (``load_run``: best-validation
    weights) on the first ``n_test`` test digits of its data: the encoder's codes, FISTA's for DO (as
    ``metrics.json``)."""
    from sparsecoder.eval.metrics import psnr, sparsity
    from sparsecoder.train.trainer import load_data

    split = load_data(config).test.subset(slice(0, n_test))
    x = split.x.to(model.device, torch.float32)
    codes = model.encode(x)
    return float(psnr(split.to_pixels(x), split.to_pixels(model.decoder(codes)))), float(sparsity(codes))


def _load_average() -> tuple[float, float, float]:
    try:
        import os

        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


if __name__ == "__main__":
    raise SystemExit(main())
