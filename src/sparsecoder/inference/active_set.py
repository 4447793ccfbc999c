r"""Exact lasso codes on the CPU by an active-set solver (numba), for many samples over one dictionary.

For every row ``b = D x`` of ``correlations`` it finds the exact minimiser of

.. math:: \tfrac12 z^\top G z - z^\top b + \alpha\lVert z\rVert_1 \qquad (z \ge 0 \text{ if positive}),
          \quad G = D D^\top,

which is scikit-learn's ``sparse_encode`` objective ``½||x − z D||² + α||z||₁`` up to a constant. Per sample:

1. **Working set.** Start from ``z = 0`` and an empty working set ``A``. Add the atoms that violate the
   optimality (KKT) condition ``|c_j| ≤ α`` (``c_j ≤ α`` when positive), ``c = b − G z``, the most violating
   first, at most ``max(8, nnz(z))`` per round (a doubling schedule, as in glmnet's strong-set and
   Blitz/Celer working sets).
2. **Inner solve on A.** Cyclic coordinate descent on the small ``|A|×|A|`` block of ``G`` (correlations kept
   for ``A`` only). Once a sweep leaves the sign pattern unchanged, jump to the exact minimiser on that
   pattern: solve ``G_SS u = b_S − α sign(z_S)`` on the support ``S`` with a Cholesky factor that is
   updated, not recomputed (an appended atom costs a triangular solve, a removed one a sweep of Givens
   rotations). If ``u`` keeps the signs, it is the exact minimiser over codes supported on ``S``;
   otherwise step from ``z`` towards ``u`` up to the first coordinate that reaches zero (the objective
   decreases along the segment), drop that coordinate and repeat (feature-sign search, Lee et al. 2007,
   "Efficient sparse coding algorithms"). The inner solve is exact when the remaining atoms of ``A``
   satisfy the KKT condition.
3. **Certificate.** Recompute ``c = b − G z`` for all atoms (``k·nnz`` work) and stop when no atom outside
   ``A`` violates it; else go to 1.

So a returned code satisfies ``|c_j| ≤ α(1 + 1e-7)`` for every zero coordinate and solves the linear system
of its support in float64: it is the lasso solution to rounding, not to a tolerance. (Where the support's
atoms are linearly dependent there is no Cholesky factor: the codes move along the null direction of the
dependent atom, which keeps ``z D``, in the direction that does not raise ``||z||₁``, until an atom leaves
the support, :func:`_null_step`; coordinate descent alone crawled there, overcomplete dictionaries at small
``alpha``.) Work per sample is
about ``k·nnz`` per round plus ``|A|²`` per sweep, independent of the conditioning of ``G`` that slows
first-order methods on learned (coherent) dictionaries.

**Threads.** The calling thread and ``numba.get_num_threads() − 1`` helper threads (ordinary Python
threads running the ``nogil`` kernel) claim rows one at a time from an atomic counter; the caller waits
only for rows a helper has claimed and not finished. A fork-join team (OpenMP, numba's ``prange``) instead
makes every call wait until all its threads have been scheduled and reach the closing barrier: on a busy
machine that cost milliseconds per call, more than the whole work of a 250-sample call (issue 14). When
``G`` is not given it is computed by the same threads in the same call (rows of ``G`` claimed the same
way, float64 sums of exact products).
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import torch
from numba.core import cgutils, types
from numba.extending import intrinsic

__all__ = ["lasso_active_set", "gram_matrix", "numba_threads", "cached_njit"]

_KKT_TOL = 1e-7  # a zero coordinate is optimal when |c_j| ≤ α (1 + _KKT_TOL)
_CD_TOL = 1e-12  # coordinate descent alone counts as converged when max |Δz| ≤ _CD_TOL · max |z|
_FIRST_BATCH = 8  # atoms added to the working set per round: max(_FIRST_BATCH, nnz)
_PIVOT_FLOOR = 1e-10  # an atom whose Cholesky pivot falls below this (relative) is linearly dependent

# Working-set room each thread allocates first (doubled, and the sample restarted, when a working set
# outgrows it): 64 atoms keep a thread's Gram block and Cholesky factor (~66 kB) in the allocator's reused
# heap; 256 (~1 MB, mmap-ed and page-faulted afresh by every thread of every call) cost more than solving
# 250 sparse samples.
_FIRST_CAPACITY = 64

# status codes of _solve_sample
_DONE, _MAX_SWEEPS, _NEED_ROOM = 0, 1, 2

_uncached_warned = False  # the warning of cached_njit is given once


def cached_njit(**options):
    """``numba.njit(cache=True, **options)``, or without the on-disk cache where numba finds no writable
    folder for it (an install in read-only site-packages run by a user without a writable home: numba
    raises "cannot cache function ...: no locator available" when the function is decorated, so importing
    the package failed); the functions are then compiled in every process, and a warning says how to keep
    them (``NUMBA_CACHE_DIR``). Every compiled kernel of the package is decorated with it."""
    def decorate(function):
        try:
            return numba.njit(cache=True, **options)(function)
        except RuntimeError as err:
            if "cannot cache function" not in str(err):
                raise
            global _uncached_warned
            if not _uncached_warned:  # once, not for each function
                _uncached_warned = True
                warnings.warn(f"numba cannot cache sparsecoder's compiled kernels ({err}); they are "
                              f"compiled again in every process (tens of seconds): set NUMBA_CACHE_DIR to a "
                              f"writable folder to keep them", RuntimeWarning, stacklevel=2)
            return numba.njit(**options)(function)
    return decorate


@cached_njit(inline="always")
def _shrink(v, threshold, positive):
    if v > threshold:
        return v - threshold
    if positive or v >= -threshold:
        return 0.0
    return v + threshold


@cached_njit(fastmath=True)
def _cholesky_remove(L, s, r):
    """Remove row and column ``r`` from the ``s×s`` lower Cholesky factor ``L`` in place (Givens)."""
    for i in range(r, s - 1):
        for t in range(i + 2):
            L[i, t] = L[i + 1, t]
    for j in range(r, s - 1):
        a = L[j, j]
        b = L[j, j + 1]
        norm = np.sqrt(a * a + b * b)
        c = a / norm
        sn = b / norm
        for i in range(j, s - 1):
            x = L[i, j]
            y = L[i, j + 1]
            L[i, j] = c * x + sn * y
            L[i, j + 1] = c * y - sn * x
        L[j, j + 1] = 0.0


@cached_njit(fastmath=True)
def _cholesky_append(L, s, GA, F, p, w):
    """Append working-set atom ``p`` to the factor of ``GA[F[:s], F[:s]]``; False if it is dependent."""
    total = 0.0
    for i in range(s):
        acc = GA[p, F[i]]
        for t in range(i):
            acc -= L[i, t] * w[t]
        w[i] = acc / L[i, i]
        total += w[i] * w[i]
    pivot = GA[p, p] - total
    if pivot <= _PIVOT_FLOOR * GA[p, p]:
        return False
    for t in range(s):
        L[s, t] = w[t]
    L[s, s] = np.sqrt(pivot)
    return True


@cached_njit(fastmath=True)
def _null_step(alpha, s, p, zA, cA, GA, L, F, w, u, m):
    """Atom ``p`` (non-zero code) depends linearly on the factored support ``F[:s]`` (``_cholesky_append``
    left ``w = L⁻¹ G_{S,p}``): ``v = e_p − Σ y_i e_{F_i}`` with ``y = G_SS⁻¹ G_{S,p}`` keeps ``z D`` (to the
    pivot's rounding), so along ``±v`` only the L1 term moves, linearly while the signs hold. Step in the
    direction where the objective does not increase up to the first code that reaches zero, so that the
    support loses one dependent atom; returns False (nothing changed) if the exact change of the objective
    is positive (rounding)."""
    for i in range(s - 1, -1, -1):  # y = L⁻ᵀ w, into u
        acc = w[i]
        for t in range(i + 1, s):
            acc -= L[t, i] * u[t]
        u[i] = acc / L[i, i]
    # directional derivative of ½zᵀGz − bᵀz + α||z||₁ along v: Σ v_j (−c_j + α sign z_j)
    slope = -cA[p] + (alpha if zA[p] > 0.0 else -alpha)
    for i in range(s):
        q = F[i]
        slope -= u[i] * (-cA[q] + (alpha if zA[q] > 0.0 else -alpha))
    direction = -1.0 if slope > 0.0 else 1.0
    step = -zA[p] / direction  # v_p = 1
    hit = -1
    if step <= 0.0:
        step = np.inf
    for i in range(s):
        move = -direction * u[i]
        if move != 0.0:
            crossing = -zA[F[i]] / move
            if 0.0 < crossing < step:
                step = crossing
                hit = i
    if not step < np.inf:
        return False
    # exact change of the objective along t·direction·v: −t c·v + t²/2 vᵀGv + α(||z + t v||₁ − ||z||₁)
    t = step * direction
    cv = cA[p]
    quad = GA[p, p]
    l1 = abs(zA[p] + t) - abs(zA[p]) if hit >= 0 else -abs(zA[p])
    for i in range(s):
        q = F[i]
        cv -= u[i] * cA[q]
        quad -= 2.0 * u[i] * GA[p, q]
        for j in range(s):
            quad += u[i] * u[j] * GA[q, F[j]]
        l1 += (0.0 if i == hit else abs(zA[q] - t * u[i])) - abs(zA[q])
    if -t * cv + 0.5 * t * t * max(quad, 0.0) + alpha * l1 > 0.0:
        return False
    for i in range(-1, s):
        q = p if i < 0 else F[i]
        target = zA[q] + (t if i < 0 else -t * u[i])
        if (i < 0 and hit < 0) or i == hit:
            target = 0.0
        delta = target - zA[q]
        if delta != 0.0:
            for r in range(m):
                cA[r] -= delta * GA[q, r]
            zA[q] = target
    return True


@cached_njit(fastmath=True)
def _inner_solve(alpha, positive, max_sweeps, sweeps, bound, m, s, zA, cA, bA, inv_diag, GA, L, F, posF,
                 u, w):
    """Solve the lasso restricted to the working set (its first ``m`` atoms); returns (sweeps, s, ok)."""
    while sweeps < max_sweeps:
        sweeps += 1
        largest_move = 0.0
        largest_code = 0.0
        pattern_changed = False
        for p in range(m):  # one coordinate-descent sweep
            old = zA[p]
            new = _shrink(old + cA[p] * inv_diag[p], alpha * inv_diag[p], positive)
            delta = new - old
            if delta != 0.0:
                for q in range(m):
                    cA[q] -= delta * GA[p, q]
                zA[p] = new
                if (old > 0.0) != (new > 0.0) or (old < 0.0) != (new < 0.0):
                    pattern_changed = True
                largest_move = max(largest_move, abs(delta))
            largest_code = max(largest_code, abs(new))
        if largest_move <= _CD_TOL * largest_code:
            return sweeps, s, True
        if pattern_changed:
            continue
        # Newton / feature-sign steps on the support
        for _ in range(m + 1):
            for i in range(s - 1, -1, -1):  # drop what left the support (from the end)
                p = F[i]
                if zA[p] == 0.0:
                    _cholesky_remove(L, s, i)
                    s -= 1
                    for t in range(i, s):
                        F[t] = F[t + 1]
                        posF[F[t]] = t
                    posF[p] = -1
            dependent = -1
            for p in range(m):
                if zA[p] != 0.0 and posF[p] < 0:
                    if not _cholesky_append(L, s, GA, F, p, w):
                        dependent = p
                        break
                    F[s] = p
                    posF[p] = s
                    s += 1
            if dependent >= 0:
                # a support of dependent atoms has no Newton step and coordinate descent crawls on it
                # (overcomplete dictionaries at small alpha): move along the null direction until an atom
                # leaves, then factor again
                if _null_step(alpha, s, dependent, zA, cA, GA, L, F, w, u, m):
                    continue
                break  # back to coordinate descent
            if s == 0:
                break
            for i in range(s):  # L Lᵀ u = b_S − α sign(z_S)
                p = F[i]
                acc = bA[p] - (alpha if zA[p] > 0.0 else -alpha)
                for t in range(i):
                    acc -= L[i, t] * u[t]
                u[i] = acc / L[i, i]
            for i in range(s - 1, -1, -1):
                ui = u[i] / L[i, i]
                u[i] = ui
                for t in range(i):
                    u[t] -= L[i, t] * ui
            step = 1.0  # towards u, up to the first coordinate that reaches zero
            hit = -1
            for i in range(s):
                zi = zA[F[i]]
                if u[i] * zi <= 0.0:
                    crossing = zi / (zi - u[i])
                    if crossing < step:
                        step = crossing
                        hit = i
            for i in range(s):
                p = F[i]
                delta = -zA[p] if i == hit else step * (u[i] - zA[p])
                if delta != 0.0:
                    for q in range(m):
                        cA[q] -= delta * GA[p, q]
                    zA[p] = 0.0 if i == hit else zA[p] + delta
            if hit >= 0:
                continue
            solved = True  # exact on the support: the rest of the working set must satisfy KKT
            for p in range(m):
                if zA[p] == 0.0:
                    v = cA[p] if positive else abs(cA[p])
                    if v > bound:
                        solved = False
                        break
            if solved:
                return sweeps, s, True
            break
    return sweeps, s, False


@cached_njit(inline="always")
def _enter(G, b, j, value, m, idx, in_set, zA, bA, inv_diag, posF):
    """Put atom ``j`` at position ``m`` of the working set with code ``value`` (outside the factor)."""
    idx[m] = j
    in_set[j] = True
    zA[m] = value
    bA[m] = b[j]
    inv_diag[m] = 1.0 / G[j, j]
    posF[m] = -1


@cached_njit(inline="always")
def _fill_gram_block(G, idx, GA, first, m):
    """Rows and columns ``first:m`` of the working set's Gram block ``GA = G[idx[:m], idx[:m]]``."""
    for p in range(first, m):
        row = idx[p]
        for q in range(m):
            value = G[row, idx[q]]
            GA[p, q] = value
            GA[q, p] = value


@cached_njit(fastmath=True)
def _solve_sample(G, b, alpha, positive, max_sweeps, z,
                  idx, in_set, zA, cA, bA, inv_diag, GA, L, F, posF, u, w, order, score, c):
    """Solve one sample (``b`` = its correlations) into ``z``, which holds the warm start on entry (zeros
    for none); returns (status, sweeps used)."""
    k = G.shape[0]
    capacity = GA.shape[0]
    bound = alpha * (1.0 + _KKT_TOL)
    m = 0  # working-set size
    s = 0  # atoms in the Cholesky factor, F[:s] (positions in the working set)
    for j in range(k):  # the warm start's support is the first working set
        in_set[j] = False
        # a zero atom (G_jj = 0) never enters: its optimal code is 0 and coordinate descent divides by G_jj
        if G[j, j] > 0.0 and (z[j] > 0.0 or (z[j] < 0.0 and not positive)):
            if m == capacity:
                return _NEED_ROOM, 0
            _enter(G, b, j, z[j], m, idx, in_set, zA, bA, inv_diag, posF)
            m += 1
        z[j] = 0.0
    _fill_gram_block(G, idx, GA, 0, m)
    for p in range(m):
        acc = bA[p]
        for q in range(m):
            acc -= GA[p, q] * zA[q]
        cA[p] = acc
    sweeps = 0
    status = _DONE
    solve = m > 0
    while True:
        if solve:
            sweeps, s, ok = _inner_solve(alpha, positive, max_sweeps, sweeps, bound, m, s, zA, cA, bA,
                                         inv_diag, GA, L, F, posF, u, w)
            if not ok:
                status = _MAX_SWEEPS
        # correlations of every atom with the residual
        nnz = 0
        for j in range(k):
            c[j] = b[j]
        for p in range(m):
            zp = zA[p]
            if zp != 0.0:
                nnz += 1
                row = idx[p]
                for j in range(k):
                    c[j] -= zp * G[row, j]
        if status != _DONE:
            break
        # violators outside the working set, the most violating first
        n_viol = 0
        for j in range(k):
            if not in_set[j]:
                v = c[j] if positive else abs(c[j])
                if v > bound:
                    score[n_viol] = v
                    order[n_viol] = j
                    n_viol += 1
        if n_viol == 0:
            break
        batch = max(nnz, _FIRST_BATCH)
        if n_viol > batch:
            for t in range(batch):  # partial selection sort: the `batch` largest to the front
                best = t
                for q in range(t + 1, n_viol):
                    if score[q] > score[best]:
                        best = q
                score[t], score[best] = score[best], score[t]
                order[t], order[best] = order[best], order[t]
            n_viol = batch
        if m + n_viol > capacity:
            return _NEED_ROOM, sweeps
        first = m
        for t in range(n_viol):
            j = order[t]
            _enter(G, b, j, 0.0, m, idx, in_set, zA, bA, inv_diag, posF)
            cA[m] = c[j]
            m += 1
        _fill_gram_block(G, idx, GA, first, m)
        solve = True
    for p in range(m):
        z[idx[p]] = zA[p]
    return status, sweeps


@intrinsic
def _fetch_add(typingctx, counters, index, value):
    """``old = counters[index]; counters[index] += value; return old`` as one atomic (sequentially
    consistent) instruction, so that threads can claim rows from, and report them done to, a shared
    counter (numba has no atomics of its own on the CPU)."""
    if not (isinstance(counters, types.Array) and counters.dtype == types.int64 and counters.ndim == 1):
        return None
    signature = types.int64(counters, index, value)

    def codegen(context, builder, sig, args):
        array_type = sig.args[0]
        array, position, amount = args
        view = context.make_array(array_type)(context, builder, array)
        pointer = cgutils.get_item_pointer(context, builder, array_type, view, [position])
        amount = context.cast(builder, amount, sig.args[2], types.int64)
        return builder.atomic_rmw("add", pointer, amount, "seq_cst")

    return signature, codegen


# the shared counters of one call: the next Gram row to compute, the Gram rows computed, the next sample
# row to claim, and the sample rows solved
_NEXT_GRAM_ROW, _GRAM_ROWS_DONE, _NEXT_ROW, _ROWS_DONE = 0, 1, 2, 3


@cached_njit(fastmath=True, nogil=True)
def _gram_rows(atoms, G, counters):
    """Claim rows ``i`` of ``G = atoms atomsᵀ`` from ``counters[_NEXT_GRAM_ROW]`` and fill ``G[i, i:]`` and
    ``G[i:, i]`` (products of float32 numbers are exact in float64 and are summed in float64), four
    columns per pass over row ``i``; then wait until every row is done (each takes microseconds)."""
    k, d = atoms.shape
    while True:
        i = _fetch_add(counters, _NEXT_GRAM_ROW, 1)
        if i >= k:
            break
        j = i
        while j + 4 <= k:
            a0 = a1 = a2 = a3 = 0.0
            for t in range(d):
                x = np.float64(atoms[i, t])
                a0 += x * np.float64(atoms[j, t])
                a1 += x * np.float64(atoms[j + 1, t])
                a2 += x * np.float64(atoms[j + 2, t])
                a3 += x * np.float64(atoms[j + 3, t])
            G[i, j] = G[j, i] = a0
            G[i, j + 1] = G[j + 1, i] = a1
            G[i, j + 2] = G[j + 2, i] = a2
            G[i, j + 3] = G[j + 3, i] = a3
            j += 4
        while j < k:
            acc = 0.0
            for t in range(d):
                acc += np.float64(atoms[i, t]) * np.float64(atoms[j, t])
            G[i, j] = G[j, i] = acc
            j += 1
        _fetch_add(counters, _GRAM_ROWS_DONE, 1)
    while _fetch_add(counters, _GRAM_ROWS_DONE, 0) < k:
        pass


@cached_njit(nogil=True)
def _solve_claimed_rows(atoms, G, rows, init, alpha, positive, max_sweeps, capacity, sweeps_out,
                        status_out, counters):
    """Every thread of a call runs this: when ``atoms`` has rows, first the Gram matrix into ``G``
    (:func:`_gram_rows`); then claim sample rows one at a time from ``counters[_NEXT_ROW]`` and solve each
    in place until none is left, with one workspace (grown when a working set outgrows it). A thread that
    starts late finds nothing left to claim and returns at once."""
    if atoms.shape[0]:
        _gram_rows(atoms, G, counters)
    n, k = rows.shape
    room = capacity
    idx = np.empty(k, np.int64)
    in_set = np.empty(k, np.bool_)
    zA = np.empty(k)
    cA = np.empty(k)
    bA = np.empty(k)
    inv_diag = np.empty(k)
    F = np.empty(k, np.int64)
    posF = np.empty(k, np.int64)
    u = np.empty(k)
    w = np.empty(k)
    order = np.empty(k, np.int64)
    score = np.empty(k)
    c = np.empty(k)
    b = np.empty(k)
    z = np.empty(k)
    GA = np.empty((room, room))
    L = np.zeros((room + 1, room + 1))
    while True:
        i = _fetch_add(counters, _NEXT_ROW, 1)
        if i >= n:
            return
        for j in range(k):
            b[j] = rows[i, j]
        while True:
            for j in range(k):
                z[j] = init[i, j] if init.shape[0] else 0.0
            status, sweeps = _solve_sample(G, b, alpha, positive, max_sweeps, z, idx, in_set, zA, cA, bA,
                                           inv_diag, GA, L, F, posF, u, w, order, score, c)
            if status != _NEED_ROOM:
                break
            room = min(k, 2 * room)
            GA = np.empty((room, room))
            L = np.zeros((room + 1, room + 1))
        for j in range(k):
            rows[i, j] = z[j]
        sweeps_out[i] = sweeps
        status_out[i] = status
        _fetch_add(counters, _ROWS_DONE, 1)


@cached_njit(nogil=True)
def _counter_reached(counters, which, total, spins):
    """Whether ``counters[which] >= total``, polling up to ``spins`` times (a helper may be finishing)."""
    for _ in range(spins):
        if _fetch_add(counters, which, 0) >= total:
            return True
    return False


# Helper threads, one fewer than numba's thread count (the calling thread is the other one). They are
# ordinary Python threads that run the nogil kernel; created on first use, kept for the process.
_helpers: dict[tuple[int, int], ThreadPoolExecutor] = {}
_helpers_lock = threading.Lock()
# Rows per thread at least: calls with fewer rows per thread use fewer helpers, or none (handing work to a
# helper costs tens of microseconds; a row about 10-100).
_MIN_ROWS_FOR_HELPERS = 16


def numba_threads() -> int:
    """``numba.get_num_threads()``, leaving torch's intra-op thread count as it was: the first call starts
    numba's threading layer, whose OpenMP backend sets OpenMP's thread count (the one torch reads and
    uses) to numba's, so a user's ``torch.set_num_threads(1)`` was silently undone by the first
    ``sparse_encode`` or dictionary fit. Every call of this package asks numba for its thread count here."""
    torch_threads = torch.get_num_threads()
    threads = numba.get_num_threads()
    if torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)
    return threads


