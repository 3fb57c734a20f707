"""AdamW, the update of :class:`torch.optim.AdamW` (Loshchilov & Hutter, 2019) without ``torch.optim``.

Why not ``torch.optim.AdamW``: constructing any ``torch.optim`` optimizer imports ``torch._dynamo`` (and
sympy), which costs 1–2 s on the first Train click of a session and adds about 115 000 objects that every
full garbage collection of the napari process must then visit (about 100 ms more per collection, a freeze
the user sees; docs/benchmarks.md). The update below is the same arithmetic as torch's AdamW (no AMSGrad);
``tests/core/test_optimizer.py`` checks it against torch's step by step.

It has what the training loop and :class:`torch.amp.GradScaler` use: ``param_groups`` (set ``"lr"`` there
to change the learning rate), ``zero_grad`` and ``step``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


class AdamW:
    """Adam with decoupled weight decay over ``params``; the moments live in ``state[param]``."""

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.param_groups = [{"params": list(params), "lr": lr, "weight_decay": weight_decay}]
        self.betas, self.eps = betas, eps
        self.state: dict[torch.nn.Parameter, dict[str, torch.Tensor | int]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for param in group["params"]:
                if set_to_none:
                    param.grad = None
                elif param.grad is not None:
                    param.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient, with torch's multi-tensor (``_foreach``)
        kernels as ``torch.optim`` uses on a GPU: a few kernel launches a step, not a few per parameter."""
        beta1, beta2 = self.betas
        for group in self.param_groups:
            params = [param for param in group["params"] if param.grad is not None]
            if not params:
                continue
            grads = [param.grad for param in params]
            states = [self._state_of(param) for param in params]
            for state in states:
                state["step"] += 1
            means, squares = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]
            torch._foreach_mul_(params, 1 - group["lr"] * group["weight_decay"])
            torch._foreach_lerp_(means, grads, 1 - beta1)
            torch._foreach_mul_(squares, beta2)
            torch._foreach_addcmul_(squares, grads, grads, value=1 - beta2)
            corrected_rms = torch._foreach_sqrt(squares)
            torch._foreach_div_(corrected_rms, [math.sqrt(1 - beta2 ** s["step"]) for s in states])
            torch._foreach_add_(corrected_rms, self.eps)
            step_sizes = [-group["lr"] / (1 - beta1 ** s["step"]) for s in states]
            torch._foreach_addcdiv_(params, means, corrected_rms, step_sizes)

    def _state_of(self, param: torch.nn.Parameter) -> dict:
        """``param``'s step count and moments, made on its first update."""
        if param not in self.state:
            self.state[param] = {"step": 0, "exp_avg": torch.zeros_like(param), "exp_avg_sq": torch.zeros_like(param)}
        return self.state[param]
