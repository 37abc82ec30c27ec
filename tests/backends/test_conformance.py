"""Conformance of every registered layer kind in every framework, driven by the registry.

The cases are ``xinit.kinds.names() x FRAMEWORKS``, read when pytest collects this file (not
a list kept here, nor one taken when ``xinit.layers`` was imported), in the spirit of
Keras's ``run_layer_test`` and timm's tests over ``list_models()``. Each kind's small example
(``kinds.Example``, given at its registration) becomes a one-layer model, a graph whose
single node ``layer`` takes the example's inputs. For every kind and framework:

* it builds, and its output shape is what ``infer`` says;
* its output equals PyTorch's on the same input and the same (keyed) weights;
* its state round-trips, and transfers exactly to the other two frameworks;
* a checkpoint in the framework's own file format ports to every other convention;
* ``apply(Default(framework))`` gives each parameter the catalogue's law;
* ``xinit.parity`` against the PyTorch build passes, the layer's row included;
* ``xinit.summary`` has the layer's row, with its kind and parameter count.

A kind registered without an example, or without a lowering in some framework, fails a test
that names what is missing.
"""

from __future__ import annotations

import functools

import numpy as np
from helpers import installed, require_backend

import xinit
from xinit import kinds
from xinit.backends import FRAMEWORKS, info, part
from xinit.defaults import default_entry, params_of
from xinit.distributions import ConstantDist
from xinit.graph import Graph


def pytest_generate_tests(metafunc):
    """Parametrise over the kinds registered now (collection time) and the frameworks."""
    if "kind" in metafunc.fixturenames:
        metafunc.parametrize("kind", kinds.names())
    if "fw" in metafunc.fixturenames:
        metafunc.parametrize("fw", FRAMEWORKS)


# ---- the one-layer model of a kind's example ------------------------------------------------
@functools.cache
def case(kind: str) -> tuple[Graph, tuple[np.ndarray, ...]]:
    """(one-layer graph, its inputs) for ``kind``'s example; integer ids where it says so."""
    example = kinds.example(kind)
    names = tuple(f"x{i}" for i in range(len(example.inputs)))
    graph = Graph({"layer": (example.spec, names)}, inputs=names)
    rng = np.random.default_rng(sum(map(ord, kind)))
    if example.ids:
        xs = tuple(rng.integers(0, example.ids, s).astype(np.int64) for s in example.inputs)
    else:
        xs = tuple(rng.standard_normal(s).astype(np.float32) for s in example.inputs)
    return graph, xs


def one(xs: tuple[np.ndarray, ...]):
    """The input as ``xinit.run`` takes it: the array alone for a one-input model."""
    return xs[0] if len(xs) == 1 else xs


@functools.cache
def built(kind: str, fw: str, seed: int = 0):
    require_backend(fw)
    return xinit.build(case(kind)[0], fw, seed=seed, rng="xinit")


def fresh(kind: str, fw: str, seed: int):
    """A build of its own (tests that write into a module must not share it)."""
    require_backend(fw)
    return xinit.build(case(kind)[0], fw, seed=seed, rng="xinit")


def tolerance(*frameworks: str) -> float:
    """The looser parity tolerance of ``frameworks`` (PARITY_RTOL: each framework's float32
    reductions against the others', measured against float64 when it was set)."""
    return max(info(f).PARITY_RTOL for f in frameworks)


def native_keys(module, fw: str) -> set[str]:
    """The names of every tensor of a built module, as its framework lists them."""
    if fw == "flax":
        from flax import nnx

        state = nnx.state(module, nnx.Not(nnx.RngState))  # a dropout's key is no tensor of it
        return {".".join(map(str, k)) for k, _ in nnx.to_flat_state(state)}
    return set(module.state_dict())


def parts(out) -> dict:
    """A run's output by key: the array alone under "", a dict's arrays (a split) by theirs."""
    return dict(out) if isinstance(out, dict) else {"": out}


