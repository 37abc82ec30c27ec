"""The Flax code export's emitters for sequence models (light: no flax import): layer norm,
embeddings, ViT's learned tokens, attention (``nnx.MultiHeadAttention``, or the packed
q, k, v rows through ``nnx.dot_product_attention``), PyTorch's LSTM/GRU/RNN as Flax cells
run by ``nnx.RNN`` and ``nnx.Bidirectional``, and the shape ops between them. Every one
writes the parameters at the paths of ``xinit.build(spec, "flax")``."""

from __future__ import annotations

from xinit.codegen.emitters import args_text
from xinit.codegen.fields import Context, Fields, literal
from xinit.codegen.structure import ExportError

from .codegen_layout import CHANNELS, LayerLayout

DEFAULT_INITS = {"bias_init": "nnx.initializers.zeros", "scale_init": "nnx.initializers.ones"}


def init_keywords(f: Fields, names: dict[str, str]) -> list[str]:
    """``kernel_init=...`` keywords for the layer's leaves (``names``: neutral leaf -> the
    constructor's keyword), omitted where the code is the class's own default."""
    codes = f.ctx.inits.get(f.where, {})
    out = []
    for leaf, kw in names.items():
        if kw in f.args:  # the law an argument of the class (its instances draw differently)
            out.append(f"{kw}={f.args[kw]}")
        elif leaf in codes and codes[leaf] != DEFAULT_INITS.get(kw):
            out.append(f"{kw}={codes[leaf]}")
    return out


def layout_at(f: Fields) -> LayerLayout | None:
    """How the layer's inputs are held in the file (see ``codegen_layout``)."""
    plan = getattr(f.ctx, "layouts", None)
    return None if plan is None else plan.at.get(f.where)


_CHANNELS_FIRST = '''def channels_first(x):
    """A channel-last array (N, *spatial, C) in PyTorch's order (N, C, *spatial)."""
    return jnp.moveaxis(x, -1, 1)
'''

_CHANNELS_LAST = '''def channels_last(x):
    """An array in PyTorch's order (N, C, *spatial) channel-last (N, *spatial, C)."""
    return jnp.moveaxis(x, 1, -1)
'''


def turn_function(ctx: Context, to: str) -> str:
    """The file's function turning an array into layout ``to``: ``channels_last`` or
    ``channels_first`` (defined once in the file)."""
    ctx.need("import jax.numpy as jnp")
    if to == CHANNELS:
        return ctx.helper("channels_last", _CHANNELS_LAST)
    return ctx.helper("channels_first", _CHANNELS_FIRST)


def converted(f: Fields, x: str, to: str | None) -> str:
    """``x`` turned into layout ``to`` by a small function of the file (None: as it is)."""
    return x if to is None else f"{turn_function(f.ctx, to)}({x})"


# ---- layers with parameters ------------------------------------------------------------------
def _layernorm(f: Fields) -> str:
    s = f.spec
    if len(s.normalized_shape) != 1:
        raise ExportError(f"{f.where}: the flax export writes a LayerNorm over the last dim only")
    arg = f.value("normalized_shape") is None  # a tuple argument of one size
    size = f"{f['normalized_shape']}[0]" if arg else s.normalized_shape[0]
    kws = [] if s.eps == 1e-6 else [f"epsilon={literal(s.eps)}"]
    if not s.elementwise_affine:
        kws += ["use_bias=False", "use_scale=False"]
    elif not s.bias:
        kws.append("use_bias=False")
    kws.append("use_fast_variance=False")
    kws += init_keywords(f, {"weight": "scale_init", "bias": "bias_init"})
    return f"nnx.LayerNorm({args_text(str(size), kws, 'rngs=rngs')})"


def _embedding(f: Fields) -> str:
    kws = init_keywords(f, {"weight": "embedding_init"})
    return f"nnx.Embed({args_text(f['num_embeddings'], f['embedding_dim'], kws, 'rngs=rngs')})"


def _learned(f: Fields) -> str:
    """An ``nnx.Param`` drawn by the spec's law (the node's one parameter)."""
    codes = f.ctx.inits.get(f.where, {})
    code = codes.get("", "nnx.initializers.zeros")
    shape = literal(f.spec.shape) if f.value("shape") is not None else f["shape"]
    return f"nnx.Param({code}(rngs.params(), {shape}))"


