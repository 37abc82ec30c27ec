"""The conventions around initialisation (``xinit.defaults.CONVENTIONS``: BatchNorm momentum,
eps, running variance, pooling, layouts, RNG, attention masks, transformer stacks), each
machine value measured on the frameworks' own layers."""

from __future__ import annotations

import inspect
import math
import warnings

import numpy as np
import pytest
from helpers import require_backend

from xinit import defaults as D

warnings.filterwarnings("ignore", category=DeprecationWarning)


def _bn_one_step(framework):
    """(weight of a new batch, running variance written) after one training batch [0, 1, 2, 3]."""
    x = np.arange(4, dtype=np.float32).reshape(4, 1)  # mean 1.5, biased var 1.25
    if framework == "torch":
        import torch

        bn = torch.nn.BatchNorm1d(1)
        bn.train()
        bn(torch.tensor(x))
        mean, var = bn.running_mean.item(), bn.running_var.item()
    elif framework == "paddle":
        import paddle

        bn = paddle.nn.BatchNorm1D(1)
        bn.train()
        bn(paddle.to_tensor(x))
        mean, var = float(bn._mean.numpy()[0]), float(bn._variance.numpy()[0])
    else:
        import jax.numpy as jnp
        from flax import nnx

        bn = nnx.BatchNorm(1, rngs=nnx.Rngs(0))
        bn(jnp.asarray(x))
        mean, var = float(bn.mean.get_value()[0]), float(bn.var.get_value()[0])
    w = mean / 1.5
    written = (var - (1 - w)) / w
    if math.isclose(written, 1.25, rel_tol=1e-3):
        return w, "biased"
    if math.isclose(written, 5 / 3, rel_tol=1e-3):
        return w, "unbiased"
    return w, f"neither ({written})"


def _eps(framework, kind):
    if framework == "torch":
        import torch

        return (torch.nn.BatchNorm2d(4) if kind == "bn" else torch.nn.LayerNorm(4)).eps
    if framework == "paddle":
        import paddle

        return (paddle.nn.BatchNorm2D(4) if kind == "bn" else paddle.nn.LayerNorm(4))._epsilon
    from flax import nnx

    cls = nnx.BatchNorm if kind == "bn" else nnx.LayerNorm
    return cls(4, rngs=nnx.Rngs(0)).epsilon


def _momentum(framework):
    if framework == "torch":
        import torch

        return torch.nn.BatchNorm2d(4).momentum
    if framework == "paddle":
        import paddle

        return paddle.nn.BatchNorm2D(4)._momentum
    from flax import nnx

    return nnx.BatchNorm(4, rngs=nnx.Rngs(0)).momentum


def _conv_padding(framework):
    x = np.ones((1, 1, 5, 5), np.float32)
    if framework == "torch":
        import torch

        out = torch.nn.Conv2d(1, 1, 3)(torch.tensor(x)).shape[-1]
    elif framework == "paddle":
        import paddle

        out = paddle.nn.Conv2D(1, 1, 3)(paddle.to_tensor(x)).shape[-1]
    else:
        import jax.numpy as jnp
        from flax import nnx

        out = nnx.Conv(1, 1, (3, 3), rngs=nnx.Rngs(0))(jnp.ones((1, 5, 5, 1))).shape[1]
    return {3: 0, 5: "SAME"}[out]


def _avg_pool(framework, x, k, s=None, p=0, ceil_mode=False):
    """(output spatial size, output) of the framework's default-argument average pool."""
    if framework == "torch":
        import torch

        kw = {} if s is None else {"stride": s}
        y = torch.nn.AvgPool2d(k, padding=p, ceil_mode=ceil_mode, **kw)(torch.tensor(x)).numpy()
        return y[0, 0]
    if framework == "paddle":
        import paddle

        kw = {} if s is None else {"stride": s}
        y = paddle.nn.AvgPool2D(k, padding=p, ceil_mode=ceil_mode, **kw)(paddle.to_tensor(x))
        return y.numpy()[0, 0]
    import jax.numpy as jnp
    from flax import nnx

    kw = {} if s is None else {"strides": (s, s)}
    y = nnx.avg_pool(jnp.asarray(x[0].transpose(1, 2, 0)), (k, k), padding=((p, p), (p, p)), **kw)
    return np.asarray(y)[..., 0]


def _pool_stride(framework):
    y = _avg_pool(framework, np.ones((1, 1, 4, 4), np.float32), 2)
    return {2: "kernel", 3: 1}[y.shape[-1]]


