"""Time-to-objective of online dictionary learning: ours vs SPAMS ``trainDL`` vs scikit-learn.

Problems (one thread each: ``torch.set_num_threads(1)``, numba 1 thread, ``OPENBLAS_NUM_THREADS=1``, SPAMS
``numThreads=1``):

(a) MNIST: the embedded digits of ``sparsecoder.data.load("mnist")`` (train + val = 4,286 training rows,
    the 714 test rows held out; the loader's global standardisation ``(x/255 − 0.1307)/0.3081``),
    128 atoms, non-negative codes, α = 784·5e-3/2 = 1.96.
(b) whitened patches: ``sparsecoder.data.load("whitened_patches")`` (16×16, 20,000 training / 2,000 test
    rows), 450 atoms, signed codes, α = 256·5e-3/2 = 0.64.

Quality is one function for every learner (:func:`sparsecoder.dictionary.dictionary_objective`): the mean
held-out lasso objective ``½||x − zD||² + α||z||₁`` of exact codes (active set, float64) with every atom
rescaled to unit norm. Time is training time only (evaluation excluded). SPAMS and scikit-learn are run
afresh for each number of epochs (their time includes their set-up); ours is one run evaluated between
quarter epochs. Prints a markdown table and writes a PNG of the curves.

Usage: ``python benchmarks/bench_dictionary_learning.py [--problems mnist patches] [--plot FILE]``
"""

from __future__ import annotations

import os

# one thread for every learner, whatever the caller's environment says (the table is "1 thread" each)
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import io  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import at_least, optional_module, output_file  # noqa: E402

import sparsecoder  # noqa: E402
from sparsecoder.dictionary import (  # noqa: E402
    OnlineDictionaryLearner,
    dictionary_objective,
    initial_dictionary,
    new_memory,
    run_epoch,
)
from sparsecoder.io import atomic_write_bytes  # noqa: E402

PROBLEMS = {
    "mnist": dict(source="mnist", n_components=128, alpha=784 * 5e-3 / 2, positive=True),
    "patches": dict(source="whitened_patches", n_components=450, alpha=256 * 5e-3 / 2, positive=False),
}


def load(problem):
    splits = sparsecoder.load_data(problem["source"])
    train = torch.cat([splits.train.x, splits.val.x]) if problem["source"] == "mnist" else splits.train.x
    return train.numpy().astype(np.float64), splits.test.x.numpy().astype(np.float64)


def ours(X, X_test, problem, epochs, batch_size, seed=0, dtype=np.float32, evaluate_every=0.25, exact=True,
         n_sweeps=1, weight_power=4.0):
    """One run; (seconds, held-out objective) after every ``evaluate_every`` epoch."""
    rng = np.random.default_rng(seed)
    data = np.ascontiguousarray(X, dtype=dtype)
    started = time.perf_counter()
    atoms = initial_dictionary(data, problem["n_components"], rng)
    learner = OnlineDictionaryLearner(atoms, problem["alpha"], positive_code=problem["positive"], rng=rng,
                                      n_sweeps=n_sweeps,
                                      weight_power=weight_power)
    memory = new_memory(data.shape[0], problem["n_components"], dtype, exact_statistics=exact)
    elapsed = time.perf_counter() - started
    curve = []
    n = data.shape[0]
    chunk = max(batch_size, int(round(evaluate_every * n / batch_size)) * batch_size)
    done = 0.0
    while done < epochs - 1e-9:
        started = time.perf_counter()
        order = rng.permutation(n)
        for first in range(0, n, chunk):  # an epoch in chunks, evaluated between chunks
            index = order[first:first + chunk]
            sub_memory = {key: value[index] for key, value in memory.items()}
            run_epoch(learner, data[index], batch_size, rng, shuffle=False, memory=sub_memory)
            for key, value in sub_memory.items():
                memory[key][index] = value
            elapsed += time.perf_counter() - started
            done += len(index) / n
            curve.append((elapsed, dictionary_objective(X_test, learner.components, problem["alpha"],
                                                        positive=problem["positive"]), done))
            started = time.perf_counter()
    return curve, learner.n_redrawn


def peers(skip_sklearn=False):
    """The competitors' runs by label: SPAMS ``trainDL`` when ``spams`` is installed (a note says it is
    skipped otherwise), scikit-learn unless ``skip_sklearn``."""
    runs = {}
    if optional_module("spams", "the SPAMS trainDL column") is not None:
        runs["SPAMS trainDL (batch 512)"] = spams_run
    if not skip_sklearn:
        runs["scikit-learn MBDL (cd, batch 256)"] = sklearn_run
    return runs


def spams_run(X, X_test, problem, epochs, batch_size=512):
    import spams

    data = np.asfortranarray(X.T)
    iterations = int(np.ceil(epochs * X.shape[0] / batch_size))
    started = time.perf_counter()
    D = spams.trainDL(data, K=problem["n_components"], lambda1=problem["alpha"], iter=iterations,
                      batchsize=batch_size, numThreads=1, posAlpha=problem["positive"], verbose=False)
    seconds = time.perf_counter() - started
    value = dictionary_objective(X_test, np.asarray(D).T, problem["alpha"], positive=problem["positive"])
    return seconds, value


