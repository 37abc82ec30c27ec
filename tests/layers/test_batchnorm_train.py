"""Train/eval behaviour in the three frameworks: BatchNorm statistics and Dropout.

The neutral BatchNorm: ``momentum`` is PyTorch's (the weight of the new batch); Paddle and
Flax build their own classes with their own convention (momentum = 1 - neutral) and rule: the
running variance takes the *biased* batch variance there, the *unbiased* one in PyTorch.
``BatchNorm(train_stats="torch")`` gives PyTorch's rule everywhere. After the same
training-mode forward passes, outputs and running statistics equal the rule worked out in
numpy, and the three backends agree (through the documented conversion for native layers).
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import FRAMEWORKS, installed, require_backend

from xinit import build, run, state_dict
from xinit.blocks import Sequential
from xinit.initializers import Normal, Uniform
from xinit.layers import BatchNorm, Conv, Dropout, Linear, ReLU


def train_forward(backend: str, module, x: np.ndarray) -> np.ndarray:
    """One training-mode forward with the framework's own API, channel-first numpy in/out."""
    module.train()  # torch .train(), paddle .train(), flax nnx Module.train()
    return framework_forward(backend, module, x)


def framework_forward(backend: str, module, x: np.ndarray) -> np.ndarray:
    """A forward in whatever mode the module is in, through the framework's own call."""
    if backend == "torch":
        import torch

        return module(torch.from_numpy(x)).detach().numpy()
    if backend == "paddle":
        import paddle

        return np.array(module(paddle.to_tensor(x)).numpy())
    import jax.numpy as jnp

    if x.ndim >= 3:
        return np.moveaxis(np.asarray(module(jnp.asarray(np.moveaxis(x, 1, -1)))), -1, 1)
    return np.asarray(module(jnp.asarray(x)))


def running(backend: str, module, path: str) -> tuple[np.ndarray, np.ndarray]:
    state = state_dict(module)
    mean, var = state[f"{path}.running_mean"], state[f"{path}.running_var"]
    return np.asarray(mean, np.float64), np.asarray(var, np.float64)


def affine_bn(c: int, **kw) -> BatchNorm:
    """A BatchNorm whose scale and shift are not 1 and 0, so that they are really applied."""
    return BatchNorm(c, weight_init=Uniform(0.5, 1.5), bias_init=Normal(0.0, 0.3), **kw)


def numpy_bn_steps(batches, momentum, eps, weight, bias, unbiased=True):
    """A framework's rule in numpy: outputs of each training step and the final running
    stats; the running variance takes the unbiased (PyTorch) or biased (Paddle, Flax) one."""
    c = batches[0].shape[1]
    mean_r, var_r = np.zeros(c), np.ones(c)
    outs = []
    for x in batches:
        x = x.astype(np.float64)
        axes = (0, *range(2, x.ndim))
        shape = [1, c] + [1] * (x.ndim - 2)
        mu, var_b = x.mean(axes), x.var(axes)
        n = x.size // c
        mean_r = (1 - momentum) * mean_r + momentum * mu
        var_r = (1 - momentum) * var_r + momentum * var_b * (n / (n - 1) if unbiased else 1)
        y = (x - mu.reshape(shape)) / np.sqrt(var_b.reshape(shape) + eps)
        outs.append(y * weight.reshape(shape) + bias.reshape(shape))
    return outs, mean_r, var_r


def torch_rule(backend: str, spec: BatchNorm) -> bool:
    """Whether a build of ``spec`` keeps PyTorch's running-variance rule (unbiased)."""
    return backend == "torch" or spec.train_stats == "torch"


