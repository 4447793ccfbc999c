"""The trainer's Adam runs fused (one kernel per parameter) and takes the textbook Adam steps (issue 15)."""

import torch

from sparsecoder.train.optimization import build_optimizer
from sparsecoder.train.protocol import OptimizerSpec, ParamGroupSpec


def test_fused_adam_takes_the_same_steps_as_the_reference_adam():
    torch.manual_seed(0)
    weights = torch.nn.Parameter(torch.randn(30, 20))
    bias = torch.nn.Parameter(torch.randn(30))
    spec = OptimizerSpec("decoder", [ParamGroupSpec("weights", [weights], 1e-2),
                                     ParamGroupSpec("biases", [bias], 3e-3, weight_decay=1e-3)])
    optimizer = build_optimizer(spec)
    assert all(group["fused"] for group in optimizer.param_groups)
    start = [weights.detach().clone(), bias.detach().clone()]
    reference_params = [p.clone().requires_grad_(True) for p in start]
    reference = torch.optim.Adam([{"params": [reference_params[0]], "lr": 1e-2},
                                  {"params": [reference_params[1]], "lr": 3e-3, "weight_decay": 1e-3}],
                                 foreach=False)
    for _ in range(5):
        gradients = [torch.randn(30, 20), torch.randn(30)]
        for p, q, g in zip((weights, bias), reference_params, gradients, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        optimizer.step()
        reference.step()
    for p, q, p0 in zip((weights, bias), reference_params, start, strict=True):
        torch.testing.assert_close(p.detach(), q.detach(), atol=1e-6, rtol=1e-6)
        assert (p.detach() - p0).abs().min() > 0  # every entry moved