def _learned_apply(f: Fields, attr: str, args: list) -> str:
    (x,) = args
    if f.spec.op == "prepend":  # a class token before the sequence, one per sample
        f.ctx.need("import jax.numpy as jnp")
        reps = ", ".join([f"{x}.shape[0]"] + ["1"] * (len(f.spec.shape) - 1))
        return f"jnp.concatenate([jnp.tile({attr}[...], ({reps})), {x}], axis=1)"
    return f"{x} + {attr}[...]"


def _attention(f: Fields) -> str:
    """``nnx.MultiHeadAttention``: query/key/value kernels (E, H, D), out (H, D, E)."""
    s = f.spec
    if s.attn_mask or s.key_padding_mask or s.is_causal or s.num_kv_heads is not None:
        raise ExportError(f"{f.where}: the flax export writes MultiheadAttention without masks")
    if (s.kdim or s.embed_dim) != s.embed_dim or (s.vdim or s.embed_dim) != s.embed_dim:
        raise ExportError(f"{f.where}: the flax export writes kdim = vdim = embed_dim only")
    codes = f.ctx.inits.get(f.where, {})
    kernel, out_kernel = codes.get("in_proj_weight"), codes.get("out_proj.weight")
    bias, out_bias = codes.get("in_proj_bias"), codes.get("out_proj.bias")
    zeros = DEFAULT_INITS["bias_init"]
    kws = [] if s.bias else ["use_bias=False"]
    kws += [f"kernel_init={kernel}"] if kernel else []
    kws += [f"out_kernel_init={out_kernel}"] if out_kernel not in (None, kernel) else []
    kws += [f"bias_init={bias}"] if bias not in (None, zeros) else []
    kws += [f"out_bias_init={out_bias}"] if out_bias not in (None, bias or zeros) else []
    heads = f"{f['num_heads']}, {f['embed_dim']}"
    return f"nnx.MultiHeadAttention({args_text(heads, kws, 'decode=False', 'rngs=rngs')})"


def _attention_apply(f: Fields, attr: str, args: list) -> str:
    q = args[0]
    k = args[1] if len(args) > 1 else q
    v = args[2] if len(args) > 2 else k
    return f"{attr}({q})" if q == k == v else f"{attr}({q}, {k}, {v})"


_SDPA = '''def attention(x, num_heads: int, causal: bool = False, mask=None, bias=None):
    """Packed (N, L, 3E) rows q, k, v -> heads -> scaled dot-product attention -> (N, L, E);
    ``mask`` (L, L) True where a query may see a key; ``bias`` added to the scores."""
    n, length, packed = x.shape
    q, k, v = jnp.split(x.reshape(n, length, 3 * num_heads, -1), 3, axis=2)
    y = nnx.dot_product_attention(q, k, v, bias=bias, mask=mask, is_causal=causal)
    return y.reshape(n, length, packed // 3)
'''


_LOCAL_WINDOW = '''def local_window_mask(grid, window):
    """SVTR's local mixer: (L, L) bool over the L = H * W tokens of an (H, W) grid (row major),
    True where query (h, w) may see key (h', w'), a cell of its hk x wk window: h' - h in
    [-(hk // 2), hk - 1 - hk // 2], w' - w likewise."""
    (h, w), (hk, wk) = grid, window
    cells = jnp.arange(h * w)
    rows, cols = cells // w, cells % w
    dh, dw = rows[None, :] - rows[:, None], cols[None, :] - cols[:, None]
    inside_h = (dh >= -(hk // 2)) & (dh <= hk - 1 - hk // 2)
    inside_w = (dw >= -(wk // 2)) & (dw <= wk - 1 - wk // 2)
    return inside_h & inside_w
'''


def _sdpa(f: Fields, args: list) -> str:
    f.ctx.need("import jax.numpy as jnp")
    f.ctx.helper("attention", _SDPA)
    causal = ", causal=True" if f.spec.causal else ""
    if f.spec.attn_mask:
        return f"attention({args[0]}, {f['num_heads']}, bias={args[1]})"
    if f.spec.local_window is None:
        return f"attention({args[0]}, {f['num_heads']}{causal})"
    f.ctx.helper("local_window_mask", _LOCAL_WINDOW)
    mask = f"local_window_mask({f['grid']}, {f['local_window']})"
    return f"attention({args[0]}, {f['num_heads']}{causal}, mask={mask})"


