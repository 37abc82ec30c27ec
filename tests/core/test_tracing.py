"""The neutral half of tracing (xinit.tracing.TraceRecorder), driven as a framework tracer
drives it, with numpy arrays standing for a framework's tensors: scopes become nested
Sequentials/Graphs named by attribute, tuple outputs are referred to by index, and every
unknown is listed with its path."""

import numpy as np
import pytest

import xinit
from xinit.blocks import Sequential, param_specs
from xinit.graph import Graph, Reuse
from xinit.layers import Add, BatchNorm, Conv, Linear, ReLU
from xinit.tracing import TraceError, TraceRecorder


def _t(*shape):
    return np.zeros(shape, np.float32)


def _basic_block(rec, x, name):
    """What a tracer reports for a torchvision BasicBlock called as ``name``."""
    rec.enter(name, "BasicBlock", [x])
    a = _t(2, 4, 8, 8)
    rec.node("conv1", Conv(4, 4, 3, padding=1, bias=False), [x], a)
    b = _t(2, 4, 8, 8)
    rec.node("bn1", BatchNorm(4), [a], b)
    c = _t(2, 4, 8, 8)
    rec.node("relu", ReLU(), [b], c)
    d = _t(2, 4, 8, 8)
    rec.node("add", Add(), [c, x], d)
    e = _t(2, 4, 8, 8)
    rec.node("relu", ReLU(), [d], e)  # the same parameter-free module, called again
    rec.exit(name, e)
    return e


def test_nested_scopes_become_named_containers():
    x = _t(2, 4, 8, 8)
    rec = TraceRecorder([x], batch=2, type_name="Net")
    rec.enter("layer1", "Sequential", [x])
    y = _basic_block(rec, x, "0")
    y = _basic_block(rec, y, "1")
    rec.exit("layer1", y)
    z = _t(2, 4)
    rec.node("fc", Linear(4, 4), [y], z)
    spec = rec.finish(z)
    assert isinstance(spec, Sequential) and [n for n, _ in spec.steps] == ["layer1", "fc"]
    layer1 = dict(spec.steps)["layer1"]
    assert isinstance(layer1, Sequential) and [n for n, _ in layer1.steps] == ["0", "1"]
    block = dict(layer1.steps)["0"]
    assert isinstance(block, Graph)
    assert [n for n, _, _ in block.nodes] == ["conv1", "bn1", "relu", "add", "relu_1"]
    assert block.inputs_of("add") == ("relu", "x")
    paths = set(param_specs(spec))
    assert "layer1.0.conv1.weight" in paths and "layer1.1.bn1.running_mean" in paths
    assert "fc.weight" in paths


def test_tuple_outputs_are_referred_to_by_index():
    x = _t(2, 3)
    rec = TraceRecorder([x], batch=2)
    rec.enter("pair", "Pair", [x])
    a, b = _t(2, 3), _t(2, 3)
    rec.node("left", ReLU(), [x], a)
    rec.node("right", ReLU(), [x], b)
    rec.exit("pair", (a, b))
    s = _t(2, 3)
    rec.node("add", Add(), [b, a], s)
    spec = rec.finish((s, a))
    assert spec.inputs_of("add") == ("pair.1", "pair.0")
    assert dict(spec.outputs) == {"0": "add", "1": "pair.0"} and spec.returns == "tuple"
    assert dict(spec["pair"].outputs) == {"0": "left", "1": "right"}


def test_every_unknown_is_listed_with_its_path():
    x = _t(2, 3)
    rec = TraceRecorder([x], batch=2)
    rec.enter("head", "Head", [x])
    stray = _t(2, 3)  # a constant the head made itself
    y = _t(2, 3)
    rec.node("add", Add(), [x, stray], y)
    rec.unknown("torch.fft.fft is not an operation xinit knows", "model.py:12")
    rec.exit("head", y)
    with pytest.raises(TraceError) as err:
        rec.finish(y)
    text = str(err.value)
    assert "2 unknown" in text and "head: add takes a tensor (argument 1)" in text
    assert "head: torch.fft.fft" in text and "model.py:12" in text
    assert isinstance(err.value, xinit.XinitError)


def test_a_module_called_twice_is_a_reuse_node_of_its_first_call():
    x = _t(2, 3)
    rec = TraceRecorder([x], batch=2)
    for _ in range(2):
        rec.enter("shared", "Block", [x])
        y = _t(2, 3)
        rec.node("fc", Linear(3, 3), [x], y)
        rec.exit("shared", y)
        z = _t(2, 3)
        rec.node("fc", Linear(3, 3), [y], z)  # a layer, called twice in the root's scope
        x = z
    spec = rec.finish(x)
    assert [(n, s) for n, s, _ in spec.nodes if isinstance(s, Reuse)] == [
        ("shared_1", Reuse("shared")),
        ("fc_1", Reuse("fc")),
    ]
    assert spec.inputs_of("shared_1") == ("fc",) and list(param_specs(spec)) == [
        "shared.fc.weight",
        "shared.fc.bias",
        "fc.weight",
        "fc.bias",
    ]


