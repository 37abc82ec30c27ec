"""Helpers shared by the tests: which frameworks are installed and see which devices, skips
that name the extra to install, and the exact-transfer check. Import them with ``from helpers
import ...`` (conftest puts this folder on ``sys.path``); conftest builds its fixtures from them.
"""

from __future__ import annotations

import functools

import pytest

from xinit.backends import FRAMEWORKS

DEVICES = ("cpu", "gpu")
RNGS = ("native", "xinit")


@functools.cache
def installed() -> tuple[str, ...]:
    """The frameworks that are installed (without importing them)."""
    from xinit.backends import available

    return tuple(b for b in FRAMEWORKS if b in available())


@functools.cache
def devices_of(name: str) -> tuple[str, ...]:
    from xinit.backends import get_backend

    return tuple(get_backend(name).devices())


def extra(name: str) -> str:
    """The pip command that installs framework ``name`` for xinit."""
    from xinit.backends import info

    return f"pip install 'xinit[{info(name).EXTRA}]'"


def require_backend(name: str):
    """The adapter for ``name``, or skip the test if its framework is not installed."""
    if name not in installed():
        pytest.skip(f"{name} is not installed: {extra(name)}")
    from xinit.backends import get_backend

    return get_backend(name)


def require_backends(*names: str) -> None:
    """Skip unless every framework in ``names`` is installed."""
    for name in names:
        require_backend(name)


def backends_on(device: str) -> list[str]:
    """Installed backends that see ``device``."""
    return [b for b in installed() if device in devices_of(b)]


def require_device(name: str, device: str) -> None:
    """Skip unless backend ``name`` is installed and sees ``device``."""
    require_backend(name)
    if device not in devices_of(name):
        pytest.skip(f"{name} sees no {device} device")


def assert_transfers_exact(spec, mods: dict, ref: dict) -> None:
    """``xinit.transfer`` from each build in ``mods`` into a fresh build of ``spec`` in every
    other framework gives exactly ``ref`` (neutral path -> array), tensor by tensor."""
    import numpy as np

    import xinit

    for src in mods:
        for dst in mods:
            if src != dst:
                other = xinit.build(spec, dst, seed=99)
                xinit.transfer(mods[src], other)
                for k, v in xinit.state_dict(other).items():
                    np.testing.assert_array_equal(v, ref[k], err_msg=f"{src}->{dst} {k}")
