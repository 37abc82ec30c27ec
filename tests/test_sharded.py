"""Sharded initialisation: each rank / device computes only its shard, and the gathered
values equal the single-process init bit for bit (torch DTensor and FSDP2 over gloo; JAX
NamedSharding on forced host devices; a torch shard equals the same block of Flax's values).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import require_backend, require_backends
from sharded_cases import POLICY, SEED, torch_model, torch_values

import xinit
from xinit.distributions import NormalDist, TruncNormalDist, UniformDist
from xinit.rng import keyed_box, keyed_sample

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def torch_run(tmp_path_factory):
    """Two gloo ranks (spawned once for every torch case): their saved values and errors."""
    require_backend("torch")
    import torch.distributed as dist

    if not dist.is_available():
        pytest.skip("torch was built without torch.distributed")
    import torch.multiprocessing as mp
    from sharded_cases import torch_rank

    out = tmp_path_factory.mktemp("torch_sharded")
    for attempt in range(3):  # a free port can be taken by another process (xdist) meanwhile
        try:
            mp.spawn(torch_rank, args=(2, _free_port(), str(out)), nprocs=2, join=True)
            return out
        except Exception:  # noqa: BLE001 - torch.multiprocessing.ProcessRaisedException, ...
            if attempt == 2:
                raise
    return out


@pytest.fixture(scope="module")
def torch_reference():
    require_backend("torch")
    model = torch_model()
    xinit.apply(POLICY, model, seed=SEED, rng="xinit")
    return torch_values(model)


@pytest.mark.parametrize("case", ["shard0", "shard1", "mesh2d", "fsdp"])
def test_gathered_torch_shards_equal_the_single_process_init(torch_run, torch_reference, case):
    got = dict(np.load(torch_run / f"{case}_0.npz"))
    assert set(got) == set(torch_reference)
    for name, ref in torch_reference.items():
        assert got[name].shape == ref.shape, (case, name)
        assert np.array_equal(got[name], ref), f"{case}: {name} differs from world size 1"
    # the init is not trivially equal: the random laws drew distinct values
    assert np.unique(got["fc2.weight"]).size == got["fc2.weight"].size


def test_local_shards_are_the_blocks_of_the_whole(torch_run, torch_reference):
    """fc2.weight (9, 5) split by columns over 2 ranks: 3 and 2 columns (uneven)."""
    whole = torch_reference["fc2.weight"]
    r0 = np.load(torch_run / "shard1_local_0.npz")["rank0"]
    r1 = np.load(torch_run / "shard1_local_1.npz")["rank1"]
    assert r0.shape == (9, 3) and r1.shape == (9, 2)
    assert np.array_equal(r0, whole[:, :3]) and np.array_equal(r1, whole[:, 3:])


def test_sharded_bad_input_names_path_and_sharding(torch_run):
    errors = json.loads((torch_run / "errors.json").read_text())
    assert "fc1.weight" in errors["native"] and "rng='native'" in errors["native"]
    assert "world size" in errors["native"] and "Shard(dim=0)" in errors["native"]
    assert "fc1.weight" in errors["partial"] and "Partial" in errors["partial"]
    assert "Shard(d) and Replicate() only" in errors["partial"]


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory):
    """Flax in a subprocess with 4 forced host devices (set before jax is imported)."""
    require_backend("flax")
    out = tmp_path_factory.mktemp("jax_sharded")
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, str(HERE / "sharded_cases.py"), "jax", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "jax.json").read_text()), dict(np.load(out / "jax.npz"))


@pytest.mark.parametrize("tag", ["1d.0", "1d.1", "2d.0", "2d.1", "2d.2"])
def test_jax_shards_equal_the_single_device_init(jax_run, tag):
    results, arrays = jax_run
    assert results["devices"] == 4
    assert results[tag]["kept_sharding"], f"{tag}: the sharding was not kept"
    refs = {k[4:]: v for k, v in arrays.items() if k.startswith("ref.")}
    assert refs
    for name, ref in refs.items():
        assert np.array_equal(arrays[f"{tag}.{name}"], ref), f"{tag}: {name} differs"
    assert results[tag]["shards"]["fc1.kernel"] == 4


def test_jax_native_rng_on_a_sharded_parameter_is_an_error(jax_run):
    message = jax_run[0]["native_error"]
    assert "fc1.weight" in message and "P('x'," in message and "rng='xinit'" in message


def test_a_torch_shard_is_the_same_block_of_the_flax_values(torch_run, jax_run):
    """Each torch rank's block of fc2.weight (Shard(1): 3 and 2 columns) equals the same block
    of the Flax twin's values (kernel (in, out): the neutral (out, in) transposed)."""
    require_backends("torch", "flax")
    flax_weight = jax_run[1]["twin.fc2.kernel"].T
    assert flax_weight.shape == (9, 5)
    r0 = np.load(torch_run / "shard1_local_0.npz")["rank0"]
    r1 = np.load(torch_run / "shard1_local_1.npz")["rank1"]
    assert np.array_equal(r0, flax_weight[:, :3]) and np.array_equal(r1, flax_weight[:, 3:])
    flax_ln = jax_run[1]["twin.ln.bias"]
    fsdp = dict(np.load(torch_run / "fsdp_0.npz"))
    assert np.array_equal(fsdp["ln.bias"], flax_ln)


@pytest.mark.parametrize(
    "law",
    [
        NormalDist(0.5, 2.0),
        UniformDist(-1, 3),
        TruncNormalDist(0.0, 1.0, -2.0, 2.0),
        TruncNormalDist(0.0, 1.0, -0.3, 0.3),
    ],
)
def test_keyed_box_equals_the_block_of_the_whole(law):
    rng = np.random.default_rng(0)
    for shape in [(7, 5, 3), (300, 257), (5,), (), (2, 0, 3)]:
        whole = keyed_sample(law, shape, 3, "w")
        for _ in range(12):
            offset = tuple(int(rng.integers(0, s + 1)) for s in shape)
            size = tuple(int(rng.integers(0, s - o + 1)) for s, o in zip(shape, offset))
            box = keyed_box(law, shape, 3, "w", offset, size)
            block = whole[tuple(slice(o, o + n) for o, n in zip(offset, size))]
            assert box.shape == block.shape and np.array_equal(box, block), (shape, offset)


def test_keyed_box_outside_the_tensor_is_an_error():
    with pytest.raises(ValueError, match=r"outside a tensor of shape \(4, 6\)"):
        keyed_box(NormalDist(0, 1), (4, 6), 0, "w", (2, 0), (3, 6))
    with pytest.raises(ValueError, match="C-contiguous float32 array of shape"):
        keyed_box(NormalDist(0, 1), (4, 6), 0, "w", (0, 0), (2, 6), out=np.empty((6, 2)))