# ---- recurrent layers: PyTorch's math in Flax's cells ----------------------------------------
_LSTM_CELL = '''class LSTMCell(nnx.LSTMCell):
    """nnx.LSTMCell with PyTorch's two biases: the input gates ii, if_, ig, io get one too
    (input_bias_init), added to the hidden side's (bias_init)."""

    def __init__(
        self,
        in_features,
        hidden_features,
        *,
        kernel_init,
        recurrent_kernel_init,
        input_bias_init,
        bias_init,
        rngs,
    ):
        super().__init__(
            in_features,
            hidden_features,
            kernel_init=kernel_init,
            recurrent_kernel_init=recurrent_kernel_init,
            bias_init=bias_init,
            rngs=rngs,
        )
        for name in ("ii", "if_", "ig", "io"):
            gate = nnx.Linear(
                in_features,
                hidden_features,
                kernel_init=kernel_init,
                bias_init=input_bias_init,
                rngs=rngs,
            )
            setattr(self, name, gate)
'''

_GRU_CELL = '''class GRUCell(nnx.RNNCellBase):
    """PyTorch's GRU cell: a Linear per gate on each side (ir, iz, in_ and hr, hz, hn), both
    with biases; b_hn acts inside r * (W_hn h + b_hn), which nnx.GRUCell has not."""

    def __init__(
        self,
        in_features,
        hidden_features,
        *,
        kernel_init,
        recurrent_kernel_init,
        input_bias_init,
        bias_init,
        rngs,
    ):
        self.hidden_features = hidden_features
        for name in ("ir", "iz", "in_"):
            gate = nnx.Linear(
                in_features,
                hidden_features,
                kernel_init=kernel_init,
                bias_init=input_bias_init,
                rngs=rngs,
            )
            setattr(self, name, gate)
        for name in ("hr", "hz", "hn"):
            gate = nnx.Linear(
                hidden_features,
                hidden_features,
                kernel_init=recurrent_kernel_init,
                bias_init=bias_init,
                rngs=rngs,
            )
            setattr(self, name, gate)

    def __call__(self, h, x):
        r = nnx.sigmoid(self.ir(x) + self.hr(h))
        z = nnx.sigmoid(self.iz(x) + self.hz(h))
        n = nnx.tanh(self.in_(x) + r * self.hn(h))
        h = (1.0 - z) * n + z * h
        return h, h

    def initialize_carry(self, input_shape, rngs=None):
        return jnp.zeros((*input_shape[:-1], self.hidden_features))

    @property
    def num_feature_axes(self) -> int:
        return 1
'''

_RNN_CELL = '''class RNNCell(nnx.SimpleCell):
    """nnx.SimpleCell with PyTorch's two biases: dense_h gets one too (bias_init), added to
    dense_i's (input_bias_init)."""

    def __init__(
        self,
        in_features,
        hidden_features,
        *,
        kernel_init,
        recurrent_kernel_init,
        input_bias_init,
        bias_init,
        rngs,
        activation_fn=nnx.tanh,
    ):
        super().__init__(
            in_features,
            hidden_features,
            activation_fn=activation_fn,
            kernel_init=kernel_init,
            recurrent_kernel_init=recurrent_kernel_init,
            bias_init=input_bias_init,
            rngs=rngs,
        )
        self.dense_h = nnx.Linear(
            hidden_features,
            hidden_features,
            kernel_init=recurrent_kernel_init,
            bias_init=bias_init,
            rngs=rngs,
        )
'''

