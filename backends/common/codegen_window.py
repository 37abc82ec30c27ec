"""Code export of shifted-window attention (``window_attention``, ``window_attention_v2``):
torchvision's ``ShiftedWindowAttention`` and ``ShiftedWindowAttentionV2`` retyped as classes
of the generated torch or Paddle file, with torchvision's names (``qkv``, ``proj``,
``relative_position_bias_table``; v2 ``logit_scale``, ``cpb_mlp``, ``relative_coords_table``)
and the steps of ``common/window_attention.py`` in its order, so the file gives the build's
bits. The index, the shift mask and v2's coordinates are computed in the file by the numpy
functions xinit computes them with (their source, from ``xinit/layers/window.py``)."""

from __future__ import annotations

import inspect

from xinit.codegen.emitters import args_text
from xinit.codegen.fields import Fields
from xinit.layers import window

_DOC = """\
    \"\"\"torchvision's ShiftedWindowAttention (Swin v1) on (B, H, W, C): the map padded to
    whole windows and rolled by -shift_size (an axis whose window covers it is not shifted),
    attention within each window with a learned bias per relative position (-100 between
    tokens of different regions of a shifted window), projected, rolled back and cropped.\"\"\"\
"""

_DOC_V2 = """\
    \"\"\"torchvision's ShiftedWindowAttentionV2 (Swin v2): cosine scores times a learned
    scale per head, the bias 16 sigmoid(cpb_mlp(relative_coords_table)); the k third of
    qkv's bias is left out, as torchvision zeroes it.\"\"\"\
"""

_TORCH = '''class ShiftedWindowAttention(nn.Module):
DOC

    def __init__(self, dim, window_size, shift_size, num_heads, qkv_bias=True, proj_bias=True):
        super().__init__()
        self.window_size, self.shift_size = tuple(window_size), tuple(shift_size)
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        self.define_position_bias()
        index = torch.from_numpy(relative_position_index(self.window_size))
        self.register_buffer("relative_position_index", index)

    def define_position_bias(self):
        """The learned bias of each relative position: a (2 Wh - 1)(2 Ww - 1) x heads table."""
        rows = (2 * self.window_size[0] - 1) * (2 * self.window_size[1] - 1)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(rows, self.num_heads))

    def bias_table(self):
        return self.relative_position_bias_table

    def position_bias(self, n: int):
        """(1, heads, N, N): the bias of each query-key pair of a window."""
        bias = self.bias_table()[self.relative_position_index].reshape(n, n, -1)
        return bias.permute(2, 0, 1).reshape(1, -1, n, n)

    def project_qkv(self, x):
        return self.qkv(x)

    def scores(self, q, k):
        """Scaled dot products of the heads' queries and keys."""
        return (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)

    def forward(self, x):
        b, h, w, c = x.shape
        (wh, ww), heads = self.window_size, self.num_heads
        pad_h, pad_w = h + (-h) % wh, w + (-w) % ww
        x = nn.functional.pad(x, (0, 0, 0, pad_w - w, 0, pad_h - h))
        sh = 0 if wh >= pad_h else self.shift_size[0]
        sw = 0 if ww >= pad_w else self.shift_size[1]
        if sh or sw:
            x = torch.roll(x, shifts=(-sh, -sw), dims=(1, 2))
        nh, nw, n = pad_h // wh, pad_w // ww, wh * ww
        x = x.reshape(b, nh, wh, nw, ww, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, n, c)
        qkv = self.project_qkv(x).reshape(-1, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        attn = self.scores(qkv[0], qkv[1]) + self.position_bias(n)
        if sh or sw:
            mask = torch.from_numpy(shift_mask(pad_h, pad_w, self.window_size, (sh, sw)))
            attn = attn.reshape(b, nh * nw, heads, n, n)
            attn = attn + mask.to(attn).reshape(1, nh * nw, 1, n, n)
            attn = attn.reshape(-1, heads, n, n)
        x = (attn.softmax(-1) @ qkv[2]).transpose(1, 2).reshape(-1, n, c)
        x = self.proj(x).reshape(b, nh, nw, wh, ww, c).permute(0, 1, 3, 2, 4, 5)
        x = x.reshape(b, pad_h, pad_w, c)
        if sh or sw:
            x = torch.roll(x, shifts=(sh, sw), dims=(1, 2))
        return x[:, :h, :w, :]
'''

