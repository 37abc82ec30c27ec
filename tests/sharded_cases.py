"""Workers of tests/backends/test_sharded.py, run in other processes: torch ranks (gloo,
spawned) and a JAX run with forced host devices (``python sharded_cases.py jax OUT``:
XLA_FLAGS must be set before jax is imported, so it cannot run inside the pytest process)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

import xinit
from xinit import init as I  # noqa: N812
from xinit.policy import Policy, Rule

SEED = 5
POLICY = Policy(
    Rule(I.Normal(0.0, 0.02), kind="linear", bias=I.Uniform(-0.1, 0.1)),
    Rule(I.TruncatedNormal(0.0, 1.0, -2.0, 2.0), kind="linear", path="fc2"),
    Rule(I.Ones(), kind="layernorm"),
    Rule(I.Uniform(-0.5, 0.5), kind="layernorm", param="bias"),
)


GPT2_SMALL = dict(n_layer=2, n_head=2, n_embd=8, vocab_size=11, n_positions=7)
GPT2_POLICY = xinit.presets.gpt2(n_layer=GPT2_SMALL["n_layer"])


def torch_model():
    """Linear, LayerNorm (read through its lowering), Linear; rows
    5 and 9 split unevenly over 2 ranks."""
    import torch

    class Net(torch.nn.Module):  # FSDP2 wraps modules with a forward, not bare containers
        def __init__(self):
            super().__init__()
            self.fc1, self.ln, self.fc2 = (
                torch.nn.Linear(6, 5),
                torch.nn.LayerNorm(5),
                torch.nn.Linear(5, 9),
            )

        def forward(self, x):
            return self.fc2(self.ln(self.fc1(x)))

    return Net()


def torch_values(model) -> dict[str, np.ndarray]:
    """Name -> full (gathered) value of every parameter."""
    out = {}
    for name, p in model.named_parameters():
        p = p.full_tensor() if hasattr(p, "full_tensor") else p
        out[name] = p.detach().cpu().numpy().copy()
    return out


def _distribute(model, mesh, placements_of):
    import torch
    from torch.distributed.tensor import distribute_tensor

    for sub in model.modules():
        for leaf, p in list(sub.named_parameters(recurse=False)):
            dt = distribute_tensor(p.detach(), mesh, placements_of(p))
            setattr(sub, leaf, torch.nn.Parameter(dt))
    return model


def torch_rank(rank: int, world: int, port: int, out: str) -> None:
    """One gloo rank: every sharding case, gathered values (and one local shard) saved by rank
    0 / 1, and the errors bad input gives."""
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor, Partial, Replicate, Shard

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        mesh = init_device_mesh("cpu", (world,))
        mesh2 = init_device_mesh("cpu", (world, 1), mesh_dim_names=("dp", "tp"))
        cases = {
            "shard0": (mesh, lambda p: [Shard(0)]),
            "shard1": (mesh, lambda p: [Shard(1) if p.ndim == 2 else Replicate()]),
            "mesh2d": (mesh2, lambda p: [Shard(p.ndim - 1), Shard(0)]),
        }
        saved = {}
        for name, (m, placements_of) in cases.items():
            model = _distribute(torch_model(), m, placements_of)
            xinit.apply(POLICY, model, seed=SEED, rng="xinit")
            saved[name] = torch_values(model)
            if name == "shard1":
                local = model.fc2.weight.to_local().detach().numpy().copy()
                saved["shard1_local"] = {f"rank{rank}": local}
        # FSDP2: built on meta, sharded, allocated, then initialised
        with torch.device("meta"):
            model = torch_model()
        for key in ("fc1", "ln", "fc2"):
            fully_shard(getattr(model, key), mesh=mesh)
        fully_shard(model, mesh=mesh)
        model.to_empty(device="cpu")
        xinit.apply(POLICY, model, seed=SEED, rng="xinit")
        saved["fsdp"] = torch_values(model)
        # xinit's own build: a small GPT-2 (vocab 11 and 7 positions: uneven rows) on meta,
        # each block and embedding FSDP2-sharded, allocated, then the gpt2 preset
        model = xinit.build(xinit.models.gpt2(**GPT2_SMALL), "torch", device="meta")
        for part in (model.wte, model.wpe, *model.h, model.ln_f):  # torchtitan's units
            fully_shard(part, mesh=mesh)
        fully_shard(model, mesh=mesh)
        model.to_empty(device="cpu")
        wte = model.wte.weight  # really sharded: 11 rows as 6 and 5
        assert isinstance(wte, DTensor) and wte.to_local().shape[0] == (6, 5)[rank], wte
        xinit.apply(GPT2_POLICY, model, seed=SEED, rng="xinit", strict=True)
        saved["xinit_gpt2"] = torch_values(model)
        errors = {}
        try:
            xinit.apply(
                POLICY,
                _distribute(torch_model(), mesh, lambda p: [Shard(0)]),
                seed=SEED,
                rng="native",
            )
        except Exception as err:  # noqa: BLE001 - the message is what the test checks
            errors["native"] = f"{type(err).__name__}: {err}"
        model = torch_model()
        w = model.fc1.weight
        model.fc1.weight = torch.nn.Parameter(
            DTensor.from_local(torch.zeros(w.shape), mesh, [Partial()], run_check=False)
        )
        try:
            xinit.apply(POLICY, model, seed=SEED, rng="xinit")
        except Exception as err:  # noqa: BLE001
            errors["partial"] = f"{type(err).__name__}: {err}"
        for name, values in saved.items():
            if rank == 0 or name == "shard1_local":
                np.savez(Path(out) / f"{name}_{rank}.npz", **values)
        if rank == 0:
            (Path(out) / "errors.json").write_text(json.dumps(errors))
        dist.barrier()  # no rank tears gloo down while the other still uses it
    finally:
        dist.destroy_process_group()


def flax_model(rngs):
    """The torch model's twin: same neutral paths and shapes (kernels are (in, out))."""
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, d_in: int, d_mid: int, d_out: int):
            self.fc1 = nnx.Linear(d_in, d_mid, rngs=rngs)
            self.ln = nnx.LayerNorm(d_mid, rngs=rngs)
            self.fc2 = nnx.Linear(d_mid, d_out, rngs=rngs)

    return Net