def assert_close(got, want, rtol: float, what: str) -> None:
    """Each array of ``got`` equals ``want``'s to ``rtol`` relative to the output's scale
    (over its finite values: an additive mask's -inf must stand at the same places)."""
    got, want = parts(got), parts(want)
    assert got.keys() == want.keys(), f"{what}: outputs {sorted(got)}, want {sorted(want)}"
    finite = [np.abs(v[np.isfinite(v)]) for v in map(np.asarray, want.values())]
    scale = max(1.0, *(float(np.max(v, initial=0.0)) for v in finite))
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=rtol, atol=rtol * scale, err_msg=what)


def others(fw: str) -> tuple[str, ...]:
    return tuple(f for f in FRAMEWORKS if f != fw and f in installed())


def assert_same_state(got: dict, want: dict, kind: str, what: str) -> None:
    """Equal arrays under every key; a key only one side has must be a leaf the kind says a
    framework may keep no counterpart of (BatchNorm's num_batches_tracked outside torch)."""
    for key in got.keys() ^ want.keys():
        leaf = key.removeprefix("layer.")
        assert kinds.is_optional(kind, leaf), f"{kind} {what}: {key} is on one side only"
    for key in got.keys() & want.keys():
        np.testing.assert_array_equal(got[key], want[key], err_msg=f"{kind} {what} {key}")


# ---- registration: what a kind must come with -----------------------------------------------
def test_kind_has_an_example(kind):
    example = kinds.example(kind)  # LookupError naming the kind when it has none
    assert type(example.spec).kind == kind, f"{kind}: its example is a {example.spec!r}"
    assert example.inputs, f"{kind}: its example takes no input"


def test_kind_has_a_lowering(kind, fw):
    registry = part(fw, "lowerings").REGISTRY
    assert kind in registry, (
        f"layer kind {kind!r} has no {fw} lowering: register one in backends/{fw}/lowerings.py"
    )


# ---- build, run, move ---------------------------------------------------------------------
def test_build_and_output_shape_match_infer(kind, fw):
    graph, xs = case(kind)
    out = parts(xinit.run(built(kind, fw), one(xs)))
    want = parts(xinit.blocks.output_shape(graph, one(tuple(x.shape for x in xs))))
    got = {key: value.shape for key, value in out.items()}
    assert got == want, f"{kind} in {fw}: output {got}, infer says {want}"


def test_values_match_pytorch(kind, fw):
    """Same keyed weights, same input: the outputs agree to the frameworks' float32 rounding
    (relative to the output's scale)."""
    require_backend("torch")
    _, xs = case(kind)
    ref = xinit.run(built(kind, "torch"), one(xs))
    out = xinit.run(built(kind, fw), one(xs))
    assert_close(out, ref, tolerance(fw, "torch"), f"{kind} {fw}")


def test_state_round_trip_and_transfer(kind, fw):
    graph, xs = case(kind)
    module = fresh(kind, fw, seed=1)
    state = xinit.state_dict(module)
    rng = np.random.default_rng(7)
    # new values (integer buffers such as num_batches_tracked keep theirs), loaded and read back
    new = {
        k: (rng.standard_normal(v.shape).astype(v.dtype) if v.dtype.kind == "f" else v)
        for k, v in state.items()
    }
    xinit.load_state_dict(module, new)
    back = xinit.state_dict(module)
    assert back.keys() == new.keys()
    for key, value in new.items():
        np.testing.assert_array_equal(back[key], value, err_msg=f"{kind} {fw} {key}")
    for other in others(fw):
        dst = fresh(kind, other, seed=2)
        xinit.transfer(module, dst)
        assert_same_state(xinit.state_dict(dst), new, kind, f"{fw}->{other}")
        if not new:
            continue
        a, b = xinit.run(module, one(xs)), xinit.run(dst, one(xs))
        assert_close(b, a, tolerance(fw, other), f"{kind} {other}")