def _count_include_pad(framework):
    """Corner of a 3x3/s2/p1 average pool over ones: 4/9 if padding counts, 1 if not."""
    corner = float(_avg_pool(framework, np.ones((1, 1, 4, 4), np.float32), 3, 2, 1)[0, 0])
    if math.isclose(corner, 1.0, rel_tol=1e-6):
        return False
    return True if math.isclose(corner, 4 / 9, rel_tol=1e-6) else f"neither ({corner})"


def _ceil_mode(framework):
    if framework == "flax":
        from flax import nnx

        return "none" if "ceil_mode" not in inspect.signature(nnx.avg_pool).parameters else "?"
    x = np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5)
    y = _avg_pool(framework, x, 2, 2, 1, ceil_mode=True)
    return {3: "drop", 4: "keep"}[y.shape[-1]]


def _truncated_bounds(framework):
    """Is trunc-normal's default (-2, 2) absolute, or in stddevs? Drawn at std 0.01."""
    if framework == "torch":
        import torch

        torch.manual_seed(0)
        x = torch.nn.init.trunc_normal_(torch.empty(100_000), std=0.01).numpy()
    elif framework == "paddle":
        import paddle

        paddle.seed(0)
        init = paddle.nn.initializer.TruncatedNormal(std=0.01)
        x = paddle.create_parameter([100_000], "float32", default_initializer=init).numpy()
    else:
        import jax

        x = np.asarray(jax.nn.initializers.truncated_normal(0.01)(jax.random.key(0), (100_000,)))
    return "absolute" if np.abs(x).max() > 0.025 else "stddevs"


def _build_order(framework):
    """Does a layer's init change when another layer is built before it?"""
    if framework == "flax":
        from flax import nnx

        r = nnx.Rngs(0)
        a1 = nnx.Linear(8, 8, rngs=r).kernel.get_value()
        r = nnx.Rngs(0)
        nnx.Linear(8, 8, rngs=r)
        a2 = nnx.Linear(8, 8, rngs=r).kernel.get_value()
        return not np.array_equal(np.asarray(a1), np.asarray(a2))
    if framework == "torch":
        import torch

        def build_one():
            return torch.nn.Linear(8, 8).weight.detach().numpy().copy()

        seed = torch.manual_seed
    else:
        import paddle

        def build_one():
            return paddle.nn.Linear(8, 8).weight.numpy().copy()

        seed = paddle.seed
    seed(0)
    a1 = build_one()
    seed(0)
    build_one()
    a2 = build_one()
    return not np.array_equal(a1, a2)


def _norm_consumes(framework):
    """RNG draws each norm layer's construction consumes: counted on Flax's ``rngs.params``;
    in torch and Paddle, 0 when the global generator's next draw is unchanged (-1 when not)."""
    if framework == "flax":
        from flax import nnx

        makers = {
            "BatchNorm": lambda r: nnx.BatchNorm(4, rngs=r),
            "LayerNorm": lambda r: nnx.LayerNorm(4, rngs=r),
            "GroupNorm": lambda r: nnx.GroupNorm(4, num_groups=2, rngs=r),
            "InstanceNorm": lambda r: nnx.InstanceNorm(4, rngs=r),
            "RMSNorm": lambda r: nnx.RMSNorm(4, rngs=r),
        }
        out = {}
        for name, make in makers.items():
            r = nnx.Rngs(0)
            before = int(r.params.count.get_value())
            make(r)
            out[name] = int(r.params.count.get_value()) - before
        return out
    if framework == "torch":
        import torch

        nn, seed = torch.nn, torch.manual_seed

        def draw():
            return torch.rand(4).numpy()

        makers = {
            "BatchNorm": lambda: nn.BatchNorm2d(4),
            "LayerNorm": lambda: nn.LayerNorm(4),
            "GroupNorm": lambda: nn.GroupNorm(2, 4),
            "InstanceNorm": lambda: nn.InstanceNorm2d(4, affine=True),
            "RMSNorm": lambda: nn.RMSNorm(4),
        }
    else:
        import paddle

        nn, seed = paddle.nn, paddle.seed

        def draw():
            return paddle.rand([4]).numpy()

        makers = {  # Paddle 3.3 has no RMSNorm layer
            "BatchNorm": lambda: nn.BatchNorm2D(4),
            "LayerNorm": lambda: nn.LayerNorm(4),
            "GroupNorm": lambda: nn.GroupNorm(2, 4),
            "InstanceNorm": lambda: nn.InstanceNorm2D(4),
        }
    seed(0)
    want = draw()
    out = {}
    for name, make in makers.items():
        seed(0)
        make()
        out[name] = 0 if np.array_equal(draw(), want) else -1
    return out


