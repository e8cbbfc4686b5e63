"""Lookahead of the trained weights, as airbench uses it (Jordan 2024; Zhang, Lucas, Hinton and
Ba, "Lookahead Optimizer: k steps forward, 1 step back", NeurIPS 2019).

Every ``every`` optimizer steps the slow copy of the model's floating-point state (parameters
and BatchNorm running statistics) moves towards the trained ("fast") one and the model is set
back to it::

    slow = a_t * slow + (1 - a_t) * fast;   fast = slow,   a_t = alpha * (t / T)^3

with ``t`` the steps done and ``T`` all steps of the run: early on ``a_t`` is near 0 and the
lookahead does almost nothing; towards the end it averages over the last few hundred steps.
After the last step the model takes the slow weights (``a = 1``). The slow copy is part of the
checkpoint, so a resumed run continues exactly.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class Lookahead:
    """The slow weights of ``model`` (a copy of its floating-point state at creation)."""

    def __init__(self, model: nn.Module, every: int, alpha: float, total_steps: int) -> None:
        if every < 1 or total_steps < 1 or not 0.0 <= alpha <= 1.0:
            raise ValueError(f"lookahead needs every >= 1, total_steps >= 1 and 0 <= alpha <= 1, "
                             f"got {every}, {total_steps}, {alpha}")
        self.every, self.alpha, self.total_steps = int(every), float(alpha), int(total_steps)
        self.slow = {k: v.detach().clone() for k, v in _floating(model).items()}

    def after_step(self, model: nn.Module, step: int) -> None:
        """Call after optimizer step ``step`` (1-based, counted over the whole run)."""
        if step % self.every == 0:
            self._update(model, self.alpha * (min(step, self.total_steps) / self.total_steps) ** 3)
        if step >= self.total_steps:
            self._update(model, 1.0)

    @torch.no_grad()
    def _update(self, model: nn.Module, a: float) -> None:
        for name, fast in _floating(model).items():
            slow = self.slow[name]
            slow.lerp_(fast.detach(), 1.0 - a)
            fast.copy_(slow)

    def state_dict(self) -> dict[str, Any]:
        return {"slow": {k: v.clone() for k, v in self.slow.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        slow = state["slow"]
        if set(slow) != set(self.slow):
            raise KeyError(f"lookahead state has {sorted(slow)[:3]}..., the model {sorted(self.slow)[:3]}...")
        for name, value in slow.items():
            self.slow[name].copy_(value)


def _floating(model: nn.Module) -> dict[str, Tensor]:
    return {k: v for k, v in model.state_dict(keep_vars=True).items() if v.is_floating_point()}
