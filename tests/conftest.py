"""Shared fixtures: every cross-backend test runs over ``backend`` x ``device``.

* ``backend``: ``torch``, ``paddle``, ``flax``; a framework that is not installed skips with
  the extra to install.
* ``device``: ``cpu`` and ``gpu``; a gpu case skips cleanly when the framework (or, for tests
  without a ``backend``, every installed framework) sees no GPU.
* ``rng``: ``native`` (each framework's own generator) and ``xinit`` (the keyed generator).

Real frameworks only: nothing here mocks torch, paddle or jax.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests import helpers from here

# JAX compiles every new shape (1-3 s each for a 4-5 dim kernel on a small CPU); a persistent
# compilation cache shares those compiles between the xdist workers and across runs. Set before
# jax is imported; a JAX_* variable already in the environment wins.
_JAX_CACHE = Path(__file__).resolve().parent.parent / ".pytest_cache" / "jax-compilation-cache"
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_JAX_CACHE))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

# Under pytest-xdist every core already runs a worker: one math thread per worker avoids the
# oversubscription (spinning BLAS/OpenMP pools) that makes small draws and QRs 5-10x slower.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

from helpers import (  # noqa: E402 - after the sys.path entry above
    DEVICES,
    FRAMEWORKS,
    RNGS,
    backends_on,
    devices_of,
    installed,
    require_backend,
    require_device,
)


def pytest_terminal_summary(terminalreporter):
    """After a run with the docs test: how many documented code blocks ran and were skipped."""
    reports = [r for group in terminalreporter.stats.values() for r in group]
    if any("test_docs.py" in getattr(r, "nodeid", "") for r in reports):
        from docs_blocks import skip_summary

        terminalreporter.write_line(skip_summary())


def pytest_configure(config):
    # Paddle's import-time notice about a C++ build cache: noise in every run's summary.
    config.addinivalue_line("filterwarnings", "ignore:No ccache found:UserWarning")


@pytest.fixture(params=FRAMEWORKS)
def backend(request) -> str:
    require_backend(request.param)
    return request.param


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    dev = request.param
    if "backend" in request.fixturenames:
        name = request.getfixturevalue("backend")
        if dev not in devices_of(name):
            pytest.skip(f"{name} sees no {dev} device")
    elif not backends_on(dev):
        pytest.skip(f"no installed framework sees a {dev} device")
    return dev


@pytest.fixture(params=RNGS)
def rng(request) -> str:
    return request.param


__all__ = [
    "FRAMEWORKS",
    "DEVICES",
    "RNGS",
    "backends_on",
    "devices_of",
    "installed",
    "require_backend",
    "require_device",
]
