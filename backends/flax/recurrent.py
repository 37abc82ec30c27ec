"""PyTorch's LSTM, GRU and vanilla RNN in Flax NNX: xinit's own module, because Flax's cells
keep one bias per gate and cannot compute PyTorch's numbers; on the neutral batch-first
(N, L, D) sequence."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from .modules import zeros_init

_HIGHEST = jax.lax.Precision.HIGHEST  # float32 products, as PyTorch's (no TF32 on GPUs)


def _lstm_step(wh, bh, wr):
    def step(carry, gx):  # gx: the input side of the gates at one step, (N, 4H)
        h, c = carry
        i, f, g, o = jnp.split(gx + jnp.dot(h, wh, precision=_HIGHEST) + bh, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        if wr is not None:  # proj_size: h = W_hr (o * tanh(c)), (N, P)
            h = jnp.dot(h, wr, precision=_HIGHEST)
        return (h, c), h

    return step


def _gru_step(wh, bh):
    def step(h, gx):  # gx: W_i x + b_i at one step, (N, 3H)
        xr, xz, xn = jnp.split(gx, 3, axis=-1)
        hr, hz, hn = jnp.split(jnp.dot(h, wh, precision=_HIGHEST) + bh, 3, axis=-1)
        r, z = jax.nn.sigmoid(xr + hr), jax.nn.sigmoid(xz + hz)
        n = jnp.tanh(xn + r * hn)  # b_hn inside r * (W_hn h + b_hn), as PyTorch
        h = (1.0 - z) * n + z * h
        return h, h

    return step


def _rnn_step(wh, bh, activation):
    def step(h, gx):  # gx: W_i x + b_i at one step, (N, H)
        h = activation(gx + jnp.dot(h, wh, precision=_HIGHEST) + bh)
        return h, h

    return step


_RNN_ACTIVATIONS = {"rnn_tanh": jnp.tanh, "rnn_relu": jax.nn.relu}


@functools.partial(jax.jit, static_argnames=("kind", "reverse"))
def _run_cell(x, wi, bi, wh, bh, wr=None, *, kind: str, reverse: bool):
    """One layer and direction over a batch-first (N, L, D) sequence: the input side of every
    gate for all steps at once, then ``lax.scan`` over time; (N, L, H) out ((N, L, P) with
    an LSTM's projection ``wr`` (H, P))."""
    gx = jnp.einsum("nld,dg->lng", x, wi, precision=_HIGHEST) + bi
    if reverse:
        gx = gx[::-1]
    h = jnp.zeros((x.shape[0], wh.shape[0]), x.dtype)
    if kind == "lstm":
        c = jnp.zeros((x.shape[0], wh.shape[1] // 4), x.dtype)
        _, hs = jax.lax.scan(_lstm_step(wh, bh, wr), (h, c), gx)
    elif kind in _RNN_ACTIVATIONS:
        _, hs = jax.lax.scan(_rnn_step(wh, bh, _RNN_ACTIVATIONS[kind]), h, gx)
    else:
        _, hs = jax.lax.scan(_gru_step(wh, bh), h, gx)
    if reverse:
        hs = hs[::-1]
    return jnp.transpose(hs, (1, 0, 2))


def _gate(n_in: int, n_out: int, bias: bool) -> nnx.Linear:
    """One gate's kernel (in, H), with a bias when the spec has it; xinit writes both."""
    return nnx.Linear(
        n_in,
        n_out,
        use_bias=bias,
        kernel_init=zeros_init,
        bias_init=zeros_init,
        rngs=nnx.Rngs(0),
    )


class RecurrentCell(nnx.Module):
    """One layer and direction of a recurrent spec: a ``kernel`` (in, H) per gate on each
    side, named as Flax's ``nnx.LSTMCell`` names them (``ii``, ``if_``, ``ig``, ``io`` on
    the input, ``hi``, ``hf``, ``hg``, ``ho`` on the hidden state; a GRU's ``ir``, ``iz``,
    ``in_`` and ``hr``, ``hz``, ``hn``; an RNN's ``dense_i``, ``dense_h``), and PyTorch's
    biases: a ``bias`` on each input gate (b_i*) and on each hidden gate (b_h*) where the
    spec has them. ``gates``: the names,
    input side then hidden side, in PyTorch's gate order (the lowering's ``GATES``). An LSTM
    with ``proj_size`` P also has ``proj``, the projection's kernel (H, P)."""

    def __init__(self, spec, n_in: int, gates):
        h, fed_back = spec.hidden_size, spec.projected_size
        self.input_gates, self.hidden_gates = (tuple(side) for side in gates)
        for name in self.input_gates:
            setattr(self, name, _gate(n_in, h, spec.has_bias("ih")))
        for name in self.hidden_gates:
            setattr(self, name, _gate(fed_back, h, spec.has_bias("hh")))
        self.proj = _gate(h, fed_back, False) if fed_back != h else None  # LSTM proj_size

    def _side(self, names):
        gates = [getattr(self, name) for name in names]
        kernel = jnp.concatenate([g.kernel[...] for g in gates], axis=1)  # (in, G*H)
        if gates[0].bias is None:
            return kernel, jnp.zeros((kernel.shape[1],), kernel.dtype)
        return kernel, jnp.concatenate([g.bias[...] for g in gates])

    def run(self, x, kind: str, reverse: bool):
        wi, bi = self._side(self.input_gates)
        wh, bh = self._side(self.hidden_gates)
        wr = None if self.proj is None else self.proj.kernel[...]
        return _run_cell(x, wi, bi, wh, bh, wr, kind=kind, reverse=reverse)


class Recurrent(nnx.Module):
    """PyTorch's LSTM/GRU (``spec.kind``) in Flax: a :class:`RecurrentCell` per layer ``k``
    and direction, named ``l{k}`` and ``l{k}_reverse`` as PyTorch suffixes its tensors.

    Flax's own cells cannot compute PyTorch's numbers: ``nnx.LSTMCell`` keeps one bias per
    gate (the hidden side), ``nnx.GRUCell`` keeps the input side's and has no b_hn, which
    PyTorch applies inside r * (W_hn h + b_hn). So this module keeps both biases, computes
    PyTorch's equations and takes and returns the neutral batch-first (N, L, D) sequence
    (the output sequence alone); kernels (in, H) per gate, as Flax's LSTMCell holds them."""

    def __init__(self, spec, gates):
        self.spec = spec
        for k, sfx in spec.cells():
            setattr(self, f"l{k}{sfx}", RecurrentCell(spec, spec.layer_input(k), gates))

    def __call__(self, x):
        s = self.spec
        kind = f"rnn_{s.nonlinearity}" if s.kind == "rnn" else s.kind
        for k in range(s.num_layers):
            outs = [
                getattr(self, f"l{k}{sfx}").run(x, kind, reverse=bool(sfx))
                for sfx in ("", "_reverse")[: s.directions]
            ]
            x = outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=-1)
        return x


class LSTM(Recurrent):
    """PyTorch's LSTM in Flax (see :class:`Recurrent`)."""


class GRU(Recurrent):
    """PyTorch's GRU in Flax (see :class:`Recurrent`)."""


class RNN(Recurrent):
    """PyTorch's vanilla RNN (tanh or relu) in Flax (see :class:`Recurrent`); its one gate
    per side is named as ``nnx.SimpleCell``'s ``dense_i``/``dense_h``."""