_RECURRENT = '''class NAME(nnx.Module):
    """PyTorch's nn.NAME(batch_first=True) in Flax NNX: a CELL per layer k and direction
    (l{k}, l{k}_reverse: the state's names), run over the sequence by nnx.RNN (both
    directions by nnx.Bidirectional); the last layer's output sequence."""

    def __init__(
        self, input_size, hidden_size, num_layers=1, bidirectional=False, *, rngs, **cell_args
    ):
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        directions = ("", "_reverse") if bidirectional else ("",)
        for k in range(num_layers):
            size = input_size if k == 0 else hidden_size * len(directions)
            for suffix in directions:
                setattr(self, f"l{k}{suffix}", CELL(size, hidden_size, rngs=rngs, **cell_args))

    def __call__(self, x):
        for k in range(self.num_layers):
            forward = nnx.RNN(getattr(self, f"l{k}"))
            if self.bidirectional:
                backward = nnx.RNN(getattr(self, f"l{k}_reverse"))
                x = nnx.Bidirectional(forward, backward)(x)
            else:
                x = forward(x)
        return x
'''

_CELLS = {"lstm": ("LSTM", "LSTMCell", _LSTM_CELL), "gru": ("GRU", "GRUCell", _GRU_CELL)}
_CELLS["rnn"] = ("RNN", "RNNCell", _RNN_CELL)
# The cell's keyword for each neutral leaf family (PyTorch's weight_ih_l0, bias_hh_l1_reverse).
_RECURRENT_INITS = {
    "weight_ih": "kernel_init",
    "weight_hh": "recurrent_kernel_init",
    "bias_ih": "input_bias_init",
    "bias_hh": "bias_init",
}


def _recurrent(f: Fields) -> str:
    s = f.spec
    if s.bias is not True or getattr(s, "proj_size", 0):
        raise ExportError(
            f"{f.where}: the flax export writes {s.kind} layers with both biases and no "
            "projection only"
        )
    name, cell, source = _CELLS[s.kind]
    if s.kind == "gru":
        f.ctx.need("import jax.numpy as jnp")  # its cell's initial carry
    f.ctx.helper(cell, source)
    f.ctx.helper(name, _RECURRENT.replace("NAME", name).replace("CELL", cell))
    kws = [*f.kw("num_layers", 1), *f.kw("bidirectional", False)]
    codes: dict[str, set] = {}
    for leaf, code in f.ctx.inits.get(f.where, {}).items():
        family = "_".join(leaf.split("_")[:2])
        codes.setdefault(family, set()).add(code)
    for family, kw in _RECURRENT_INITS.items():
        found = codes.get(family, {"nnx.initializers.zeros"})
        if len(found) != 1:
            raise ExportError(
                f"{f.where}: its {family}_* tensors draw {len(found)} laws; the flax export "
                "gives the cells one initializer each"
            )
        kws.append(f"{kw}={found.pop()}")
    if s.kind == "rnn" and s.nonlinearity == "relu":
        kws.append("activation_fn=nnx.relu")
    return f"{name}({args_text(f['input_size'], f['hidden_size'], kws, 'rngs=rngs')})"


# ---- parameter-free steps on the sequence -------------------------------------------------------
def _gelu(f: Fields, args: list) -> str:
    exact = "" if f.spec.approximate == "tanh" else ", approximate=False"
    return f"nnx.gelu({args[0]}{exact})"


def _select(f: Fields, args: list) -> str:
    dim, index = f.value("dim"), f.value("index")
    if isinstance(dim, int) and 0 < dim <= 3 and index is not None:
        return f"{args[0]}[{', '.join([':'] * dim + [str(index)])}]"
    raise ExportError(f"{f.where}: the flax export selects a literal index of dims 1..3 only")


def _channels_first_axes(rank: int) -> tuple[int, ...]:
    """The channel-last axis each neutral axis of a rank-``rank`` image is held at."""
    return (0, rank - 1, *range(1, rank - 1))


def _permute(f: Fields, args: list) -> str:
    """``jnp.transpose`` with the neutral dims; on a channel-last image of known rank the
    two moves in one (CRNN's (N, H, W, C) -> (N, W, C, H))."""
    f.ctx.need("import jax.numpy as jnp")
    rec, x, dims = layout_at(f), args[0], tuple(f.spec.dims)
    if rec is not None and rec.to[0] is not None:
        rank = rec.held[0].rank
        if rank is not None and rank == len(dims):
            axes = _channels_first_axes(rank)
            dims = tuple(axes[d] for d in dims)
        else:
            x = converted(f, x, rec.to[0])
    return f"jnp.transpose({x}, {literal(dims)})"


