"""Sharded init at scale: a GPT-style stack of Linear and LayerNorm layers built on meta and
initialised by ``xinit.apply(rng="xinit")`` shard by shard, against the frameworks' own
sharded init (torch ``normal_`` on DTensors; ``jax.jit(init, out_shardings=...)``).

``python -m benchmarks scale`` (minutes; not in the default suite). The model size comes from
``XINIT_SCALE_D`` (width, default 1024) and ``XINIT_SCALE_LAYERS`` (default 16: ~200 M
parameters); ``XINIT_SCALE_D=2048 XINIT_SCALE_LAYERS=20`` is the ~1 B model.
``XINIT_SCALE_MODEL`` names an xinit spec instead (a zoo name such as ``gpt2``, or
``module:factory``), called with ``XINIT_SCALE_MODEL_ARGS`` (``n_layer=24,d_model=2048``:
the CLI's ``--model-args``); it is built by ``xinit.build(spec, "torch", device="meta")``
(torch, each block FSDP2-sharded on its own) or abstractly (Flax) and sharded the same way.
Per row: init time, whether the gathered values are equal across world sizes (a digest of
every gathered parameter), and each rank's peak RSS growth during init over its shard's bytes
(the peak is reset just before init on Linux; JAX's compile of the sharded zeros happens
before it), plus what is still resident afterwards once the C allocator has returned its
free memory (``malloc_trim``, measured here only).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .harness import Result

STD = 0.02


def _sizes() -> tuple[int, int]:
    return int(os.environ.get("XINIT_SCALE_D", 1024)), int(os.environ.get("XINIT_SCALE_LAYERS", 16))


def _rss() -> int:
    """Current resident set size in bytes (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak() -> None:
    """Peak RSS := current RSS (Linux 4.0+), so a peak reached earlier (imports, building,
    compiling) is not counted as init's; elsewhere the lifetime peak stays (an overestimate)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _trimmed_rss() -> int:
    """RSS once glibc has returned its free heap memory to the system (what is live): the
    benchmark's own measurement, not something xinit does."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return _rss()


def _spec():
    """The xinit spec ``XINIT_SCALE_MODEL`` names (zoo name or ``module:factory``), or None
    for the plain Linear/LayerNorm stack."""
    ref = os.environ.get("XINIT_SCALE_MODEL", "")
    if not ref:
        return None
    from xinit import models
    from xinit.factories import factory, parse_args

    args = parse_args(os.environ.get("XINIT_SCALE_MODEL_ARGS", ""))
    return factory(ref)(**args) if ":" in ref else models.get(ref, **args)


def _label() -> str:
    spec = _spec()
    if spec is None:
        d, layers = _sizes()
        params = layers * (12 * d * d + 13 * d)
        return f"{params / 1e6:,.0f} M-param GPT stack"
    from xinit.blocks import param_specs

    params = sum(math.prod(ps.shape) for ps in param_specs(spec).values())
    return f"{params / 1e6:,.0f} M-param {os.environ['XINIT_SCALE_MODEL']}"


def policy():
    """Normal(0, 0.02) for every parameter of a spec model first (so nothing is left
    uninitialised), then Linear / LayerNorm as GPT-2 does."""
    from xinit import init as I  # noqa: N812
    from xinit.policy import Policy, Rule

    every = (Rule(I.Normal(0.0, STD), param="*"),) if _spec() is not None else ()
    return Policy(
        *every,
        Rule(I.Normal(0.0, STD), kind="linear", bias=I.Zeros()),
        Rule(I.Ones(), kind="layernorm", bias=I.Zeros()),
    )


def torch_model():
    """The model on the meta device (no memory, no init) and the submodules to shard each:
    the stack's blocks, or a spec's top-level children and blocks that hold parameters."""
    import torch

    spec = _spec()
    if spec is None:
        with torch.device("meta"):
            model = torch_gpt(*_sizes())
        return model, list(model.blocks)
    import xinit

    model = xinit.build(spec, "torch", device="meta")  # the structure alone, nothing drawn
    units = []  # torchtitan's way: each top-level child, a block list's blocks one by one
    for child in model.children():
        blocks = isinstance(child, (torch.nn.ModuleList, torch.nn.Sequential))
        inner = list(child) if blocks else [child]
        units += [m for m in inner if any(True for _ in m.parameters())]
    return model, units


def torch_gpt(d: int, layers: int):
    """A decoder stack's parameters: per block LayerNorm, qkv (3d x d), proj, LayerNorm, MLP
    (4d x d, d x 4d): ~12 d^2 per block."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.qkv, self.proj = nn.LayerNorm(d), nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.ln2, self.up, self.down = nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

        def forward(self, x):
            x = x + self.proj(self.qkv(self.ln1(x))[..., :d])
            return x + self.down(torch.relu(self.up(self.ln2(x))))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList(Block() for _ in range(layers))

        def forward(self, x):
            for b in self.blocks:
                x = b(x)
            return x

    return GPT()


def _digest(arrays) -> str:
    h = hashlib.sha1()
    for a in arrays:
        h.update(a.tobytes())
    return h.hexdigest()[:12]


def torch_rank(rank: int, world: int, port: int, out: str, how: str) -> None:
    """One rank: build on meta, FSDP2-shard, allocate, init (``how``), measure, digest."""
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    import xinit

    threads = max(1, (os.cpu_count() or 1) // world)  # the cores shared out, both sides alike
    torch.set_num_threads(threads)
    os.environ["XINIT_NUM_THREADS"] = str(threads)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    mesh = init_device_mesh("cpu", (world,))
    model, parts = torch_model()
    for part in parts:
        fully_shard(part, mesh=mesh)
    fully_shard(model, mesh=mesh)
    rules = policy()
    model.to_empty(device="cpu")
    shard = sum(p.to_local().numel() * 4 for p in model.parameters())
    dist.barrier()
    _reset_peak()
    base = _rss()
    t = time.perf_counter()
    if how == "xinit":
        xinit.apply(rules, model, seed=0, rng="xinit")
    else:  # torch's own: one generator, normal_ on each DTensor
        torch.manual_seed(0)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("bias") or (p.ndim < 2 and _spec() is not None):
                    p.zero_()
                elif ".ln" in name:
                    p.fill_(1.0)
                else:
                    p.normal_(0.0, STD)
    elapsed = time.perf_counter() - t
    grew = max(_peak() - base, 0)
    live = max(_trimmed_rss() - base, 0)
    dist.barrier()
    gathered = []
    for p in model.parameters():  # one parameter at a time: memory stays small
        full = p.full_tensor().detach().numpy()
        if rank == 0:
            gathered.append(full)
    if rank == 0:
        digest = _digest(gathered)
        gathered.clear()
    times = [None] * world
    dist.all_gather_object(times, (elapsed, grew, shard, live))
    if rank == 0:
        Path(out).write_text(json.dumps({"times": times, "digest": digest}))
    dist.barrier()  # no rank tears gloo down while another still talks to it
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torch_sweep(worlds=(1, 2, 4)) -> list[dict]:
    import torch.multiprocessing as mp

    rows = []
    for world in worlds:
        row = {"world": world}
        for how in ("xinit", "torch"):
            with tempfile.TemporaryDirectory() as tmp:
                out = str(Path(tmp) / "r.json")
                mp.spawn(torch_rank, args=(world, _free_port(), out, how), nprocs=world)
                row[how] = json.loads(Path(out).read_text())
        rows.append(row)
        print(f"  torch world {world}: {row}", flush=True)
    return rows


def jax_worker(how: str) -> dict:
    """In a process with N forced host devices: the GPT stack's parameters as sharded arrays
    (FSDP-like: first axis over all devices), initialised by xinit shard by shard (``how``
    "xinit": from the abstract state; "xinit-zeros": over sharded zeros) or by one jitted init
    with out_shardings ("jax"); time, digest, peak RSS growth over the shard bytes."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx
    from jax.sharding import Mesh, NamedSharding

    import xinit

    n = len(jax.devices())
    mesh = Mesh(np.array(jax.devices()), ("fsdp",))
    abstract = nnx.eval_shape(flax_model)
    graphdef, state = nnx.split(abstract)
    leaves, treedef = jax.tree.flatten(state)
    shard_of = [NamedSharding(mesh, _fsdp_spec(x.shape, n)) for x in leaves]
    shard_bytes = sum(
        int(np.prod(x.shape)) * 4 // (n if s.spec else 1) for x, s in zip(leaves, shard_of)
    )
    zeros = jax.jit(lambda: [jnp.zeros(x.shape, x.dtype) for x in leaves], out_shardings=shard_of)
    zeros = zeros.lower().compile()  # the model's allocation is not init: compiled before
    structs = [jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s) for x, s in zip(leaves, shard_of)]
    rules = policy()
    _reset_peak()
    base = _rss()
    t = time.perf_counter()
    if how.startswith("xinit"):
        # "xinit": the abstract state with its shardings, each array made once by xinit;
        # "xinit-zeros": sharded zeros first, then replaced (docs/scale.md, both recipes)
        held = zeros() if how == "xinit-zeros" else structs
        model = nnx.merge(graphdef, jax.tree.unflatten(treedef, held))
        del held
        xinit.apply(rules, model, seed=0, rng="xinit", strict=True)
        values = jax.tree.flatten(nnx.state(model))[0]
    else:
        kinds = [len(x.shape) for x in leaves]

        def init(key):
            keys = jax.random.split(key, len(leaves))
            return [
                jax.random.normal(k, x.shape) * STD if nd == 2 else jnp.zeros(x.shape)
                for k, x, nd in zip(keys, leaves, kinds)
            ]

        values = jax.jit(init, out_shardings=shard_of)(jax.random.key(0))
    jax.block_until_ready(values)
    elapsed = time.perf_counter() - t
    grew = max(_peak() - base, 0)
    live = max(_trimmed_rss() - base, 0)
    digest = _digest(np.asarray(v) for v in values)
    return {
        "time": elapsed,
        "grew": grew,
        "live": live,
        "shard": shard_bytes,
        "devices": n,
        "digest": digest,
    }