def test_port_from_the_native_format(kind, fw, tmp_path):
    """The framework's own checkpoint file of the layer ports to every other convention."""
    graph, _ = case(kind)
    module = built(kind, fw)
    neutral = xinit.state_dict(module)
    native = xinit.port(neutral, graph, src="neutral", dst=fw)
    assert set(native) == native_keys(module, fw), f"{kind}: the map's names are not {fw}'s"
    suffix = {"torch": ".pt", "paddle": ".pdparams", "flax": ".msgpack"}[fw]
    path = xinit.checkpoints.save_checkpoint(dict(native), tmp_path / f"layer{suffix}")
    for dst in (*FRAMEWORKS, "neutral"):
        ported = xinit.port(path, graph, dst=dst)
        back = xinit.port(dict(ported), graph, src=dst, dst="neutral")
        assert_same_state(dict(back), neutral, kind, f"{fw}->{dst}")


def test_apply_default_gives_the_catalogue_law(kind, fw):
    """``apply(Default(fw))`` on the built layer: each trainable parameter gets the law the
    defaults catalogue gives it (zero where the framework's own layer has no such tensor, as
    Flax's recurrent cells have one bias per gate), drawn exactly as a build with that policy
    draws it; where the kind's lowering says the framework has no such layer
    (``Lowering.default_missing``), apply leaves the parameter as it is and its report says
    why."""
    graph, _ = case(kind)
    spec = graph.node("layer")
    trainable = [p for p in spec.params() if p.trainable]
    if not trainable:
        return
    policy = xinit.Policy(xinit.Rule(xinit.init.Default(fw), param="*"))
    module = fresh(kind, fw, seed=3)
    missing = part(fw, "lowerings").REGISTRY[kind].default_missing(spec)
    if missing is not None:  # the lowering says the framework has no such layer: say so
        before = xinit.state_dict(module)
        report = xinit.apply(policy, module, seed=4, rng="xinit")
        for p in trainable:
            path = f"layer.{p.name}" if p.name else "layer"
            assert report[path].status == "left", (kind, fw, path, report[path].status)
            assert report[path].reason == missing[0], (kind, fw, path)
        after = xinit.state_dict(module)
        for path, value in before.items():
            np.testing.assert_array_equal(after[path], value, err_msg=f"{kind} {fw} {path}")
        return
    laws = {}
    for p in trainable:
        has = p.name in params_of(fw, spec)
        laws[p.name] = default_entry(fw, spec, p.name).distribution if has else ConstantDist(0.0)
    report = xinit.apply(policy, module, seed=4, rng="xinit", strict=True)
    rebuilt = xinit.state_dict(xinit.build(graph, fw, seed=4, rng="xinit", policy=policy))
    got = xinit.state_dict(module)
    for p in trainable:
        path = f"layer.{p.name}" if p.name else "layer"
        row = report[path]
        assert row.status == "initialized", f"{kind} {fw} {path}: {row.status}"
        assert row.distribution == laws[p.name].describe(), (kind, fw, path)
        np.testing.assert_array_equal(got[path], rebuilt[path], err_msg=f"{kind} {fw} {path}")


def test_parity_of_a_one_layer_model(kind, fw):
    """Layer by layer against the PyTorch build (a second one, for PyTorch itself)."""
    require_backend("torch")
    _, xs = case(kind)
    ref = built(kind, "torch") if fw != "torch" else fresh(kind, "torch", seed=0)
    report = xinit.parity({"reference": ref, fw: built(kind, fw)}, one(xs))
    assert report.ok, f"{kind} {fw}: {report}"
    if isinstance(xinit.run(built(kind, "torch"), one(xs)), dict):
        return  # a node of several outputs (a split) has no row: its parts are where taken
    # a node whose parameter lives on its container (a learned token) is the container's row
    row = "" if getattr(kinds.get(kind).spec, "needs_container", False) else "layer"
    assert row in [r.path for r in report.rows], f"{kind}: no parity row for the layer"


def test_summary_row(kind):
    graph, xs = case(kind)
    spec = graph.node("layer")
    shapes = one(tuple(x.shape for x in xs))
    rows = {r.path: r for r in xinit.summary(graph, shapes).rows}
    assert rows["layer"].kind == kind
    assert rows["layer"].params == sum(p.numel for p in spec.params() if p.trainable)
    assert rows["layer"].output_shape == xinit.blocks.output_shape(graph, shapes)
