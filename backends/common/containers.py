"""The forward logic of xinit's containers (steps that reuse a child, residual blocks,
graphs), written once for every framework: a framework's container class mixes one in and
gives ``_child(name)``."""

from __future__ import annotations


class StepsLogic:
    """Forward of a container whose steps may reuse a child; subclasses give ``_child``."""

    def _run_steps(self, x):
        for name in self._xinit_steps:
            x = self._child(name)(x)
        return x


class ResidualLogic:
    """Forward of ``activation(body(x) + shortcut(x))``; subclasses give ``_child``."""

    def _run_residual(self, x):
        out = x
        for name in self._xinit_body:
            out = self._child(name)(out)
        out = out + (self._child(self._xinit_shortcut)(x) if self._xinit_shortcut else x)
        return self._child(self._xinit_activation)(out) if self._xinit_activation else out


class GraphLogic:
    """Forward of a graph: nodes in topological order, each on its inputs' values, a
    :class:`~xinit.graph.Reuse` node calling its target's child again; the outputs as one
    value, a tuple or a dict. Subclasses give ``_child``; ``_call`` is the hook a framework
    that records outputs (Flax) overrides."""

    def _run_graph(self, *xs):
        if len(xs) != len(self._xinit_inputs):
            raise TypeError(f"the graph takes inputs {self._xinit_inputs}; got {len(xs)}")
        env = dict(zip(self._xinit_inputs, xs))
        for name, refs, callee in self._xinit_nodes:
            env[name] = self._call(name, callee, [_resolve(env, r) for r in refs])
        outs = [_resolve(env, ref) for _, ref in self._xinit_outputs]
        if self._xinit_returns == "single":
            return outs[0]
        if self._xinit_returns == "tuple":
            return tuple(outs)
        return {key: v for (key, _), v in zip(self._xinit_outputs, outs)}

    def _call(self, name, callee, args):
        """Node ``name``'s value: child ``callee`` (the node's own, or a Reuse's target)."""
        return self._child(callee)(*args)


def _resolve(env: dict, ref: str):
    node, _, key = ref.partition(".")
    return env[node][key] if key else env[node]


def graph_layout(spec) -> dict:
    """The plain data a native graph container keeps: the nodes in execution order as
    (name, inputs, the child it calls: its own, or a Reuse's target), the graph's input
    names, its outputs and how it returns them."""
    return {
        "nodes": [(name, tuple(spec.inputs_of(name)), spec.called(name)[0]) for name in spec.order],
        "inputs": tuple(spec.inputs),
        "outputs": tuple(spec.outputs),
        "returns": spec.returns,
    }