def partitioned_flax_model(rngs):
    """The same net annotated the Flax way, ``nnx.with_partitioning`` on every initializer:
    built under ``jax.set_mesh``, Flax shards each value as it creates it."""
    from flax import nnx

    split = nnx.with_partitioning

    class Net(nnx.Module):
        def __init__(self, d_in: int, d_mid: int, d_out: int):
            lecun, zeros, ones = (
                nnx.initializers.lecun_normal(),
                nnx.initializers.zeros_init(),
                nnx.initializers.ones_init(),
            )
            self.fc1 = nnx.Linear(
                d_in,
                d_mid,
                kernel_init=split(lecun, ("data", "model")),
                bias_init=split(zeros, ("model",)),
                rngs=rngs,
            )
            self.ln = nnx.LayerNorm(
                d_mid,
                scale_init=split(ones, ("model",)),
                bias_init=split(zeros, (None,)),
                rngs=rngs,
            )
            self.fc2 = nnx.Linear(
                d_mid,
                d_out,
                kernel_init=split(lecun, ("model", "data")),
                bias_init=split(zeros, ("data",)),
                rngs=rngs,
            )

    return Net


def jax_run(out: str) -> None:
    """Every parameter placed with several PartitionSpecs on 1-d and 2-d meshes of 4 host
    devices, initialised, checked to keep its sharding; values saved for the test."""
    import jax
    from flax import nnx
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    Net = flax_model(nnx.Rngs(0))  # noqa: N806
    ref = Net(8, 12, 4)
    xinit.apply(POLICY, ref, seed=SEED, rng="xinit")
    results = {"devices": len(jax.devices())}
    arrays = {"ref." + k: np.asarray(v) for k, v in _flat(ref).items()}
    twin = Net(6, 5, 9)  # the torch model's shapes, for the cross-framework check
    xinit.apply(POLICY, twin, seed=SEED, rng="xinit")
    arrays.update({"twin." + k: np.asarray(v) for k, v in _flat(twin).items()})
    devs = np.array(jax.devices()[:4])
    meshes = {"1d": Mesh(devs, ("x",)), "2d": Mesh(devs.reshape(2, 2), ("x", "y"))}
    specs = {
        "1d": [(P("x", None), P("x")), (P(None, "x"), P(None))],
        "2d": [(P("x", "y"), P("y")), (P("y", "x"), P(("x", "y"))), (P(None, ("y", "x")), P())],
    }
    for mesh_name, mesh in meshes.items():
        for i, (spec2, spec1) in enumerate(specs[mesh_name]):
            model = Net(8, 12, 4)
            for _, var in _vars(model).items():
                spec = spec2 if var.get_value().ndim == 2 else spec1
                if var.get_value().ndim == 1 and var.get_value().shape[0] % 4:
                    spec = P()
                var.set_value(jax.device_put(var.get_value(), NamedSharding(mesh, spec)))
            before = {k: v.get_value().sharding for k, v in _vars(model).items()}
            xinit.apply(POLICY, model, seed=SEED, rng="xinit")
            kept = all(v.get_value().sharding == before[k] for k, v in _vars(model).items())
            tag = f"{mesh_name}.{i}"
            results[tag] = {
                "kept_sharding": kept,
                "shards": {
                    k: len(v.get_value().addressable_shards) for k, v in _vars(model).items()
                },
            }
            arrays.update({f"{tag}.{k}": np.asarray(v) for k, v in _flat(model).items()})
    # the abstract model (nnx.eval_shape) with shardings and no memory: xinit makes each array
    abstract = nnx.eval_shape(lambda: flax_model(nnx.Rngs(0))(8, 12, 4))
    for var in _vars(abstract).values():
        x = var.get_value()
        spec = P("x", None) if x.ndim == 2 else P("x") if x.shape[0] % 4 == 0 else P()
        var.set_value(
            jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=NamedSharding(meshes["1d"], spec))
        )
    before = {k: v.get_value().sharding for k, v in _vars(abstract).items()}
    xinit.apply(POLICY, abstract, seed=SEED, rng="xinit", strict=True)
    results["abstract"] = {
        "kept_sharding": all(
            v.get_value().sharding == before[k] for k, v in _vars(abstract).items()
        ),
        "shards": {k: len(v.get_value().addressable_shards) for k, v in _vars(abstract).items()},
    }
    arrays.update({f"abstract.{k}": np.asarray(v) for k, v in _flat(abstract).items()})
    # Flax's own route: with_partitioning annotations, values sharded as they are created
    explicit = jax.make_mesh(
        (2, 2), ("data", "model"), axis_types=(jax.sharding.AxisType.Explicit,) * 2
    )
    with jax.set_mesh(explicit):
        model = partitioned_flax_model(nnx.Rngs(0))(8, 12, 4)
        before = {k: v.get_value().sharding for k, v in _vars(model).items()}
        xinit.apply(POLICY, model, seed=SEED, rng="xinit", strict=True)
    results["partitioned"] = {
        "kept_sharding": all(v.get_value().sharding == before[k] for k, v in _vars(model).items()),
        "shards": {k: len(v.get_value().addressable_shards) for k, v in _vars(model).items()},
        "specs": {k: list(v.spec) for k, v in before.items()},
    }
    arrays.update({f"partitioned.{k}": np.asarray(v) for k, v in _flat(model).items()})
    model = Net(8, 12, 4)
    var = model.fc1.kernel
    var.set_value(jax.device_put(var.get_value(), NamedSharding(meshes["1d"], P("x"))))
    try:
        xinit.apply(POLICY, model, seed=SEED, rng="native")
    except Exception as err:  # noqa: BLE001
        results["native_error"] = f"{type(err).__name__}: {err}"
    np.savez(Path(out) / "jax.npz", **arrays)
    (Path(out) / "jax.json").write_text(json.dumps(results))