def test_a_module_that_computes_otherwise_when_called_again_is_an_error():
    x = _t(2, 3)
    rec = TraceRecorder([x], batch=2)
    for extra in (False, True):
        rec.enter("shared", "Block", [x])
        y = _t(2, 3)
        rec.node("fc", Linear(3, 3), [x], y)
        if extra:  # control flow on the input: a step only the second call makes
            z = _t(2, 3)
            rec.node("relu", ReLU(), [y], z)
            y = z
        rec.exit("shared", y)
        x = y
    with pytest.raises(TraceError, match="'shared' .* called twice and computes otherwise"):
        rec.finish(x)


def test_a_reuse_inside_a_container_the_model_never_calls_nests_with_it():
    x = _t(2, 3)
    rec = TraceRecorder([x], batch=2)
    a, b, c = _t(2, 3), _t(2, 3), _t(2, 3)
    rec.node("blocks.0", Linear(3, 3), [x], a)
    rec.node("blocks.1", Linear(3, 3), [a], b)
    rec.node("blocks.0", Linear(3, 3), [b], c)  # the first block again
    blocks = rec.finish(c)["blocks"]
    assert [(n, r) for n, _, r in blocks.nodes] == [("0", ("x",)), ("1", ("0",)), ("0_1", ("1",))]
    assert blocks["0_1"] == Reuse("0")


def test_a_reuse_across_a_container_the_model_never_calls_is_an_error():
    """The root's ``fc`` run again between a LayerList's calls: that call moves inside the
    container ``blocks`` (it reads one block and feeds the next), its first call stays out."""
    x = _t(2, 3)
    rec = TraceRecorder([x], batch=2)
    a, b, c, d = _t(2, 3), _t(2, 3), _t(2, 3), _t(2, 3)
    rec.node("fc", Linear(3, 3), [x], a)
    rec.node("blocks.0", Linear(3, 3), [a], b)
    rec.node("fc", Linear(3, 3), [b], c)
    rec.node("blocks.1", Linear(3, 3), [c], d)
    with pytest.raises(TraceError, match="'fc_1' calls 'fc' again from inside container 'blocks'"):
        rec.finish(d)


def test_children_of_a_container_never_called_nest_under_it():
    """``out += block(x)`` over a LayerList the forward iterates: the rows ``blocks.0``,
    ``blocks.1`` become node ``blocks`` (keys ``blocks.0.weight``), the adds stay outside and
    read ``blocks.0``/``blocks.1``."""
    x = _t(2, 3)
    rec = TraceRecorder([x], batch=2, type_name="Rep")
    a, b, s, t = _t(2, 3), _t(2, 3), _t(2, 3), _t(2, 3)
    rec.node("blocks.0", Linear(3, 3), [x], a)
    rec.node("add", Add(), [x, a], s)
    rec.node("blocks.1", Linear(3, 3), [x], b)
    rec.node("add", Add(), [s, b], t)
    spec = rec.finish(t)
    assert [n for n, _, _ in spec.nodes] == ["blocks", "add", "add_1"]
    assert spec.inputs_of("add") == ("x", "blocks.0") and spec.inputs_of("add_1") == (
        "add",
        "blocks.1",
    )
    assert set(param_specs(spec)) == {f"blocks.{i}.{p}" for i in (0, 1) for p in ("weight", "bias")}


def test_a_loop_over_a_container_nests_with_its_glue():
    """``for blk in self.blocks: x = relu(blk(x))``: the parameter-free glue between the calls
    moves inside (the last one, after them, stays outside); a layer with parameters between
    the calls is an error."""
    x = _t(2, 3)
    rec = TraceRecorder([x], batch=2)
    y = x
    for i in range(2):
        z, w = _t(2, 3), _t(2, 3)
        rec.node(f"blocks.{i}", Linear(3, 3), [y], z)
        rec.node("relu", ReLU(), [z], w)
        y = w
    spec = rec.finish(y)
    assert [n for n, _ in spec.steps] == ["blocks", "relu_1"]
    assert [n for n, _ in dict(spec.steps)["blocks"].steps] == ["0", "relu", "1"]

    rec = TraceRecorder([x], batch=2)
    y = x
    for i in range(2):
        z, w = _t(2, 3), _t(2, 3)
        rec.node(f"blocks.{i}", Linear(3, 3), [y], z)
        rec.node("norm", BatchNorm(3, dims=1), [z], w)
        y = w
    with pytest.raises(TraceError, match="container 'blocks' interleave with 'norm'"):
        rec.finish(y)


def test_an_operation_named_like_a_module_method_is_renamed():
    """``x.float()`` would be a node ``float``, a child hiding ``nn.Module.float``; the node
    holds no parameter, so it is renamed and the spec builds. A layer keeps its name."""
    from xinit.layers import Identity

    x = _t(2, 3)
    rec = TraceRecorder([x], batch=2)
    y, z = _t(2, 3), _t(2, 3)
    rec.node("float", Identity(), [x], y)
    rec.node("fc", Linear(3, 3), [y], z)
    spec = rec.finish(z)
    assert [n for n, _ in spec.steps] == ["float_op", "fc"]