def _bool_mask_meaning(framework):
    """What a True in a bool attention mask does in the framework's own attention: with one
    query attending to two keys of different values, True on key 0 leaves only key 1's value
    ("masked") or only key 0's ("keep")."""
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, 1, 4)).astype(np.float32)
    kv = rng.standard_normal((1, 2, 4)).astype(np.float32)
    mask = np.array([[True, False]])  # (L, S) = (1, 2)
    if framework == "torch":
        import torch

        m = torch.nn.MultiheadAttention(4, 1, batch_first=True).eval()
        t = torch.from_numpy
        with torch.no_grad():
            out = m(t(q), t(kv), t(kv), attn_mask=t(mask), need_weights=False)[0].numpy()
            alone = [m(t(q), t(kv[:, i : i + 1]), t(kv[:, i : i + 1]))[0].numpy() for i in (0, 1)]
    elif framework == "paddle":
        import paddle

        m = paddle.nn.MultiHeadAttention(4, 1)
        m.eval()
        t = paddle.to_tensor
        out = m(t(q), t(kv), t(kv), attn_mask=t(mask)).numpy()
        alone = [m(t(q), t(kv[:, i : i + 1]), t(kv[:, i : i + 1])).numpy() for i in (0, 1)]
    else:
        import jax.numpy as jnp
        from flax import nnx

        m = nnx.MultiHeadAttention(1, 4, decode=False, rngs=nnx.Rngs(0))
        a = jnp.asarray
        out = np.asarray(m(a(q), a(kv), mask=a(mask)[None, None]))
        alone = [np.asarray(m(a(q), a(kv[:, i : i + 1]))) for i in (0, 1)]
    if np.allclose(out, alone[1], atol=1e-6):
        return "masked"
    return "keep" if np.allclose(out, alone[0], atol=1e-6) else "neither"


def _norm_eps(framework, kind):
    """The eps of the framework's own GroupNorm (``gn``) or RMSNorm (``rms``)."""
    if framework == "torch":
        import torch

        return (torch.nn.GroupNorm(2, 4) if kind == "gn" else torch.nn.RMSNorm(4)).eps
    if framework == "paddle":
        import paddle

        if kind == "gn":
            return paddle.nn.GroupNorm(2, 4)._epsilon
        assert not hasattr(paddle.nn, "RMSNorm")  # no layer: the function's default
        return inspect.signature(paddle.nn.functional.rms_norm).parameters["eps"].default
    from flax import nnx

    if kind == "gn":
        return nnx.GroupNorm(4, num_groups=2, rngs=nnx.Rngs(0)).epsilon
    return nnx.RMSNorm(4, rngs=nnx.Rngs(0)).epsilon


def _attention_fans(framework, e=16, heads=4):
    """(fan_in, fan_out) / E that the framework's default init computes for the query
    projection of its own attention layer, caught by a spy on the init function."""
    from unittest import mock

    seen = []
    if framework == "torch":
        import torch

        activation = torch.nn.modules.activation
        real = activation.xavier_uniform_

        def spy(t, *a, **k):
            seen.append(torch.nn.init._calculate_fan_in_and_fan_out(t))
            return real(t, *a, **k)

        with mock.patch.object(activation, "xavier_uniform_", spy):
            torch.nn.MultiheadAttention(e, heads)
    elif framework == "paddle":
        import paddle
        from paddle.nn.initializer.xavier import XavierInitializer

        real = XavierInitializer._compute_fans

        def spy(self, var):
            seen.append(real(self, var))
            return seen[-1]

        with mock.patch.object(XavierInitializer, "_compute_fans", spy):
            paddle.nn.MultiHeadAttention(e, heads)
        assert len(seen) == 4, seen  # q, k, v, out: one Xavier each
    else:
        from flax import nnx

        real = nnx.initializers.lecun_normal()

        def spy(key, shape, dtype):  # lecun_normal's fans: in_axis=-2, out_axis=-1
            seen.append((shape[-2], shape[-1]))
            return real(key, shape, dtype)

        nnx.MultiHeadAttention(heads, e, kernel_init=spy, rngs=nnx.Rngs(0))
        assert len(seen) == 4, seen  # query, key, value, out
    fan_in, fan_out = seen[0]  # the query projection's (torch: the packed q, k, v)
    return (fan_in // e, fan_out // e) if fan_in % e == fan_out % e == 0 else seen[0]


def _stack_copies(framework):
    """Are the layers of the framework's own TransformerEncoder equal at init?"""
    if framework == "flax":
        from flax import nnx

        return "none" if not [n for n in dir(nnx) if "transformer" in n.lower()] else "?"
    if framework == "torch":
        import torch

        layer = torch.nn.TransformerEncoderLayer(16, 4, 32, batch_first=True)
        state = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).state_dict()
        state = {k: v.numpy() for k, v in state.items()}
    else:
        import paddle

        layer = paddle.nn.TransformerEncoderLayer(16, 4, 32)
        state = paddle.nn.TransformerEncoder(layer, 2).state_dict()
        state = {k: np.array(v.numpy()) for k, v in state.items()}
    names = [k[len("layers.0.") :] for k in state if k.startswith("layers.0.")]
    same = [np.array_equal(state[f"layers.0.{k}"], state[f"layers.1.{k}"]) for k in names]
    if all(same):
        return "identical"
    # every random tensor differs (the norms' ones and zeros and Paddle's zero biases are equal)
    random = [k for k, eq in zip(names, same) if np.unique(state[f"layers.0.{k}"]).size > 1]
    shared = [k for k, eq in zip(names, same) if eq and k in random]
    return "independent" if random and not shared else f"neither (equal: {shared})"