def _fsdp_spec(shape: tuple[int, ...], n: int):
    """FSDP over ``n`` devices: the first axis that ``n`` divides (GPT-2's vocabulary, 50257
    rows, is split along its width instead); replicated if none does."""
    from jax.sharding import PartitionSpec as P

    for axis, size in enumerate(shape):
        if size % n == 0:
            return P(*(None,) * axis, "fsdp")
    return P()


def _memory_limit() -> int:
    """Bytes the framework's own jitted init may allocate: 80% of what the machine has
    available now, so a run that would exhaust it fails alone instead of the machine."""
    with open("/proc/meminfo") as f:
        info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
    return int(0.8 * info["MemAvailable"])


def _limit_data(limit: int):
    """A ``preexec_fn`` capping the child's data segment (heap and anonymous mappings)."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))

    return apply


def flax_model():
    """The Flax model (call under ``nnx.eval_shape``): the stack, or the spec's modules."""
    from flax import nnx

    spec = _spec()
    if spec is not None:
        from xinit.backends import get_backend

        return get_backend("flax")._build_node(spec, "cpu", "", {}, None)
    d, layers = _sizes()

    class Block(nnx.Module):
        def __init__(self, rngs):
            self.ln1, self.ln2 = nnx.LayerNorm(d, rngs=rngs), nnx.LayerNorm(d, rngs=rngs)
            self.qkv, self.proj = nnx.Linear(d, 3 * d, rngs=rngs), nnx.Linear(d, d, rngs=rngs)
            self.up, self.down = nnx.Linear(d, 4 * d, rngs=rngs), nnx.Linear(4 * d, d, rngs=rngs)

    class GPT(nnx.Module):
        def __init__(self, rngs):
            self.blocks = nnx.List([Block(rngs) for _ in range(layers)])

    return GPT(nnx.Rngs(0))