def _helper_pool(n_helpers: int) -> ThreadPoolExecutor:
    """The helper threads of this process (keyed by the process id too: a forked child has none of its
    parent's threads, and work queued to them would never run)."""
    key = (os.getpid(), n_helpers)
    with _helpers_lock:
        pool = _helpers.get(key)
        if pool is None:
            pool = _helpers[key] = ThreadPoolExecutor(n_helpers, thread_name_prefix="sparsecoder-lasso")
        return pool


def _as_atoms(atoms: np.ndarray) -> np.ndarray:
    atoms = np.asarray(atoms)
    if atoms.dtype not in (np.float32, np.float64):
        atoms = atoms.astype(np.float64)
    return np.ascontiguousarray(atoms)


def _run_shared(kernel, arguments, done_counter, total, use_helpers):
    """Run ``kernel(*arguments)`` on the calling thread and on the helper threads (when ``use_helpers``),
    then wait until ``arguments[-1][done_counter]`` (the counters) reaches ``total``: only for work a
    helper has claimed and not finished (usually none, or one row for microseconds), never for a helper
    that has not started yet (it will find nothing left to claim)."""
    counters = arguments[-1]
    # at least _MIN_ROWS_FOR_HELPERS rows per thread: on a many-core machine waking every thread for a
    # small call costs more than it saves
    n_threads = numba_threads()
    n_helpers = min(n_threads, total // _MIN_ROWS_FOR_HELPERS) - 1 if use_helpers else 0
    pool = _helper_pool(n_threads - 1) if n_helpers > 0 else None
    helpers = [pool.submit(kernel, *arguments) for _ in range(n_helpers)]
    kernel(*arguments)
    while not _counter_reached(counters, done_counter, total, 10_000):
        stopped = all(helper.done() for helper in helpers)
        if stopped and not _counter_reached(counters, done_counter, total, 1):
            failures = [helper.exception() for helper in helpers if helper.exception() is not None]
            raise RuntimeError("active set: a helper thread stopped before finishing its work") from (
                failures[0] if failures else None)
        time.sleep(5e-5)


@cached_njit(nogil=True)
def _gram_only(atoms, G, counters):
    _gram_rows(atoms, G, counters)


def gram_matrix(atoms: np.ndarray, *, parallel: bool = True) -> np.ndarray:
    """``atoms @ atoms.T`` in float64 (products of float32 or float64 entries summed in float64), its rows
    shared among the calling thread and the helper threads of :func:`lasso_active_set`; symmetric by
    construction. About as fast as a float64 BLAS product on one thread (each entry is computed once, not
    twice), and split among the threads without a fork-join team."""
    atoms = _as_atoms(atoms)
    gram = np.empty((len(atoms), len(atoms)))
    if len(atoms):
        _run_shared(_gram_only, (atoms, gram, np.zeros(4, dtype=np.int64)), _GRAM_ROWS_DONE, len(atoms),
                    parallel)
    return gram


def lasso_active_set(gram: np.ndarray | None, correlations: np.ndarray, alpha: float, *, positive: bool,
                     max_sweeps: int = 1000, init: np.ndarray | None = None, parallel: bool = True,
                     atoms: np.ndarray | None = None):
    """Exact lasso codes for every row of ``correlations`` (``X Dᵀ``) given ``gram`` (``D Dᵀ``).

    ``gram=None`` with ``atoms`` (``D``, ``(k, d)``, float32 or float64): the Gram matrix is computed here,
    in float64 from exact products, shared among the same threads as the rows (:func:`gram_matrix`).

    ``correlations`` (float32 or float64, C-contiguous, ``(n, k)``) is overwritten with the codes, which
    keeps the memory (and, on this kind of machine, the page faults) of one ``(n, k)`` array. ``gram`` is
    used in float64. ``max_sweeps`` caps the coordinate-descent sweeps per sample. ``init`` (``(n, k)``,
    optional) is a warm start: its support is the first working set and its values the first iterate.
    ``parallel=True`` (default) shares the rows with up to ``numba.get_num_threads() − 1`` helper threads
    (at least 16 rows per thread: calls of fewer than 32 rows run on the calling thread alone): every
    thread claims the next unsolved row from an atomic counter, and the calling thread, which solves rows
    too, waits only for rows a helper has claimed and not finished, never for a helper that has not
    started yet. On a busy machine a fork-join thread team (OpenMP, numba's ``prange``) makes every call
    wait until each of its threads is scheduled; here a late helper finds nothing left and the call costs
    what one thread alone would. ``parallel=False`` solves every row on the calling thread. The codes are
    the same either way, bit for bit (every row is solved independently by the same code).

    Returns
    -------
    codes : the ``correlations`` array, now holding the codes
    sweeps : int64 (n,), the coordinate-descent sweeps each sample used
    converged : bool (n,), False where ``max_sweeps`` stopped a sample before its certificate
    """
    if gram is None:
        if atoms is None:
            raise ValueError("pass gram (D Dᵀ) or atoms (D)")
        atoms = _as_atoms(atoms)
        gram = np.empty((len(atoms), len(atoms)))
    else:
        gram = np.ascontiguousarray(gram, dtype=np.float64)
        atoms = np.zeros((0, 1))
    if not correlations.flags.c_contiguous or correlations.dtype not in (np.float32, np.float64):
        raise ValueError("correlations must be a C-contiguous float32 or float64 array")
    n, k = correlations.shape
    sweeps = np.zeros(n, dtype=np.int64)
    status = np.zeros(n, dtype=np.int8)
    if n:
        start = np.zeros((0, k)) if init is None else np.ascontiguousarray(init, dtype=np.float64)
        # the kernel reads init[i, j] for every row and atom without bounds checks: another shape read
        # memory beyond it (audit 2026-11-30: OnlineDictionaryLearner.step took a (6, 2) init for 3 atoms)
        if init is not None and start.shape != (n, k):
            raise ValueError(f"init must have shape (n_samples, n_components) = {(n, k)}, got {start.shape}")
        if init is not None and not np.isfinite(start).all():
            raise ValueError("init contains NaN or inf")
        arguments = (atoms, gram, correlations, start, float(alpha), bool(positive), int(max_sweeps),
                     min(k, _FIRST_CAPACITY), sweeps, status, np.zeros(4, dtype=np.int64))
        _run_shared(_solve_claimed_rows, arguments, _ROWS_DONE, n, parallel)
    return correlations, sweeps, status == _DONE
