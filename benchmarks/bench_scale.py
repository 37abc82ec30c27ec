"""Sharded init at scale: a GPT-style stack of Linear and LayerNorm layers built on meta and
initialised by ``xinit.apply(rng="xinit")`` shard by shard, against the frameworks' own
sharded init (torch ``normal_`` on DTensors; ``jax.jit(init, out_shardings=...)``).

``python -m benchmarks scale`` (minutes; not in the default suite). The model size comes from
``XINIT_SCALE_D`` (width, default 1024) and ``XINIT_SCALE_LAYERS`` (default 16: ~200 M
parameters); ``XINIT_SCALE_D=2048 XINIT_SCALE_LAYERS=20`` is the ~1 B model. Per row: init
time, whether the gathered values are equal across world sizes (a digest of every gathered
parameter), and each rank's peak RSS growth during init over its shard's bytes.
"""

from __future__ import annotations

import hashlib
import json
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


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def policy():
    from xinit import init as I  # noqa: N812
    from xinit.policy import Policy, Rule

    return Policy(
        Rule(I.Normal(0.0, STD), kind="linear", bias=I.Zeros()),
        Rule(I.Ones(), kind="layernorm", bias=I.Zeros()),
    )


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

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    d, layers = _sizes()
    mesh = init_device_mesh("cpu", (world,))
    with torch.device("meta"):
        model = torch_gpt(d, layers)
    for block in model.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    rules = policy()
    model.to_empty(device="cpu")
    shard = sum(p.to_local().numel() * 4 for p in model.parameters())
    base = _rss()
    dist.barrier()
    t = time.perf_counter()
    if how == "xinit":
        xinit.apply(rules, model, seed=0, rng="xinit")
    else:  # torch's own: one generator, normal_ on each DTensor
        torch.manual_seed(0)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("bias"):
                    p.zero_()
                elif ".ln" in name:
                    p.fill_(1.0)
                else:
                    p.normal_(0.0, STD)
    elapsed = time.perf_counter() - t
    grew = max(_peak() - base, 0)
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
    dist.all_gather_object(times, (elapsed, grew, shard))
    if rank == 0:
        Path(out).write_text(json.dumps({"times": times, "digest": digest}))
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
    (FSDP-like: first axis over all devices), initialised by xinit shard by shard or by one
    jitted init with out_shardings; time, digest, peak RSS growth over the shard bytes."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    import xinit

    d, layers = _sizes()
    n = len(jax.devices())
    mesh = Mesh(np.array(jax.devices()), ("fsdp",))

    class Block(nnx.Module):
        def __init__(self, rngs):
            self.ln1, self.ln2 = nnx.LayerNorm(d, rngs=rngs), nnx.LayerNorm(d, rngs=rngs)
            self.qkv, self.proj = nnx.Linear(d, 3 * d, rngs=rngs), nnx.Linear(d, d, rngs=rngs)
            self.up, self.down = nnx.Linear(d, 4 * d, rngs=rngs), nnx.Linear(4 * d, d, rngs=rngs)

    class GPT(nnx.Module):
        def __init__(self, rngs):
            self.blocks = nnx.List([Block(rngs) for _ in range(layers)])

    abstract = nnx.eval_shape(lambda: GPT(nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    leaves, treedef = jax.tree.flatten(state)
    shard_of = [NamedSharding(mesh, P("fsdp") if x.shape[0] % n == 0 else P()) for x in leaves]
    shard_bytes = sum(
        int(np.prod(x.shape)) * 4 // (n if s.spec else 1) for x, s in zip(leaves, shard_of)
    )
    zeros = jax.jit(lambda: [jnp.zeros(x.shape, x.dtype) for x in leaves], out_shardings=shard_of)
    base = _rss()
    t = time.perf_counter()
    if how == "xinit":
        model = nnx.merge(graphdef, jax.tree.unflatten(treedef, zeros()))
        xinit.apply(policy(), model, seed=0, rng="xinit")
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
    digest = _digest(np.asarray(v) for v in values)
    return {"time": elapsed, "grew": grew, "shard": shard_bytes, "devices": n, "digest": digest}


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
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_scale", "jax", how],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode:
                raise RuntimeError(proc.stderr[-3000:])
            row[how] = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"  jax devices {n}: {row}", flush=True)
    return rows


def run() -> list[Result]:
    d, layers = _sizes()
    params = layers * (12 * d * d + 13 * d)
    label = f"{params / 1e6:,.0f} M-param GPT stack"
    results: list[Result] = []
    torch_rows = _torch_sweep()
    same = {how: len({r[how]["digest"] for r in torch_rows}) == 1 for how in ("xinit", "torch")}
    for r in torch_rows:
        tx = max(t for t, _, _ in r["xinit"]["times"])
        tn = max(t for t, _, _ in r["torch"]["times"])
        mem = max(g / s for _, g, s in r["xinit"]["times"])
        note = (
            f"equal across world sizes: xinit {'yes' if same['xinit'] else 'NO'}, torch "
            f"{'yes' if same['torch'] else 'no'}; xinit peak RSS growth / shard {mem:.2f}x"
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
    same = {how: len({r[how]["digest"] for r in jax_rows}) == 1 for how in ("xinit", "jax")}
    for r in jax_rows:
        mem = r["xinit"]["grew"] / (r["xinit"]["shard"] * r["devices"])
        note = (
            f"equal across device counts: xinit {'yes' if same['xinit'] else 'NO'}, jax "
            f"{'yes' if same['jax'] else 'no'}; xinit peak RSS growth / bytes of the "
            f"{r['devices']} shards (one process holds them all) {mem:.2f}x"
        )
        results.append(
            Result(
                f"jax {label}, {r['devices']} host device(s): xinit.apply vs "
                "jit(init, out_shardings)",
                r["xinit"]["time"],
                r["jax"]["time"],
                "<= 99",
                "s",
                note,
            )
        )
    return results


if __name__ == "__main__":
    if sys.argv[1] == "jax":
        print(json.dumps(jax_worker(sys.argv[2])))