_TORCH_V2 = '''class ShiftedWindowAttentionV2(ShiftedWindowAttention):
DOC

    def __init__(self, dim, window_size, shift_size, num_heads, qkv_bias=True, proj_bias=True):
        super().__init__(dim, window_size, shift_size, num_heads, qkv_bias, proj_bias)
        self.logit_scale = nn.Parameter(torch.full((num_heads, 1, 1), math.log(10.0)))

    def define_position_bias(self):
        """A small MLP of each offset's coordinates (torchvision's cpb_mlp)."""
        hidden, heads = nn.Linear(2, 512), nn.Linear(512, self.num_heads, bias=False)
        self.cpb_mlp = nn.Sequential(hidden, nn.ReLU(inplace=True), heads)
        coords = torch.from_numpy(relative_coords_table(self.window_size))
        self.register_buffer("relative_coords_table", coords)

    def bias_table(self):
        return self.cpb_mlp(self.relative_coords_table).reshape(-1, self.num_heads)

    def position_bias(self, n: int):
        return 16 * torch.sigmoid(super().position_bias(n))

    def project_qkv(self, x):
        bias = self.qkv.bias
        if bias is not None:
            c = bias.shape[0] // 3
            bias = bias.clone()
            bias[c : 2 * c] = 0.0
        return nn.functional.linear(x, self.qkv.weight, bias)

    def scores(self, q, k):
        """Cosine similarities times each head's exp(min(logit_scale, log 100))."""
        q, k = nn.functional.normalize(q, dim=-1), nn.functional.normalize(k, dim=-1)
        scale = torch.clamp(self.logit_scale, max=math.log(100.0)).exp()
        return (q @ k.transpose(-2, -1)) * scale
'''

_PADDLE = '''class ShiftedWindowAttention(nn.Layer):
DOC

    def __init__(self, dim, window_size, shift_size, num_heads, qkv_bias=True, proj_bias=True):
        super().__init__()
        self.window_size, self.shift_size = tuple(window_size), tuple(shift_size)
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias_attr=None if qkv_bias else False)
        self.proj = nn.Linear(dim, dim, bias_attr=None if proj_bias else False)
        self.define_position_bias()
        index = paddle.to_tensor(relative_position_index(self.window_size))
        self.register_buffer("relative_position_index", index, persistable=False)

    def define_position_bias(self):
        """The learned bias of each relative position: a (2 Wh - 1)(2 Ww - 1) x heads table."""
        rows = (2 * self.window_size[0] - 1) * (2 * self.window_size[1] - 1)
        zero = nn.initializer.Constant(0.0)
        self.relative_position_bias_table = self.create_parameter(
            [rows, self.num_heads], default_initializer=zero
        )

    def bias_table(self, dtype):
        return self.relative_position_bias_table

    def position_bias(self, n: int, dtype):
        """(1, heads, N, N): the bias of each query-key pair of a window."""
        bias = self.bias_table(dtype)[self.relative_position_index].reshape([n, n, -1])
        return bias.transpose([2, 0, 1]).reshape([1, -1, n, n])

    def project_qkv(self, x):
        return self.qkv(x)

    def scores(self, q, k):
        """Scaled dot products of the heads' queries and keys."""
        return (q * q.shape[-1] ** -0.5) @ k.transpose([0, 1, 3, 2])

    def forward(self, x):
        b, h, w, c = x.shape
        (wh, ww), heads = self.window_size, self.num_heads
        pad_h, pad_w = h + (-h) % wh, w + (-w) % ww
        x = nn.functional.pad(x, [0, 0, 0, pad_h - h, 0, pad_w - w, 0, 0])
        sh = 0 if wh >= pad_h else self.shift_size[0]
        sw = 0 if ww >= pad_w else self.shift_size[1]
        if sh or sw:
            x = paddle.roll(x, shifts=(-sh, -sw), axis=(1, 2))
        nh, nw, n = pad_h // wh, pad_w // ww, wh * ww
        x = x.reshape([b, nh, wh, nw, ww, c]).transpose([0, 1, 3, 2, 4, 5])
        x = x.reshape([-1, n, c])
        qkv = self.project_qkv(x).reshape([-1, n, 3, heads, c // heads])
        qkv = qkv.transpose([2, 0, 3, 1, 4])
        attn = self.scores(qkv[0], qkv[1]) + self.position_bias(n, x.dtype)
        if sh or sw:
            mask = shift_mask(pad_h, pad_w, self.window_size, (sh, sw))
            attn = attn.reshape([b, nh * nw, heads, n, n])
            attn = attn + paddle.to_tensor(mask, dtype=attn.dtype).reshape([1, nh * nw, 1, n, n])
            attn = attn.reshape([-1, heads, n, n])
        x = nn.functional.softmax(attn, axis=-1) @ qkv[2]
        x = self.proj(x.transpose([0, 2, 1, 3]).reshape([-1, n, c]))
        x = x.reshape([b, nh, nw, wh, ww, c]).transpose([0, 1, 3, 2, 4, 5])
        x = x.reshape([b, pad_h, pad_w, c])
        if sh or sw:
            x = paddle.roll(x, shifts=(sh, sw), axis=(1, 2))
        return x[:, :h, :w, :]
'''

