"""The defaults catalogue against the frameworks' own default layers, measured.

Each framework's layers are built directly (``tests/defaults_native.py``), never through
xinit, under fixed seeds, for several shapes. Their parameters are tested against the
catalogue's distribution: mean and std with z-scores from the sample size (|z| <= 5, with
power against a 3% std error), and a one-sample KS test (p > 1e-4); constants exactly. Test
ids name the catalogue entry (``paddle-conv2d-weight-64x128k3g4``), so a framework that
changes a default fails on the entry that moved.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
from defaults_native import CASES, measured
from helpers import require_backend
from stats_helpers import N_MIN, assert_haar_orthogonal, assert_same_law

from xinit import defaults as D
from xinit.distributions import ConstantDist, OrthogonalDist
from xinit.graph import Graph

warnings.filterwarnings("ignore", category=DeprecationWarning)


def _catalogue_cases():
    for fw in D.FRAMEWORKS:
        for tag, d in CASES.items():
            if isinstance(d, Graph) and fw == "flax":  # no nnx block: test_flax_composes_its_layers
                continue
            for param in D.params_of(fw, d):
                yield pytest.param(fw, tag, param, id=f"{fw}-{D.layer_name(d)}-{param}-{tag}")


def _still_unsupported(framework: str, d) -> str | None:
    """Why a layer the catalogue marks unsupported still is (None: the framework gained it)."""
    if framework == "flax" and d.kind == "conv_transpose":
        from flax import nnx

        params = inspect.signature(nnx.ConvTranspose.__init__).parameters
        if "feature_group_count" not in params and "groups" not in params:
            return "flax ConvTranspose has no groups argument"
    if framework == "paddle" and d.kind == "rmsnorm":
        import paddle

        if not hasattr(paddle.nn, "RMSNorm"):
            return "paddle.nn has no RMSNorm"
    return None


@pytest.mark.parametrize("framework, tag, param", list(_catalogue_cases()))
def test_catalogue_matches_native_default(framework, tag, param):
    require_backend(framework)
    d = CASES[tag]
    entry = D.default_entry(framework, d, param)
    what = f"{entry.id} [{D.describe(d)}] catalogue says {entry.rule}"
    if entry.distribution is None:  # the framework has no such layer: check it still has none
        assert _still_unsupported(framework, d), (
            f"{entry.id}: the catalogue says {entry.note!r}, but {framework} has the layer now; "
            "catalogue it"
        )
        return
    state = measured(framework, tag)
    if param == D.params_of(framework, d)[0]:  # the catalogue lists all the state, no more
        listed = {
            name
            for p in D.params_of(framework, d)
            for name in D.default_entry(framework, d, p).native_names
        }
        assert listed == set(state["__shapes__"]), f"{framework} {D.describe(d)}: state names"
    for name in entry.native_names:  # each native leaf on its own (Paddle's q/k/v_proj, ...)
        assert name in state, f"{what}: no {name!r} in {sorted(state)}"
        assert state["__shapes__"][name] == entry.native_shape, (
            f"{what}: native shape of {name} {state['__shapes__'][name]} != catalogue "
            f"{entry.native_shape}"
        )
        values = state[name]
        dist = entry.distribution
        if isinstance(dist, OrthogonalDist):  # per draw: a leaf is one block, or all of them
            assert len(entry.native_names) in (1, dist.blocks), what
            if len(entry.native_names) == 1 and dist.blocks > 1:
                raise AssertionError(f"{what}: blocks of one native tensor are not measured here")
            mats = values.reshape(-1, *entry.native_shape)
            assert_haar_orthogonal(mats, dist.gain, f"{what} ({name})")
            assert np.mean(np.square(mats)) == pytest.approx(dist.std**2, rel=1e-4), what
            continue
        if isinstance(dist, ConstantDist):
            assert np.all(values == dist.value), (
                f"{what}: expected every element of {name} == {dist.value}, got mean "
                f"{values.mean():.4g} std {values.std():.4g}"
            )
            continue
        assert values.size >= N_MIN, f"{what}: only {values.size} elements of {name} measured"
        assert_same_law(values, dist, f"{what} ({name})")


@pytest.mark.parametrize(
    "tag", ["64x4096", "64x128k3g4", "32x256k3", "1000x64"], ids=lambda t: f"linen-{t}"
)
def test_flax_linen_initialises_as_nnx(tag):
    """Linen's Dense/Conv/ConvTranspose/Embed use the same default inits as NNX."""
    require_backend("flax")
    d = CASES[tag]
    state = measured("flax_linen", tag)
    for param in D.params_of("flax", d):
        entry = D.default_entry("flax", d, param)
        values = state[entry.native_name]
        assert state["__shapes__"][entry.native_name] == entry.native_shape
        if isinstance(entry.distribution, ConstantDist):
            assert np.all(values == entry.distribution.value), entry.id
        else:
            assert_same_law(values, entry.distribution, f"linen {entry.id}")