def _vars(model) -> dict:
    return {
        f"{k}.{leaf}": getattr(getattr(model, k), leaf)
        for k in ("fc1", "ln", "fc2")
        for leaf in ("kernel", "scale", "bias")
        if hasattr(getattr(model, k), leaf)
    }


def _flat(model) -> dict:
    return {k: v.get_value() for k, v in _vars(model).items()}


def paddle_model():
    """The torch model's twin in Paddle (weights (in, out)): fc2.weight (5, 9) splits its 5
    rows 3 / 2 over 2 ranks (uneven)."""
    import paddle

    class Net(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.fc1, self.ln, self.fc2 = (
                paddle.nn.Linear(6, 5),
                paddle.nn.LayerNorm(5),
                paddle.nn.Linear(5, 9),
            )

        def forward(self, x):
            return self.fc2(self.ln(self.fc1(x)))

    return Net()


def paddle_values(model) -> dict[str, np.ndarray]:
    """Name -> full value of every parameter (a dist tensor resharded to Replicate first)."""
    import paddle.distributed as dist

    out = {}
    for name, p in model.named_parameters():
        if p.is_dist():
            p = dist.reshard(p, p.process_mesh, [dist.Replicate()] * len(p.placements))
            p = p._local_value()
        out[name] = p.numpy().copy()
    return out


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def paddle_memory(mesh) -> dict:
    """Peak RSS growth while xinit fills a 4096 x 4096 Paddle weight sharded Shard(1) over
    the ranks (transposed: its local value is a block of neutral rows) and its bias, over the
    local bytes. The per-thread scratch is made first (a keyed draw on every core), and the
    peak is reset just before (Linux /proc); elsewhere the growth is None."""
    import gc

    import paddle
    import paddle.distributed as dist

    from xinit.distributions import NormalDist
    from xinit.rng import keyed_sample

    keyed_sample(NormalDist(0.0, 1.0), (1 << 22,), 0, "warm-up")  # scratch of every thread
    layer = paddle.nn.Linear(4096, 4096)
    layer.weight = dist.shard_tensor(layer.weight, mesh, [dist.Shard(1)])
    layer.bias = dist.shard_tensor(layer.bias, mesh, [dist.Shard(0)])
    local = sum(int(np.prod(p._local_value().shape)) * 4 for p in (layer.weight, layer.bias))
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
        before = _status_kb("VmRSS")
    except OSError:
        return {"growth": None, "local": local}
    xinit.apply(POLICY, layer, seed=SEED, rng="xinit")
    return {"growth": (_status_kb("VmHWM") - before) * 1024, "local": local}


def paddle_rank(out: str) -> None:
    """One Paddle rank of 2 (gloo on CPU; the PADDLE_* variables come from the test): every
    sharding case's gathered values, rank r's local fc2.weight, and the errors bad input
    gives, saved by rank 0 (local values by each rank)."""
    import paddle
    import paddle.distributed as dist

    dist.init_parallel_env()
    rank = dist.get_rank()
    mesh = dist.ProcessMesh([0, 1], dim_names=["x"])
    mesh2 = dist.ProcessMesh([[0], [1]], dim_names=["dp", "tp"])
    memory = paddle_memory(mesh)

    def shard_all(model, m, placements_of):
        for sub in (model.fc1, model.ln, model.fc2):
            for leaf in ("weight", "bias"):
                p = getattr(sub, leaf)
                setattr(sub, leaf, dist.shard_tensor(p, m, placements_of(p)))
        return model

    cases = {
        "shard0": (mesh, lambda p: [dist.Shard(0)]),
        "shard1": (mesh, lambda p: [dist.Shard(1) if p.ndim == 2 else dist.Replicate()]),
        "mesh2d": (
            mesh2,
            lambda p: [dist.Shard(p.ndim - 1), dist.Shard(0) if p.ndim == 2 else dist.Replicate()],
        ),
    }
    saved, locals_ = {}, {}
    for name, (m, placements_of) in cases.items():
        model = shard_all(paddle_model(), m, placements_of)
        xinit.apply(POLICY, model, seed=SEED, rng="xinit")
        saved[name] = paddle_values(model)
        locals_[f"{name}.{rank}"] = model.fc2.weight._local_value().numpy().copy()

    def shard_fn(layer_name, layer, process_mesh):  # paddle's own shard_layer API
        for leaf in ("weight", "bias"):
            p = getattr(layer, leaf, None)
            if p is not None and not p.is_dist():
                setattr(layer, leaf, dist.shard_tensor(p, process_mesh, [dist.Shard(0)]))

    model = dist.shard_layer(paddle_model(), mesh, shard_fn)
    xinit.apply(POLICY, model, seed=SEED, rng="xinit")
    saved["layer"] = paddle_values(model)

    def even_fn(layer_name, layer, process_mesh):  # Shard(0) where 2 ranks split evenly
        for leaf in ("weight", "bias"):
            p = getattr(layer, leaf, None)
            if p is not None and not p.is_dist():
                split = [dist.Shard(0) if p.shape[0] % 2 == 0 else dist.Replicate()]
                setattr(layer, leaf, dist.shard_tensor(p, process_mesh, split))

    with paddle.LazyGuard():  # parameters made without memory; each rank allocates its part
        model = dist.shard_layer(paddle_model(), mesh, even_fn)
    if any(p._is_initialized() for p in model.parameters()):
        raise AssertionError("LazyGuard gave allocated parameters")
    xinit.apply(POLICY, model, seed=SEED, rng="xinit")
    saved["lazy"] = paddle_values(model)
    locals_[f"lazy.{rank}"] = model.fc1.weight._local_value().numpy().copy()
    errors = {}
    for key, placements_of, rng in (
        ("native", lambda p: [dist.Shard(0)], "native"),
        ("partial", lambda p: [dist.Partial()], "xinit"),
        ("coshard", lambda p: [dist.Shard(0), dist.Shard(0)], "xinit"),
    ):
        try:
            xinit.apply(
                POLICY,
                shard_all(paddle_model(), mesh2 if key == "coshard" else mesh, placements_of),
                seed=SEED,
                rng=rng,
            )
        except Exception as err:  # noqa: BLE001 - the message is what the test checks
            errors[key] = f"{type(err).__name__}: {err}"
    with paddle.LazyGuard():
        model = dist.shard_layer(paddle_model(), mesh, shard_fn)  # fc2.weight: 5 rows over 2
    try:
        xinit.apply(POLICY, model, seed=SEED, rng="xinit")
    except Exception as err:  # noqa: BLE001
        errors["lazy_uneven"] = f"{type(err).__name__}: {err}"
    np.savez(Path(out) / f"paddle_local_{rank}.npz", **locals_)
    (Path(out) / f"paddle_memory_{rank}.json").write_text(json.dumps(memory))
    if rank == 0:
        for name, values in saved.items():
            np.savez(Path(out) / f"paddle_{name}.npz", **values)
        (Path(out) / "paddle_errors.json").write_text(json.dumps(errors))


if __name__ == "__main__":
    if sys.argv[1] == "jax":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        jax_run(sys.argv[2])
    elif sys.argv[1] == "paddle":
        paddle_rank(sys.argv[2])