def _jax_sweep(devices=(1, 2, 4, 8)) -> list[dict]:
    rows = []
    for n in devices:
        row = {"devices": n}
        for how in ("xinit", "jax"):
            env = dict(
                os.environ,
                XLA_FLAGS=f"--xla_force_host_platform_device_count={n}",
                JAX_PLATFORMS="cpu",
            )
            limit = _memory_limit() if how == "jax" else None
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_scale", "jax", how],
                env=env,
                capture_output=True,
                text=True,
                check=False,
                preexec_fn=_limit_data(limit) if limit else None,
            )
            if proc.returncode and how == "jax":  # JAX's own init did not fit: say so
                print(proc.stderr[-1500:], flush=True)
                row[how] = {
                    "failed": f"did not finish under its {limit / 1e9:.1f} GB memory limit "
                    f"(exit code {proc.returncode})"
                }
                continue
            if proc.returncode:
                raise RuntimeError(proc.stderr[-3000:])
            row[how] = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"  jax devices {n}: {row}", flush=True)
    return rows


def run() -> list[Result]:
    label = _label()
    results: list[Result] = []
    torch_rows = _torch_sweep()
    same = {how: len({r[how]["digest"] for r in torch_rows}) == 1 for how in ("xinit", "torch")}
    for r in torch_rows:
        tx = max(t for t, _, _, _ in r["xinit"]["times"])
        tn = max(t for t, _, _, _ in r["torch"]["times"])
        mem = max(g / s for _, g, s, _ in r["xinit"]["times"])
        live = max(v / s for _, _, s, v in r["xinit"]["times"])
        note = (
            f"equal across world sizes: xinit {'yes' if same['xinit'] else 'NO'}, torch "
            f"{'yes' if same['torch'] else 'no'}; xinit peak RSS growth / shard {mem:.2f}x "
            f"(resident after, allocator trimmed: {live:.2f}x)"
        )
        results.append(
            Result(
                f"torch FSDP2 {label}, {r['world']} rank(s): xinit.apply vs normal_ on DTensors",
                tx,
                tn,
                "<= 99",
                "s",
                note,
            )
        )
    jax_rows = _jax_sweep()
    xinit_same = len({r["xinit"]["digest"] for r in jax_rows}) == 1
    ran = [r for r in jax_rows if "digest" in r["jax"]]
    jax_same = "yes" if len({r["jax"]["digest"] for r in ran}) == 1 else "no"
    if len(ran) < len(jax_rows):
        jax_same = f"{jax_same} over the {len(ran)} device counts it ran" if ran else "not run"
    for r in jax_rows:
        held = r["xinit"]["shard"] * r["devices"]
        mem, live = r["xinit"]["grew"] / held, r["xinit"]["live"] / held
        own = r["jax"].get("failed")
        note = (
            f"equal across device counts: xinit {'yes' if xinit_same else 'NO'}, jax "
            f"{jax_same}; {f'jax: {own}; ' if own else ''}xinit peak RSS growth / bytes of the "
            f"{r['devices']} shards (one process holds them all) {mem:.2f}x (resident after, "
            f"allocator trimmed: {live:.2f}x)"
        )
        results.append(
            Result(
                f"jax {label}, {r['devices']} host device(s): xinit.apply vs "
                "jit(init, out_shardings)",
                r["xinit"]["time"],
                r["jax"].get("time", math.nan),
                "<= 99",
                "s",
                note,
            )
        )
    return results


if __name__ == "__main__":
    if sys.argv[1] == "jax":
        print(json.dumps(jax_worker(sys.argv[2])))
