"""The zoo: functions returning specs, structured and named like the models they mirror."""

from __future__ import annotations

from .lenet import lenet
from .resnet import resnet18, resnet34, resnet50, resnet101, resnet152, resnext50_32x4d
from .resnet45 import resnet45

ZOO = {
    "lenet": lenet,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "resnet101": resnet101,
    "resnet152": resnet152,
    "resnext50_32x4d": resnext50_32x4d,
    "resnet45": resnet45,
}

# A typical input for each model (N, C, H, W), used by the CLI and parity checks.
DEFAULT_INPUT = {
    "lenet": (1, 3, 32, 32),
    "resnet45": (1, 3, 32, 128),
}


def get(name: str, **kwargs):
    """The spec of zoo model ``name``."""
    if name not in ZOO:
        raise KeyError(f"unknown zoo model {name!r}; known: {', '.join(ZOO)}")
    return ZOO[name](**kwargs)


def default_input(name: str) -> tuple[int, ...]:
    return DEFAULT_INPUT.get(name, (1, 3, 224, 224))


__all__ = [*ZOO, "ZOO", "get", "default_input"]