def _reshape(f: Fields, args: list) -> str:
    """The neutral reshape, batch kept (read on the input as held: axis 0 either way)."""
    x = args[0]
    rec = layout_at(f)
    shape = f.value("shape")
    rest = ", ".join(map(str, shape)) if shape is not None else f"*{f['shape']}"
    held = converted(f, x, rec.to[0]) if rec is not None else x
    return f"{held}.reshape({x}.shape[0], {rest})"


def _position_ids(f: Fields, args: list) -> str:
    f.ctx.need("import jax.numpy as jnp")
    x = args[0]
    return f"jnp.broadcast_to(jnp.arange({x}.shape[1]), {x}.shape[:2])"


def _flatten(f: Fields, args: list) -> str:
    """A flatten of dims start..end in PyTorch's order: a channel-last image is read
    channel-first first, so a following Linear's weights are the build's. A traced flatten
    names its last dim (``flatten(1, 3)`` on an image): written as the flatten to the end."""
    start, end = f.value("start_dim"), f.value("end_dim")
    x, rec = args[0], layout_at(f)
    rank = None if rec is None else rec.held[0].rank
    if isinstance(end, int) and end >= 0 and rank is not None and end == rank - 1:
        end = -1  # the last dim, named
    if (start, end) == (1, -1):
        if rec is None or (rec.held[0].layout == CHANNELS and rec.held[0].matters):
            f.ctx.need("import jax.numpy as jnp")
            return f"jnp.moveaxis({x}, -1, 1).reshape({x}.shape[0], -1)"
        return f"{x}.reshape({x}.shape[0], -1)"
    if not isinstance(start, int) or not isinstance(end, int) or start < 1:
        raise ExportError(f"{f.where}: the flax export flattens from a literal dim only")
    if end != -1 and (rank is None or not start <= end % rank):
        raise ExportError(f"{f.where}: the flax export flattens a known rank up to a dim")
    turned = rec is not None and rec.to[0] is not None
    if turned and rank is None:
        raise ExportError(f"{f.where}: a flatten of a channel-last array of unknown rank")
    tail = () if end == -1 else tuple(range(end % rank + 1, rank))
    axes = (*range(start), *tail)
    if turned:
        axes = tuple(_channels_first_axes(rank)[a] for a in axes)  # read on x as held
        x = converted(f, x, rec.to[0])
    sizes = [f"{args[0]}.shape[{i}]" for i in axes]
    sizes.insert(start, "-1")
    return f"{x}.reshape({', '.join(sizes)})"


def _concat(f: Fields, args: list) -> str:
    """``jnp.concatenate`` on the axis the neutral dim is held at."""
    f.ctx.need("import jax.numpy as jnp")
    rec, dim = layout_at(f), f.value("dim")
    if not isinstance(dim, int):
        raise ExportError(f"{f.where}: the flax export concatenates on a literal dim only")
    if rec is not None:
        args = [converted(f, a, t) for a, t in zip(args, rec.to)]
        first = rec.out
        if first.layout == CHANNELS and first.matters:
            if first.rank is None:
                raise ExportError(f"{f.where}: a channel-last concat of unknown rank")
            d = dim % first.rank
            dim = first.rank - 1 if d == 1 else (d - 1 if d > 1 else 0)
    return f"jnp.concatenate([{', '.join(args)}], axis={dim})"


def register_sequence(table) -> None:
    """Add the sequence kinds' emitters to the Flax ``table``."""
    table.register("layernorm", module=_layernorm)
    table.register("embedding", module=_embedding)
    table.register("learned_parameter", module=_learned, apply=_learned_apply)
    table.register("learned_tensor", module=_learned, apply=lambda f, attr, args: f"{attr}[...]")
    table.register("multihead_attention", module=_attention, apply=_attention_apply)
    table.register("sdpa", call=_sdpa)
    for kind in ("lstm", "gru", "rnn"):
        table.register(kind, module=_recurrent)
    table.register("gelu", call=_gelu)
    table.register("select", call=_select)
    table.register("permute", call=_permute, converts=False)
    table.register("reshape", call=_reshape, converts=False)
    table.register("position_ids", call=_position_ids)
    table.register("flatten", call=_flatten, converts=False)  # reads the layouts itself
    table.register("concat", call=_concat, converts=False)


__all__ = ["init_keywords", "layout_at", "converted", "register_sequence", "turn_function"]
