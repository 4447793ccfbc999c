"""fista(reduce=...) under real torch.distributed (gloo, 2 processes): the two halves of a batch give the
codes and iteration counts of one process holding the whole batch (variance hinge on the global std)."""

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sparsecoder import fista

N, D, L = 40, 16, 8
SETTINGS = {
    "fixed": {"step": 0.3},
    "backtracking": {"step": "backtracking"},
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _problem():
    rng = np.random.default_rng(3)
    Y = torch.tensor(rng.standard_normal((N, D)))
    W = torch.tensor(rng.standard_normal((D, L)))
    return Y, W


def _arguments(name):
    return {"beta": 2.0, "var_threshold": 1.0, "max_iter": 200, "tol": 1e-4, **SETTINGS[name]}


def _all_reduce_sum(tensor):
    dist.all_reduce(tensor)
    return tensor


def _worker(rank, world_size, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        Y, W = _problem()
        half = Y.chunk(world_size)[rank]
        out = {}
        for name in SETTINGS:
            result = fista(half, W, 0.02, reduce=_all_reduce_sum, **_arguments(name))
            out[name] = (result.codes, result.n_iter, result.converged)
            out[name + "-local"] = fista(half, W, 0.02, **_arguments(name)).codes
        torch.save(out, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs the fork start method")
def test_two_processes_with_all_reduce_equal_one_process(tmp_path):
    # fork: the children share the parent's imported torch (a spawned child re-imports it: ~10 s here)
    mp.start_processes(
        _worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True, start_method="fork"
    )
    parts = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    Y, W = _problem()
    for name in SETTINGS:
        whole = fista(Y, W, 0.02, **_arguments(name))
        assert bool(whole.converged.all())
        codes = torch.cat([p[name][0] for p in parts])
        relative = (codes - whole.codes).norm() / whole.codes.norm()
        assert relative <= 1e-5, name
        assert torch.equal(torch.cat([p[name][1] for p in parts]), whole.n_iter), name
        assert torch.equal(torch.cat([p[name][2] for p in parts]), whole.converged), name
        # without reduce each half uses its own std: the codes differ (the hinge is really active)
        local = torch.cat([p[name + "-local"] for p in parts])
        assert (local - whole.codes).norm() / whole.codes.norm() > 1e-3, name


def test_reduce_must_be_callable_and_module_steps_need_a_fixed_step():
    Y, W = _problem()
    with pytest.raises(ValueError, match="reduce must be a callable"):
        fista(Y, W, 0.02, reduce=1)
    with pytest.raises(ValueError, match="pass a fixed step"):
        fista(Y, torch.nn.Sequential(torch.nn.Linear(L, D).double()), 0.02, step="lipschitz",
              n_components=L, reduce=lambda t: t)


def test_identity_reduce_equals_no_reduce():
    """One process with reduce = identity: the global-sum formula of the std gives the same codes."""
    Y, W = _problem()
    for name in SETTINGS:
        plain = fista(Y, W, 0.02, **_arguments(name))
        reduced = fista(Y, W, 0.02, reduce=lambda t: t, **_arguments(name))
        torch.testing.assert_close(reduced.codes, plain.codes, rtol=1e-7, atol=1e-9)
        assert torch.equal(reduced.n_iter, plain.n_iter)