_PADDLE_V2 = '''class ShiftedWindowAttentionV2(ShiftedWindowAttention):
DOC

    def __init__(self, dim, window_size, shift_size, num_heads, qkv_bias=True, proj_bias=True):
        super().__init__(dim, window_size, shift_size, num_heads, qkv_bias, proj_bias)
        ten = nn.initializer.Constant(math.log(10.0))
        self.logit_scale = self.create_parameter([num_heads, 1, 1], default_initializer=ten)

    def define_position_bias(self):
        """A small MLP of each offset's coordinates (torchvision's cpb_mlp)."""
        hidden = nn.Linear(2, 512)
        heads = nn.Linear(512, self.num_heads, bias_attr=False)
        self.cpb_mlp = nn.Sequential(hidden, nn.ReLU(), heads)
        coords = paddle.to_tensor(relative_coords_table(self.window_size))
        self.register_buffer("relative_coords_table", coords, persistable=True)

    def bias_table(self, dtype):
        coords = self.relative_coords_table.astype(dtype)
        return self.cpb_mlp(coords).reshape([-1, self.num_heads])

    def position_bias(self, n: int, dtype):
        return 16 * nn.functional.sigmoid(super().position_bias(n, dtype))

    def project_qkv(self, x):
        bias = self.qkv.bias
        if bias is not None:
            c = bias.shape[0] // 3
            bias = paddle.concat([bias[:c], paddle.zeros_like(bias[c : 2 * c]), bias[2 * c :]])
        return nn.functional.linear(x, self.qkv.weight, bias)

    def scores(self, q, k):
        """Cosine similarities times each head's exp(min(logit_scale, log 100))."""
        q, k = nn.functional.normalize(q, axis=-1), nn.functional.normalize(k, axis=-1)
        scale = paddle.clip(self.logit_scale, max=math.log(100.0)).exp()
        return (q @ k.transpose([0, 1, 3, 2])) * scale
'''

_SOURCES = {
    "torch": (_TORCH, _TORCH_V2, "import torch"),
    "paddle": (_PADDLE, _PADDLE_V2, "import paddle"),
}


def window_attention_emitter(framework: str):
    """``ShiftedWindowAttention(dim, window_size, shift_size, num_heads)`` (v2: ...V2), a
    class of the ``framework`` file (with the numpy functions it calls) named as
    torchvision's, whose state keys are xinit's build's."""
    v1, v2, import_line = _SOURCES[framework]

    def write(f: Fields) -> str:
        ctx = f.ctx
        for line in ("import numpy as np", import_line):
            ctx.need(line)
        for constant in (window.relative_position_index, window.shift_mask):
            ctx.helper(constant.__name__, inspect.getsource(constant))
        ctx.helper("ShiftedWindowAttention", v1.replace("DOC", _DOC))
        name = "ShiftedWindowAttention"
        if f.spec.cosine:
            ctx.need("import math")
            ctx.helper("relative_coords_table", inspect.getsource(window.relative_coords_table))
            ctx.helper("ShiftedWindowAttentionV2", v2.replace("DOC", _DOC_V2))
            name += "V2"
        shape = (f["dim"], f["window_size"], f["shift_size"], f["num_heads"])
        kws = [*f.kw("qkv_bias", True), *f.kw("proj_bias", True)]
        return f"{name}({args_text(*shape, kws)})"

    return write