@pytest.mark.parametrize("train_stats", BatchNorm.TRAIN_STATS)
@pytest.mark.parametrize(
    "shape,momentum",
    [((4, 3, 5, 6), 0.1), ((6, 5), 0.3), ((3, 4, 7), 0.25), ((2, 2, 3, 4, 2), 0.5)],
    ids=["2d", "1d-NC", "1d-NCL", "3d"],
)
@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_batchnorm_train_steps_follow_the_frameworks_rule(backend, shape, momentum, train_stats):
    """Two training steps: outputs and running statistics are the framework's rule in numpy
    (a momentum left untranslated, 0.3 for Paddle's 0.7, moves the mean by 0.4 * batch)."""
    require_backend(backend)
    dims = {2: 1, 3: 1, 4: 2, 5: 3}[len(shape)]
    eps = 1e-3
    bn = affine_bn(shape[1], momentum=momentum, eps=eps, dims=dims, train_stats=train_stats)
    module = build(Sequential(bn), backend, seed=7, rng="xinit")
    state = state_dict(module)
    weight, bias = state["0.weight"].astype(np.float64), state["0.bias"].astype(np.float64)
    rng = np.random.default_rng(11)
    batches = [(rng.standard_normal(shape) * 2.0 + 0.5).astype(np.float32) for _ in range(2)]

    outs = [train_forward(backend, module, x) for x in batches]
    unbiased = torch_rule(backend, bn)
    want, mean_r, var_r = numpy_bn_steps(batches, momentum, eps, weight, bias, unbiased)
    for got, expected in zip(outs, want):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    mean, var = running(backend, module, "0")
    np.testing.assert_allclose(mean, mean_r, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(var, var_r, rtol=1e-5, atol=1e-6)

    # Eval mode uses the running statistics.
    x = batches[0]
    axes_shape = [1, -1] + [1] * (x.ndim - 2)
    expected = (x - mean_r.reshape(axes_shape)) / np.sqrt(var_r.reshape(axes_shape) + eps)
    expected = expected * weight.reshape(axes_shape) + bias.reshape(axes_shape)
    np.testing.assert_allclose(run(module, x), expected, rtol=1e-4, atol=1e-4)


def native_running_var(torch_var, start, momentum: float, n: int):
    """docs/architecture.md's conversion: the running variance Paddle's or Flax's own
    BatchNorm holds after one step from ``start``, given PyTorch's after the same step
    (PyTorch adds momentum * unbiased batch variance, they add momentum * biased)."""
    return (1 - momentum) * start + (torch_var - (1 - momentum) * start) * (n - 1) / n


@pytest.mark.parametrize("train_stats", BatchNorm.TRAIN_STATS)
def test_three_backends_agree_after_a_training_step(train_stats):
    """Conv + BN + ReLU + a BN head, same weights (rng="xinit"), one training forward each:
    outputs and running means agree; running variances agree exactly with
    ``train_stats="torch"`` and through the documented conversion with the native rule;
    afterwards eval outputs agree where the statistics do."""
    spec = Sequential(
        ("conv", Conv(3, 6, 3, padding=1)),
        ("bn", affine_bn(6, momentum=0.2, train_stats=train_stats)),
        ("relu", ReLU()),
        ("bn2", BatchNorm(6, momentum=0.05, train_stats=train_stats)),
    )
    x = np.random.default_rng(3).standard_normal((3, 3, 8, 7)).astype(np.float32)
    n = 3 * 8 * 7  # values per channel in the batch
    outs, stats, evals = {}, {}, {}
    for backend in FRAMEWORKS:
        require_backend(backend)
        module = build(spec, backend, seed=1, rng="xinit")
        outs[backend] = train_forward(backend, module, x)
        stats[backend] = [*running(backend, module, "bn"), *running(backend, module, "bn2")]
        evals[backend] = run(module, x)
    ref = stats["torch"]
    if train_stats == "native":  # torch's variances as Paddle's and Flax's rule leaves them
        ref = [ref[0], native_running_var(ref[1], 1.0, 0.2, n)]
        ref += [stats["torch"][2], native_running_var(stats["torch"][3], 1.0, 0.05, n)]
    for backend in ("paddle", "flax"):
        np.testing.assert_allclose(outs[backend], outs["torch"], rtol=1e-4, atol=1e-5)
        for got, expected in zip(stats[backend], ref):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
        if train_stats == "torch":
            np.testing.assert_allclose(evals[backend], evals["torch"], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(evals[backend], evals["paddle"], rtol=1e-4, atol=1e-5)
    # A step really happened: the statistics moved away from their initial 0 / 1, and the
    # two rules differ by far more than the tolerance (1/n of the batch part).
    assert np.abs(stats["torch"][0]).max() > 1e-3 and np.abs(stats["torch"][1] - 1).max() > 1e-3
    assert (
        np.abs(native_running_var(stats["torch"][1], 1.0, 0.2, n) / stats["torch"][1] - 1).max()
        > 1e-4
    )


@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_run_leaves_the_training_mode_alone(backend):
    """``xinit.run`` evaluates in eval mode and gives the module back in the mode it found."""
    require_backend(backend)
    spec = Sequential(("bn", BatchNorm(3)))
    module = build(spec, backend)
    x = np.random.default_rng(0).standard_normal((4, 3, 2, 2)).astype(np.float32) + 3.0
    before = running(backend, module, "bn")
    np.testing.assert_allclose(run(module, x), x / np.sqrt(1 + 1e-5), rtol=1e-5)  # eval stats
    after = running(backend, module, "bn")
    np.testing.assert_array_equal(before[0], after[0])  # eval: no statistics update
    # Still in training mode: the next framework-level call normalises with batch statistics.
    y = framework_forward(backend, module, x)
    assert abs(float(y.mean())) < 1e-4
    moved = running(backend, module, "bn")
    assert np.abs(moved[0]).max() > 0.1

    # And a module put in eval mode stays there: the next framework call uses running stats.
    module.eval()
    run(module, x)
    y = framework_forward(backend, module, x)
    np.testing.assert_array_equal(running(backend, module, "bn")[0], moved[0])
    assert float(y.mean()) > 1.0


@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_dropout_eval_is_identity_train_scales(backend):
    require_backend(backend)
    spec = Sequential(("fc", Linear(8, 256)), ("drop", Dropout(0.5)))
    head = Sequential(("fc", Linear(8, 256)))
    x = np.random.default_rng(5).standard_normal((4, 8)).astype(np.float32)
    module = build(spec, backend, seed=2, rng="xinit")
    plain = run(build(head, backend, seed=2, rng="xinit"), x)  # same weights, no dropout
    np.testing.assert_allclose(run(module, x), plain, rtol=1e-6, atol=1e-6)

    y = train_forward(backend, module, x)
    kept = y != 0
    assert 0.35 < kept.mean() < 0.65  # p = 0.5 over 1024 values
    np.testing.assert_allclose(y[kept], 2.0 * plain[kept], rtol=1e-5, atol=1e-6)  # 1/(1-p)


def test_dropout_eval_identity_across_backends():
    spec = Sequential(Linear(5, 7), Dropout(0.3), ReLU(), Linear(7, 3), Dropout(0.9))
    x = np.random.default_rng(9).standard_normal((6, 5)).astype(np.float32)
    require_backend("torch")  # the reference
    outs = {b: run(build(spec, b, seed=4, rng="xinit"), x) for b in installed()}
    for backend in outs:
        np.testing.assert_allclose(outs[backend], outs["torch"], rtol=1e-5, atol=1e-6)


def test_batchnorm_without_affine_agrees():
    """``affine=False``: no weight or bias anywhere; training normalises, statistics agree."""
    bn = BatchNorm(3, affine=False, momentum=0.5)
    spec = Sequential(("bn", bn))
    x = (np.random.default_rng(4).standard_normal((4, 3, 2, 5)) * 3 + 1).astype(np.float32)
    for backend in FRAMEWORKS:
        require_backend(backend)
        unbiased = torch_rule(backend, bn)
        _, mean_r, var_r = numpy_bn_steps([x], 0.5, 1e-5, np.ones(3), np.zeros(3), unbiased)
        module = build(spec, backend, rng="xinit")
        state = state_dict(module)
        assert "bn.weight" not in state and "bn.bias" not in state
        np.testing.assert_array_equal(state["bn.running_mean"], np.zeros(3, np.float32))
        y = train_forward(backend, module, x)
        np.testing.assert_allclose(y.std(axis=(0, 2, 3)), np.ones(3), rtol=1e-3)
        mean, var = running(backend, module, "bn")
        np.testing.assert_allclose(mean, mean_r, rtol=1e-5)
        np.testing.assert_allclose(var, var_r, rtol=1e-5)


# ---- the frameworks' own classes ----------------------------------------------------------
def native_class(backend: str, dims: int):
    """The framework's own BatchNorm class a build of rank ``dims`` must be (or subclass)."""
    if backend == "paddle":
        import paddle

        return (paddle.nn.BatchNorm1D, paddle.nn.BatchNorm2D, paddle.nn.BatchNorm3D)[dims - 1]
    from flax import nnx

    return nnx.BatchNorm


def child(module, name: str):
    return module._sub_layers[name] if hasattr(module, "_sub_layers") else getattr(module, name)


@pytest.mark.parametrize("train_stats", BatchNorm.TRAIN_STATS)
@pytest.mark.parametrize("dims", (1, 2, 3))
@pytest.mark.parametrize("backend", ("paddle", "flax"))
def test_built_batchnorm_is_the_frameworks_own_class(backend, dims, train_stats):
    """Paddle builds ``nn.BatchNorm{1,2,3}D``, Flax ``nnx.BatchNorm`` (xinit's subclass with
    ``train_stats="torch"``), holding their own momentum convention (1 - neutral) and
    epsilon, and the lowering reads the layer back as the spec it was built from."""
    adapter = require_backend(backend)
    bn = BatchNorm(5, eps=1e-3, momentum=0.2, dims=dims, train_stats=train_stats)
    layer = child(build(Sequential(("bn", bn)), backend), "bn")
    assert isinstance(layer, native_class(backend, dims))
    own = (type(layer) is native_class(backend, dims)) == (train_stats == "native")
    assert own, type(layer)
    if backend == "paddle":
        momentum, eps = layer._momentum, layer._epsilon
    else:
        momentum, eps = layer.momentum, layer.epsilon
        bn = BatchNorm(5, eps=1e-3, momentum=0.2, train_stats=train_stats)  # no rank in nnx
    assert momentum == pytest.approx(0.8, abs=1e-15) and eps == 1e-3
    assert adapter.lowerings["batchnorm"].read(layer) == bn


def test_paddle_tools_find_every_batchnorm_of_resnet45():
    """A Paddle user's own code sees xinit's ResNet45 BatchNorms: ``isinstance`` finds all
    50, and ``SyncBatchNorm.convert_sync_batchnorm`` replaces each, keeping Paddle's
    momentum (0.9), epsilon and every tensor under its key."""
    require_backend("paddle")
    import paddle

    from xinit import models
    from xinit.blocks import walk

    spec = models.get("resnet45")
    count = sum(getattr(node, "kind", "") == "batchnorm" for _, node in walk(spec))
    module = build(spec, "paddle", rng="xinit")
    found = [m for m in module.sublayers() if isinstance(m, paddle.nn.BatchNorm2D)]
    assert len(found) == count == 50
    before = {k: v.numpy() for k, v in module.state_dict().items()}
    synced = paddle.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    syncs = [m for m in synced.sublayers() if isinstance(m, paddle.nn.SyncBatchNorm)]
    assert len(syncs) == count
    assert {(m._momentum, m._epsilon) for m in syncs} == {(0.9, 1e-5)}
    after = synced.state_dict()
    assert list(after) == list(before)
    for key, value in before.items():
        np.testing.assert_array_equal(after[key].numpy(), value, err_msg=key)


def test_flax_finds_every_batchnorm_as_nnx_batchnorm():
    """Flax code that walks a model for ``nnx.BatchNorm`` (to freeze it, or leave it out of
    weight decay) finds every BatchNorm of a built model."""
    require_backend("flax")
    from flax import nnx

    from xinit import models
    from xinit.blocks import walk

    spec = models.get("resnet18")
    count = sum(getattr(node, "kind", "") == "batchnorm" for _, node in walk(spec))
    module = build(spec, "flax", rng="xinit")
    found = [m for _, m in nnx.iter_modules(module) if isinstance(m, nnx.BatchNorm)]
    assert len(found) == count == 20
