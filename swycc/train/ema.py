"""Exponential moving average of model weights (kept in fp32 on every rank)."""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """shadow <- d * shadow + (1 - d) * param, with d = min(decay, (1 + n) / (10 + n)) while
    n < warmup (so early, noisy weights are forgotten quickly); n counts updates."""

    def __init__(self, model: nn.Module, decay: float, warmup: int = 0):
        self.decay, self.warmup, self.updates = decay, warmup, 0
        self.shadow = {k: v.detach().float().clone() for k, v in model.state_dict().items()}

    def current_decay(self) -> float:
        n = self.updates
        if n < self.warmup:
            return min(self.decay, (1 + n) / (10 + n))
        return self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        for k, v in model.state_dict().items():
            s = self.shadow[k]
            if v.dtype.is_floating_point:
                s.lerp_(v.detach().float(), 1.0 - d)
            else:
                s.copy_(v)
        self.updates += 1

    def copy_to(self, model: nn.Module) -> None:
        target = model.state_dict()  # once: building it per key made this quadratic
        model.load_state_dict({k: v.to(target[k].dtype) for k, v in self.shadow.items()})

    def state_dict(self) -> dict:
        return {"shadow": self.shadow, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)