# ---- Flax NNX (the laws as initializers the constructor takes, by neutral leaf) --------------
_FLAX_LINEAR = '''def linear(n_in: int, n_out: int, bias: bool, inits: dict, name: str, rngs):
    """nnx.Linear drawn by the laws ``inits`` gives ``name + ".weight"`` and ``".bias"``."""
    bias_init = {"bias_init": inits[name + ".bias"]} if bias else {}
    kernel_init = inits[name + ".weight"]
    return nnx.Linear(n_in, n_out, use_bias=bias, kernel_init=kernel_init, rngs=rngs, **bias_init)
'''

_FLAX = '''class ShiftedWindowAttention(nnx.Module):
DOC

    def __init__(
        self, dim, window_size, shift_size, num_heads, qkv_bias=True, proj_bias=True, *, inits, rngs
    ):
        self.window_size, self.shift_size = tuple(window_size), tuple(shift_size)
        self.num_heads = num_heads
        self.qkv = linear(dim, dim * 3, qkv_bias, inits, "qkv", rngs)
        self.proj = linear(dim, dim, proj_bias, inits, "proj", rngs)
        self.define_position_bias(inits, rngs)

    def define_position_bias(self, inits, rngs):
        """The learned bias of each relative position: a (2 Wh - 1)(2 Ww - 1) x heads table."""
        rows = (2 * self.window_size[0] - 1) * (2 * self.window_size[1] - 1)
        draw = inits["relative_position_bias_table"]
        self.relative_position_bias_table = nnx.Param(draw(rngs.params(), (rows, self.num_heads)))

    def bias_table(self, dtype):
        return self.relative_position_bias_table[...]

    def position_bias(self, n: int, dtype):
        """(1, heads, N, N): the bias of each query-key pair of a window."""
        index = relative_position_index(self.window_size)
        bias = self.bias_table(dtype)[index].reshape(n, n, -1)
        return bias.transpose(2, 0, 1).reshape(1, -1, n, n)

    def project_qkv(self, x):
        return self.qkv(x)

    def scores(self, q, k):
        """Scaled dot products of the heads' queries and keys."""
        return (q * q.shape[-1] ** -0.5) @ jnp.swapaxes(k, -2, -1)

    def __call__(self, x):
        b, h, w, c = x.shape
        (wh, ww), heads = self.window_size, self.num_heads
        pad_h, pad_w = h + (-h) % wh, w + (-w) % ww
        x = jnp.pad(x, ((0, 0), (0, pad_h - h), (0, pad_w - w), (0, 0)))
        sh = 0 if wh >= pad_h else self.shift_size[0]
        sw = 0 if ww >= pad_w else self.shift_size[1]
        if sh or sw:
            x = jnp.roll(x, (-sh, -sw), axis=(1, 2))
        nh, nw, n = pad_h // wh, pad_w // ww, wh * ww
        x = x.reshape(b, nh, wh, nw, ww, c).transpose(0, 1, 3, 2, 4, 5).reshape(-1, n, c)
        qkv = self.project_qkv(x).reshape(-1, n, 3, heads, c // heads).transpose(2, 0, 3, 1, 4)
        attn = self.scores(qkv[0], qkv[1]) + self.position_bias(n, x.dtype)
        if sh or sw:
            mask = shift_mask(pad_h, pad_w, self.window_size, (sh, sw))
            attn = attn.reshape(b, nh * nw, heads, n, n)
            attn = attn + jnp.asarray(mask, attn.dtype).reshape(1, nh * nw, 1, n, n)
            attn = attn.reshape(-1, heads, n, n)
        x = jax.nn.softmax(attn, axis=-1) @ qkv[2]
        x = self.proj(x.transpose(0, 2, 1, 3).reshape(-1, n, c))
        x = x.reshape(b, nh, nw, wh, ww, c).transpose(0, 1, 3, 2, 4, 5)
        x = x.reshape(b, pad_h, pad_w, c)
        if sh or sw:
            x = jnp.roll(x, (sh, sw), axis=(1, 2))
        return x[:, :h, :w, :]
'''

