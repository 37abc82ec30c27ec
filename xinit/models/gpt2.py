"""A GPT-2-shaped decoder with Hugging Face's ``GPT2Model`` names, any size.

Token ids (N, L) in, hidden states (N, L, n_embd) out: ``wte(ids) + wpe(arange(L))``, then
``n_layer`` pre-norm blocks ``h.N`` (``ln_1``, causal ``attn`` = {``c_attn`` Linear(E, 3E),
the parameter-free attention core, ``c_proj``}, residual add; ``ln_2``, ``mlp`` = {``c_fc``,
tanh GELU (HF's ``gelu_new``), ``c_proj``}, residual add), then ``ln_f``; LayerNorm eps 1e-5.
The keys are HF's in HF's order (``wte.weight``, ``wpe.weight``, ``h.0.ln_1.weight``, ...,
``ln_f.bias``); dropouts are left out. ``lm_head=True`` adds an *untied* bias-free
``lm_head`` Linear(E, vocab) (HF's GPT2LMHeadModel ties it to ``wte`` and prefixes the rest
with ``transformer.``).

**Conv1D.** HF's GPT-2 projections are ``Conv1D`` modules storing the weight (in, out). By
default they are plain ``Linear`` here (PyTorch's (out, in) in the torch build, drawn and
sharded like any Linear); ``conv1d=True`` builds the torch projections in HF's layout, so an
HF GPT-2 state dict loads with ``strict=True`` (drop the ``attn.bias``/``attn.masked_bias``
mask buffers older checkpoints carry). Either way the neutral weight is (out, in), Paddle and
Flax store (in, out), and ``xinit.port``/``transfer`` convert by kind, never by shape (a
square ``c_proj`` is never transposed by guess).

The init is HF's ``GPT2PreTrainedModel._init_weights``: Linear (Conv1D) weights and
embeddings N(0, 0.02), biases 0, LayerNorm 1/0, and every ``c_proj.weight`` N(0, 0.02 /
sqrt(2 n_layer)). ``xinit.presets.gpt2(n_layer)`` is the same as a policy.

``gpt2()`` is GPT-2 small (124,439,808 parameters); ``gpt2_1b()`` is a ~1B configuration
(24 layers, n_embd 1792, 14 heads: 1,017,302,272 parameters) for scale tests: build it on
torch's meta device (``xinit.build(spec, "torch", device="meta")``) to shard it first.
"""

from __future__ import annotations

import math

from ..blocks import Sequential
from ..graph import Graph
from ..initializers import Normal, Zeros
from ..layers import (
    GELU,
    Add,
    Embedding,
    LayerNorm,
    Linear,
    PositionIds,
    ScaledDotProductAttention,
    SpecError,
)
from ._arguments import zoo_model

STD = 0.02  # GPT2Config.initializer_range
EPS = 1e-5  # GPT2Config.layer_norm_epsilon


def _linear(cin: int, cout: int, std: float, conv1d: bool) -> Linear:
    return Linear(cin, cout, weight_init=Normal(0.0, std), bias_init=Zeros(), conv1d=conv1d)


def block(n_embd: int, n_head: int, n_layer: int, *, conv1d: bool = False) -> Graph:
    """HF's ``GPT2Block``: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))``, causal heads."""
    proj_std = STD / math.sqrt(2 * n_layer)  # HF's scaled init of every c_proj.weight
    attn = Sequential(
        c_attn=_linear(n_embd, 3 * n_embd, STD, conv1d),
        sdpa=ScaledDotProductAttention(n_head, causal=True),
        c_proj=_linear(n_embd, n_embd, proj_std, conv1d),
    )
    mlp = Sequential(
        c_fc=_linear(n_embd, 4 * n_embd, STD, conv1d),
        act=GELU("tanh"),
        c_proj=_linear(4 * n_embd, n_embd, proj_std, conv1d),
    )
    return Graph(
        [
            ("ln_1", LayerNorm(n_embd, eps=EPS), "x"),
            ("attn", attn, "ln_1"),
            ("residual1", Add(), ("x", "attn")),
            ("ln_2", LayerNorm(n_embd, eps=EPS), "residual1"),
            ("mlp", mlp, "ln_2"),
            ("residual2", Add(), ("residual1", "mlp")),
        ]
    )


@zoo_model
def gpt2(
    n_layer: int = 12,
    n_head: int = 12,
    n_embd: int = 768,
    vocab_size: int = 50257,
    n_positions: int = 1024,
    *,
    conv1d: bool = False,
    lm_head: bool = False,
) -> Graph:
    """GPT-2 (HF ``GPT2Model`` names) of any size: token ids (N, L) -> (N, L, n_embd), or
    logits (N, L, vocab_size) with ``lm_head``."""
    if n_embd % n_head:
        raise SpecError(f"gpt2: n_embd {n_embd} is not divisible by n_head {n_head}")
    for name, value in (("n_layer", n_layer), ("vocab_size", vocab_size)):
        if not isinstance(value, int) or value < 1:
            raise SpecError(f"gpt2: {name} must be a positive int; got {value!r}")
    embed = Normal(0.0, STD)
    nodes = [
        ("wte", Embedding(vocab_size, n_embd, weight_init=embed), "input_ids"),
        ("wpe", Embedding(n_positions, n_embd, weight_init=embed), "position_ids"),
        ("position_ids", PositionIds(n_positions), "input_ids"),
        ("embed", Add(), ("wte", "wpe")),
        (
            "h",
            Sequential(*[block(n_embd, n_head, n_layer, conv1d=conv1d) for _ in range(n_layer)]),
            "embed",
        ),
        ("ln_f", LayerNorm(n_embd, eps=EPS), "h"),
    ]
    if lm_head:
        head = Linear(n_embd, vocab_size, bias=False, weight_init=embed)
        nodes.append(("lm_head", head, "ln_f"))
    return Graph(nodes, inputs="input_ids")


@zoo_model(forwards=gpt2)
def gpt2_1b(**kw) -> Graph:
    """A ~1B GPT-2: 24 layers, n_embd 1792, 14 heads of 128 (1,017,302,272 parameters)."""
    return gpt2(**{"n_layer": 24, "n_head": 14, "n_embd": 1792, **kw})


__all__ = ["gpt2", "gpt2_1b", "block"]