MEASURED_CONVENTIONS = {
    "bn.momentum": _momentum,
    "bn.new_batch_weight": lambda fw: round(_bn_one_step(fw)[0], 4),
    "bn.running_var": lambda fw: _bn_one_step(fw)[1],
    "bn.eps": lambda fw: _eps(fw, "bn"),
    "ln.eps": lambda fw: _eps(fw, "ln"),
    "gn.eps": lambda fw: _norm_eps(fw, "gn"),
    "rmsnorm.eps": lambda fw: _norm_eps(fw, "rms"),
    "attention.fans": _attention_fans,
    "conv.padding": _conv_padding,
    "pool.stride": _pool_stride,
    "pool.avg_count_include_pad": _count_include_pad,
    "pool.ceil_mode": _ceil_mode,
    "init.truncated_normal": _truncated_bounds,
    "rng.build_order": _build_order,
    "rng.norm_consumes": _norm_consumes,
    "attention.bool_mask": _bool_mask_meaning,
    "transformer.stack_copies": _stack_copies,
}


@pytest.mark.parametrize(
    "framework, key",
    [(fw, key) for key in MEASURED_CONVENTIONS for fw in D.FRAMEWORKS],
    ids=[f"{fw}-{key}" for key in MEASURED_CONVENTIONS for fw in D.FRAMEWORKS],
)
def test_convention_measured(framework, key):
    require_backend(framework)
    conv = D.convention_record(key)
    expected = conv.value(framework)
    got = MEASURED_CONVENTIONS[key](framework)
    if isinstance(expected, float):
        assert got == pytest.approx(expected, rel=1e-3), f"{framework} {conv.topic}: {got}"
    else:
        assert got == expected, (
            f"{framework} {conv.topic}: catalogue {expected!r}, measured {got!r}"
        )


def test_conventions_name_every_framework_and_every_value_is_measured():
    """Every convention speaks of exactly the frameworks in FRAMEWORKS (text, and machine
    values in that order), and a machine value exists only where a measurement checks it."""
    keys = [c.key for c in D.CONVENTIONS]
    assert len(keys) == len(set(keys))
    assert D.conventions() == list(D.CONVENTIONS)
    with_values = set()
    for c in D.CONVENTIONS:
        assert all(c.text(fw).strip() for fw in D.FRAMEWORKS), c.key
        if c.values:
            assert tuple(fw for fw, _ in c.values) == tuple(D.FRAMEWORKS), c.key
            with_values.add(c.key)
        assert c.record()["values"] == dict(c.values)
    assert with_values == set(MEASURED_CONVENTIONS)
    with pytest.raises(ValueError, match="unknown framework"):
        D.CONVENTIONS[0].text("keras")
    with pytest.raises(KeyError, match="no convention"):
        D.convention_record("bn.no_such_thing")


@pytest.mark.parametrize("framework", D.FRAMEWORKS)
def test_bn_momentum_matches_the_frameworks_layer_attributes(framework):
    """BatchNorm momentum as each framework's own layer stores it, read from the layer (not
    from one update): torch ``momentum``, paddle ``_momentum``, flax nnx ``momentum``; the
    weight of a new batch is the momentum (torch) or its complement (paddle, flax)."""
    require_backend(framework)
    m = _momentum(framework)
    assert m == pytest.approx(D.convention_record("bn.momentum").value(framework))
    new = m if framework == "torch" else 1.0 - m
    assert new == pytest.approx(D.convention_record("bn.new_batch_weight").value(framework))