def sklearn_run(X, X_test, problem, epochs, batch_size=256, seed=0):
    from sklearn.decomposition import MiniBatchDictionaryLearning

    model = MiniBatchDictionaryLearning(
        n_components=problem["n_components"], alpha=problem["alpha"], max_iter=epochs, fit_algorithm="cd",
        batch_size=batch_size, positive_code=problem["positive"], tol=0.0, max_no_improvement=None,
        random_state=seed,
    )
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    seconds = time.perf_counter() - started
    return seconds, dictionary_objective(X_test, model.components_, problem["alpha"],
                                         positive=problem["positive"])


def time_to_reach(curve, target):
    """First time our curve reaches ``target`` (linear interpolation between evaluations), or None."""
    previous_time, previous_value = 0.0, None
    for seconds, value, _ in curve:
        if value <= target:
            if previous_value is None or previous_value == value:
                return seconds
            fraction = (previous_value - target) / (previous_value - value)
            return previous_time + fraction * (seconds - previous_time)
        previous_time, previous_value = seconds, value
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--epochs", type=at_least(1), default=5)
    parser.add_argument("--batch-size", type=at_least(1), default=256, help="our mini-batch size")
    parser.add_argument("--peer-epochs", type=at_least(1), nargs="+", default=[1, 2, 3, 5])
    parser.add_argument("--skip-sklearn", action="store_true")
    parser.add_argument("--plot", default=None, help="PNG file for the curves")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --plot file")
    args = parser.parse_args(argv)
    output_file(parser, args.plot, "--plot", overwrite=args.overwrite)
    runs = peers(args.skip_sklearn)
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    # compile the numba kernels before any timing
    warm = np.random.default_rng(0).standard_normal((64, 16))
    ours(warm, warm, dict(n_components=8, alpha=0.5, positive=False), 1, 32)
    ours(warm, warm, dict(n_components=8, alpha=0.5, positive=True), 1, 32)

    rows, curves = [], {}
    for name in args.problems:
        problem = PROBLEMS[name]
        X, X_test = load(problem)
        curve, redrawn = ours(X, X_test, problem, args.epochs, args.batch_size)
        points = {peer: [(e, *run(X, X_test, problem, e)) for e in args.peer_epochs]
                  for peer, run in runs.items()}
        curves[name] = (curve, points)
        for seconds, value, epochs in curve:
            if abs(epochs - round(epochs)) < 1e-9:
                label = f"ours (batch {args.batch_size}, f32)"
                rows.append((name, label, f"{epochs:.0f}", seconds, value, ""))
        rows.append((name, "ours: dead atoms re-drawn", "", float("nan"), float("nan"), str(redrawn)))
        for peer, peer_points in points.items():
            for epochs, seconds, value in peer_points:
                note = ""
                if epochs == max(args.peer_epochs):
                    reach = time_to_reach(curve, value)
                    note = ("ours never reached it" if reach is None else
                            f"ours reach it in {reach:.2f} s = {reach / seconds:.2f}× this time")
                rows.append((name, peer, str(epochs), seconds, value, note))
        print(f"[{name}] done", flush=True)
    print(f"\n{X.shape} … load: {os.getloadavg()}\n")
    print("| problem | learner | epochs | training s | held-out objective | note |")
    print("|---|---|---|---|---|---|")
    for name, learner, epochs, seconds, value, note in rows:
        print(f"| {name} | {learner} | {epochs} | {seconds:.2f} | {value:.4f} | {note} |".replace("nan", ""))
    if args.plot:
        plot(curves, args.plot)


def plot(curves, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 4.2), squeeze=False)
    for axis, (name, (curve, points)) in zip(axes[0], curves.items(), strict=True):
        axis.plot([c[0] for c in curve], [c[1] for c in curve], "o-", ms=3, label="sparsecoder (ours)")
        for peer, peer_points in points.items():
            axis.plot([p[1] for p in peer_points], [p[2] for p in peer_points],
                      "s-" if peer.startswith("SPAMS") else "^-", label=peer.split(" (")[0])
        axis.set_xscale("log")
        axis.set_xlabel("training time (s, 1 thread)")
        axis.set_ylabel("held-out lasso objective (lower is better)")
        axis.set_title(PROBLEMS[name]["source"] + f", {PROBLEMS[name]['n_components']} atoms")
        values = [c[1] for c in curve] + [p[2] for peer_points in points.values() for p in peer_points]
        low = min(values)
        axis.set_ylim(low - 0.002 * abs(low), np.percentile(values, 90) + 0.002 * abs(low))
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=110)
    atomic_write_bytes(Path(path), image.getvalue())  # an interrupted run never leaves half a PNG


if __name__ == "__main__":
    main()