_FLAX_V2 = '''class ShiftedWindowAttentionV2(ShiftedWindowAttention):
DOC

    def __init__(
        self, dim, window_size, shift_size, num_heads, qkv_bias=True, proj_bias=True, *, inits, rngs
    ):
        args = (dim, window_size, shift_size, num_heads, qkv_bias, proj_bias)
        super().__init__(*args, inits=inits, rngs=rngs)
        self.logit_scale = nnx.Param(inits["logit_scale"](rngs.params(), (num_heads, 1, 1)))

    def define_position_bias(self, inits, rngs):
        """A small MLP of each offset's coordinates (torchvision's cpb_mlp)."""
        hidden = linear(2, 512, True, inits, "cpb_mlp.0", rngs)
        heads = linear(512, self.num_heads, False, inits, "cpb_mlp.2", rngs)
        self.cpb_mlp = nnx.Sequential(hidden, jax.nn.relu, heads)
        coords = jnp.asarray(relative_coords_table(self.window_size))
        self.relative_coords_table = nnx.BatchStat(coords)  # state, not learned

    def bias_table(self, dtype):
        coords = self.relative_coords_table[...].astype(dtype)
        return self.cpb_mlp(coords).reshape(-1, self.num_heads)

    def position_bias(self, n: int, dtype):
        return 16 * jax.nn.sigmoid(super().position_bias(n, dtype))

    def project_qkv(self, x):
        y = x @ self.qkv.kernel[...]
        if self.qkv.bias is not None:
            bias = self.qkv.bias[...]
            c = bias.shape[0] // 3
            y = y + jnp.concatenate([bias[:c], jnp.zeros_like(bias[c : 2 * c]), bias[2 * c :]])
        return y

    def scores(self, q, k):
        """Cosine similarities times each head's exp(min(logit_scale, log 100))."""
        q, k = (t / jnp.maximum(jnp.linalg.norm(t, axis=-1, keepdims=True), 1e-12) for t in (q, k))
        scale = jnp.exp(jnp.minimum(self.logit_scale[...], np.log(100.0)))
        return (q @ jnp.swapaxes(k, -2, -1)) * scale
'''


def flax_window_attention(f: Fields) -> str:
    """``ShiftedWindowAttention(dim, window_size, shift_size, num_heads, inits={...},
    rngs=rngs)`` (v2: ...V2), a class of the Flax file whose state paths are the build's;
    ``inits``: each neutral leaf's initializer, as the spec's laws give them."""
    ctx = f.ctx
    for line in ("import numpy as np", "import jax", "import jax.numpy as jnp"):
        ctx.need(line)
    for constant in (window.relative_position_index, window.shift_mask):
        ctx.helper(constant.__name__, inspect.getsource(constant))
    ctx.helper("linear", _FLAX_LINEAR)
    ctx.helper("ShiftedWindowAttention", _FLAX.replace("DOC", _DOC))
    name = "ShiftedWindowAttention"
    if f.spec.cosine:
        ctx.helper("relative_coords_table", inspect.getsource(window.relative_coords_table))
        ctx.helper("ShiftedWindowAttentionV2", _FLAX_V2.replace("DOC", _DOC_V2))
        name += "V2"
    codes = ctx.inits.get(f.where, {})
    inits = "{" + ", ".join(f'"{leaf}": {code}' for leaf, code in codes.items()) + "}"
    shape = (f["dim"], f["window_size"], f["shift_size"], f["num_heads"])
    kws = [*f.kw("qkv_bias", True), *f.kw("proj_bias", True), f"inits={inits}", "rngs=rngs"]
    return f"{name}({args_text(*shape, kws)})"


__all__ = ["window_attention_emitter", "flax_window_attention"]
