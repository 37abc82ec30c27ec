"""The native torch containers xinit builds: steps that reuse a child, and residual blocks."""

from __future__ import annotations

import torch

from ..base import ResidualLogic, StepsLogic


class Steps(StepsLogic, torch.nn.Module):
    """A Sequential whose steps may reuse a parameter-free child (torchvision's shared relu)."""

    def __init__(self, children: dict, steps: list[str]):
        super().__init__()
        for name, child in children.items():
            self.add_module(name, child)
        self._xinit_steps = list(steps)

    def _child(self, name):
        return self._modules[name]

    def forward(self, x):
        return self._run_steps(x)


class Residual(ResidualLogic, torch.nn.Module):
    """activation(body(x) + shortcut(x)), children registered under their spec names."""

    def __init__(self, children: dict, body: list[str], shortcut, activation):
        super().__init__()
        for name, child in children.items():
            self.add_module(name, child)
        self._xinit_body, self._xinit_shortcut, self._xinit_activation = (
            list(body),
            shortcut,
            activation,
        )

    def _child(self, name):
        return self._modules[name]

    def forward(self, x):
        return self._run_residual(x)
