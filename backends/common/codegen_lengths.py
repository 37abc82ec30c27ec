"""The code export of the lengths-and-masks kinds (``argmax``, ``cumsum``, ``compare``,
``length_mask``: ``xinit/layers/lengths.py``) in torch, Paddle and Flax (light: no framework
import). Each is written as the build computes it: indices and truth values cast to the
input's dtype, the mask a small function of the file."""

from __future__ import annotations

from xinit.codegen.fields import Fields, literal

from .codegen import _operand

_SYMBOLS = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}

# framework -> (the import its expressions need, the cast of an array x to x's dtype, the
# argmax and cumsum of x along {dim})
_SPELLING = {
    "torch": ("", ".to({x}.dtype)", "{x}.argmax({dim})", "{x}.cumsum({dim})"),
    "paddle": (
        "import paddle",
        ".astype({x}.dtype)",
        "paddle.argmax({x}, axis={dim})",
        "paddle.cumsum({x}, axis={dim})",
    ),
    "flax": (
        "import jax.numpy as jnp",
        ".astype({x}.dtype)",
        "jnp.argmax({x}, axis={dim})",
        "jnp.cumsum({x}, axis={dim})",
    ),
}

_LENGTH_MASK = {
    "torch": '''def length_mask(lengths, size: int, diagonal: bool = False):
    """Lengths (N,) -> the additive attention mask (N, 1, size, size) in their dtype: -inf at
    keys j >= the length (and, diagonal, at key j = query i), 0 elsewhere."""
    steps = torch.arange(size, dtype=lengths.dtype, device=lengths.device)
    blocked = (steps >= lengths[:, None])[:, None, :].expand(-1, size, -1)
    if diagonal:
        blocked = blocked | torch.eye(size, dtype=torch.bool, device=lengths.device)
    mask = torch.zeros(blocked.shape, dtype=lengths.dtype, device=lengths.device)
    return mask.masked_fill(blocked, -torch.inf)[:, None]
''',
    "paddle": '''def length_mask(lengths, size: int, diagonal: bool = False):
    """Lengths (N,) -> the additive attention mask (N, 1, size, size) in their dtype: -inf at
    keys j >= the length (and, diagonal, at key j = query i), 0 elsewhere."""
    steps = paddle.arange(size, dtype=lengths.dtype)
    blocked = (steps >= lengths.unsqueeze(1)).unsqueeze(1).expand([-1, size, -1])
    if diagonal:
        blocked = paddle.logical_or(blocked, paddle.eye(size).astype("bool"))
    zeros = paddle.zeros(blocked.shape, dtype=lengths.dtype)
    return paddle.where(blocked, paddle.full_like(zeros, float("-inf")), zeros).unsqueeze(1)
''',
    "flax": '''def length_mask(lengths, size: int, diagonal: bool = False):
    """Lengths (N,) -> the additive attention mask (N, 1, size, size) in their dtype: -inf at
    keys j >= the length (and, diagonal, at key j = query i), 0 elsewhere."""
    steps = jnp.arange(size, dtype=lengths.dtype)
    blocked = jnp.broadcast_to((steps >= lengths[:, None])[:, None, :], (len(lengths), size, size))
    if diagonal:
        blocked = blocked | jnp.eye(size, dtype=bool)
    inf = jnp.asarray(-jnp.inf, lengths.dtype)
    return jnp.where(blocked, inf, jnp.zeros((), lengths.dtype))[:, None]
''',
}


def register_lengths(table, framework: str) -> None:
    """The four kinds' emitters in ``framework``'s spelling, into its emitter ``table``."""
    needs, cast, argmax, cumsum = _SPELLING[framework]
    imports = [needs] if needs else []

    def expression(template: str, cast_back: bool):
        def call(f: Fields, args: list) -> str:
            for line in imports:
                f.ctx.need(line)
            x = _operand(args[0])
            return template.format(x=x, dim=f["dim"]) + (cast.format(x=x) if cast_back else "")

        return call

    def compare(f: Fields, args: list) -> str:
        x = _operand(args[0])
        value = f.value("value")
        v = literal(float(value)) if value is not None else f["value"]
        return f"({x} {_SYMBOLS[f.spec.op]} {v})" + cast.format(x=x)

    def length_mask(f: Fields, args: list) -> str:
        f.ctx.need({"torch": "import torch", "paddle": "import paddle"}.get(framework, needs))
        f.ctx.helper("length_mask", _LENGTH_MASK[framework])
        return f"length_mask({args[0]}, {f['size']}, {f['diagonal']})"

    table.register("argmax", call=expression(argmax, cast_back=True))
    table.register("cumsum", call=expression(cumsum, cast_back=False))
    table.register("compare", call=compare)
    table.register("length_mask", call=length_mask)
