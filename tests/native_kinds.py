"""Checks of one layer kind against each framework's own layer (shared by the per-kind test
files: test_instance_norm, test_layernorm2d, test_prelu, test_layer_scale).

* :func:`run_native`: a native layer on channel-first numpy input, as its framework runs it;
* :func:`randomize`: give a native layer's parameters values no default has;
* :func:`assert_transfer_gives_native_outputs`: the native layer read, its weights moved into
  xinit's build of the read spec in every framework, each gives the native output;
* :func:`assert_default_is_native`: the lowering's default rule against the framework's own
  default layer, built (constants compared exactly, as ``stats_helpers`` says).
"""

from __future__ import annotations

import numpy as np
from helpers import installed, require_backend

import xinit
from xinit.backends import part
from xinit.distributions import ConstantDist
from xinit.native import read_layers
from xinit.state import transfer

F32_EPS = float(np.finfo(np.float32).eps)


def run_native(fw: str, module, x: np.ndarray, channels_last: bool = False) -> np.ndarray:
    """``module`` (torch, paddle or flax) on channel-first ``x``; ``channels_last``: a Flax
    layer that takes its channels on the last axis gets (and gives) them moved there."""
    if fw == "torch":
        import torch

        with torch.no_grad():
            return module(torch.from_numpy(x)).numpy()
    if fw == "paddle":
        import paddle

        return module(paddle.to_tensor(x)).numpy()
    import jax.numpy as jnp

    if channels_last:
        return np.moveaxis(np.asarray(module(jnp.moveaxis(jnp.asarray(x), 1, -1))), -1, 1)
    return np.asarray(module(jnp.asarray(x)))


def randomize(fw: str, module, seed: int = 5) -> None:
    """Every float parameter of a native layer set to U(0.5, 1.5) values (not a default)."""
    rng = np.random.default_rng(seed)
    if fw == "torch":
        import torch

        with torch.no_grad():
            for p in module.parameters():
                p.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, p.shape).astype(np.float32)))
    elif fw == "paddle":
        for p in module.parameters():
            p.set_value(rng.uniform(0.5, 1.5, p.shape).astype(np.float32))
    else:
        from flax import nnx

        for _, v in nnx.to_flat_state(nnx.state(module, nnx.Param)):
            shape = np.shape(v.get_value())
            v.set_value(np.asarray(rng.uniform(0.5, 1.5, shape), np.float32))


def read_spec(module):
    """The spec the lowerings read from a one-layer native module."""
    ((_, _, spec),) = read_layers(module)
    return spec


def assert_transfer_gives_native_outputs(
    fw: str, native, x: np.ndarray, *, channels_last: bool = False, rtol: float, atol: float
) -> None:
    """The native layer's spec is read, its weights moved into xinit's build of that spec
    in every installed framework (through neutral state), and each build's output on ``x``
    equals the native one within ``rtol``/``atol``."""
    want = run_native(fw, native, x, channels_last)
    spec = read_spec(native)
    for dst in installed():
        built = xinit.build(spec, dst, seed=0, rng="xinit")
        transfer(native, built)
        got = np.asarray(xinit.run(built, x))
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=f"{fw} -> {dst}")


def assert_default_is_native(fw: str, spec, expected: dict[str, float], seed: int = 0) -> None:
    """The lowering's default rule for each parameter of ``spec`` is the constant
    ``expected[name]``, and the framework's own default layer holds exactly that value in
    every element of each native tensor the parameter map names."""
    require_backend(fw)
    lowering = part(fw, "lowerings").REGISTRY[spec.kind]
    native = part(fw, "defaults").native_state(lowering.native_default(spec, seed))
    pmap = part(fw, "lowerings").REGISTRY.param_map(lowering.default_spec(spec))
    assert set(expected) == {p.name for p in spec.params() if p.trainable}
    for name, value in expected.items():
        init, _, text, _ = lowering.default_rule(spec, name)
        p = next(q for q in spec.params() if q.name == name)
        law = init.resolve(p.shape, p.role, p.fans)
        assert law == ConstantDist(value), f"{fw} {spec.kind}.{name}: rule {text} is {law}"
        for leaf in pmap[name]:
            got = native[leaf.name]
            assert got.shape == leaf.native_shape(p.shape), (fw, name, got.shape)
            np.testing.assert_array_equal(got, np.full(got.shape, value, np.float32), err_msg=name)
