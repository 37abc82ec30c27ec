"""Sharded initialisation: each rank / device computes only its shard, and the gathered
values equal the single-process init bit for bit (torch DTensor and FSDP2 over gloo; Paddle
auto-parallel dist tensors over 2 gloo processes; JAX NamedSharding on forced host devices; a
torch shard equals the same block of Flax's and of Paddle's values).
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
from sharded_cases import POLICY, SEED, paddle_model, paddle_values, torch_model, torch_values

import xinit
from xinit.distributions import NormalDist, TruncNormalDist, UniformDist
from xinit.rng import keyed_box, keyed_sample

HERE = Path(__file__).resolve().parents[1]  # tests/, where sharded_cases.py lives


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


def test_xinit_built_gpt2_fsdp2_sharded_equals_its_single_process_build(torch_run):
    """xinit's own GPT-2 built on meta, each block FSDP2-sharded over 2 ranks (11 vocabulary
    rows and 7 positions: uneven), allocated and given the gpt2 preset: gathered, every
    parameter equals ``xinit.build`` of the same spec with that policy in one process."""
    from sharded_cases import GPT2_POLICY, GPT2_SMALL

    built = xinit.build(
        xinit.models.gpt2(**GPT2_SMALL), "torch", seed=SEED, rng="xinit", policy=GPT2_POLICY
    )
    want = torch_values(built)
    got = dict(np.load(torch_run / "xinit_gpt2_0.npz"))
    assert set(got) == set(want) and "wte.weight" in got
    for name, ref in want.items():
        assert np.array_equal(got[name], ref), f"{name} differs from the one-process build"


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


def _paddle_ranks(out: Path, world: int = 2) -> list[subprocess.CompletedProcess]:
    """``world`` Paddle processes (``sharded_cases.py paddle OUT``) with the variables
    ``paddle.distributed.launch`` would set, gloo on CPU."""
    ports = [_free_port() for _ in range(world + 1)]
    endpoints = ",".join(f"127.0.0.1:{p}" for p in ports[1:])
    procs = []
    for rank in range(world):
        env = dict(
            os.environ,
            PADDLE_TRAINER_ID=str(rank),
            PADDLE_TRAINERS_NUM=str(world),
            PADDLE_MASTER=f"127.0.0.1:{ports[0]}",
            PADDLE_TRAINER_ENDPOINTS=endpoints,
            PADDLE_CURRENT_ENDPOINT=f"127.0.0.1:{ports[rank + 1]}",
            PADDLE_DISTRI_BACKEND="gloo",
        )
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)
        procs.append(
            subprocess.Popen(
                [sys.executable, str(HERE / "sharded_cases.py"), "paddle", str(out)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    done = []
    for proc in procs:
        try:
            text, _ = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, text))
    return done


@pytest.fixture(scope="module")
def paddle_run(tmp_path_factory):
    """Two Paddle ranks (gloo, CPU) run once for every Paddle case: saved values and errors."""
    require_backend("paddle")
    out = tmp_path_factory.mktemp("paddle_sharded")
    for attempt in range(3):  # a free port can be taken by another process meanwhile
        ranks = _paddle_ranks(out)
        if all(r.returncode == 0 for r in ranks):
            return out
        if attempt == 2:
            raise AssertionError("\n".join(r.stdout[-3000:] for r in ranks if r.returncode))
    return out


@pytest.fixture(scope="module")
def paddle_reference():
    require_backend("paddle")
    model = paddle_model()
    xinit.apply(POLICY, model, seed=SEED, rng="xinit")
    return paddle_values(model)


@pytest.mark.parametrize("case", ["shard0", "shard1", "mesh2d", "layer", "lazy"])
def test_gathered_paddle_shards_equal_the_single_process_init(paddle_run, paddle_reference, case):
    got = dict(np.load(paddle_run / f"paddle_{case}.npz"))
    assert set(got) == set(paddle_reference)
    for name, ref in paddle_reference.items():
        assert got[name].shape == ref.shape, (case, name)
        assert np.array_equal(got[name], ref), f"{case}: {name} differs from one process"
    assert np.unique(got["fc2.weight"]).size == got["fc2.weight"].size


def test_paddle_local_values_are_the_blocks_of_the_whole(paddle_run, paddle_reference):
    """fc2.weight is (in, out) = (5, 9) in Paddle: Shard(0) gives rows 3 and 2 (uneven),
    Shard(1) and the (2, 1) mesh's Shard(1) columns 5 and 4; a model built under
    paddle.LazyGuard allocates and fills fc1.weight's 3 rows per rank."""
    whole = paddle_reference["fc2.weight"]
    r0 = np.load(paddle_run / "paddle_local_0.npz")
    r1 = np.load(paddle_run / "paddle_local_1.npz")
    assert np.array_equal(r0["shard0.0"], whole[:3]) and np.array_equal(r1["shard0.1"], whole[3:])
    fc1 = paddle_reference["fc1.weight"]  # (6, 5): built under LazyGuard, 3 rows per rank
    assert np.array_equal(r0["lazy.0"], fc1[:3]) and np.array_equal(r1["lazy.1"], fc1[3:])
    for case in ("shard1", "mesh2d"):
        assert np.array_equal(r0[f"{case}.0"], whole[:, :5])
        assert np.array_equal(r1[f"{case}.1"], whole[:, 5:])


def test_paddle_sharded_bad_input_names_path_and_placement(paddle_run):
    errors = json.loads((paddle_run / "paddle_errors.json").read_text())
    assert "fc1.weight" in errors["native"] and "rng='native'" in errors["native"]
    assert "world size" in errors["native"] and "Shard(dim=0)" in errors["native"]
    assert "fc1.weight" in errors["partial"] and "Partial(reduce_type=SUM)" in errors["partial"]
    assert "Shard(d)" in errors["partial"] and "Replicate() only" in errors["partial"]
    assert "fc1.weight" in errors["coshard"] and "shard_order=1" in errors["coshard"]
    lazy = errors["lazy_uneven"]  # fc1.weight (6, 5) is even; fc1.bias (5,) is not
    assert "fc1.bias" in lazy and "LazyGuard" in lazy and "[5]" in lazy and "Shard(dim=0)" in lazy


def test_a_paddle_rank_computes_its_shard_and_not_the_whole(paddle_run):
    """A 64 MB weight over 2 ranks (32 MB each, written in place through DLPack): the peak RSS
    growth while initialising it is the band scratch (4 MB), not the whole weight (64 MB) nor a
    second shard. Bound: half the local bytes."""
    for rank in (0, 1):
        memory = json.loads((paddle_run / f"paddle_memory_{rank}.json").read_text())
        if memory["growth"] is None:
            pytest.skip("peak RSS is read from Linux /proc")
        assert memory["local"] == 2048 * 4096 * 4 + 2048 * 4
        assert memory["growth"] < 0.5 * memory["local"], memory


def test_a_bfloat16_paddle_dist_tensor_gets_the_float32_init_cast(paddle_reference):
    """Not float32, so not written through DLPack: computed in float32, cast by Paddle and
    set, equal to the single-process init cast the same way (a one-process mesh, in place)."""
    import paddle
    import paddle.distributed as dist

    model = paddle_model()
    model.to(dtype="bfloat16")
    mesh = dist.ProcessMesh([0], dim_names=["x"])
    for sub in (model.fc1, model.ln, model.fc2):
        for leaf in ("weight", "bias"):
            setattr(sub, leaf, dist.shard_tensor(getattr(sub, leaf), mesh, [dist.Shard(0)]))
    xinit.apply(POLICY, model, seed=SEED, rng="xinit")
    for name, p in model.named_parameters():
        assert p.is_dist() and p.dtype == paddle.bfloat16
        want = paddle.to_tensor(paddle_reference[name]).astype("bfloat16").astype("float32")
        got = p._local_value().astype("float32").numpy()
        assert np.array_equal(got, want.numpy()), name


def test_a_paddle_shard_is_the_same_block_of_the_torch_values(paddle_run, torch_reference):
    """Paddle's fc2.weight rows (its Shard(0): 3 and 2) are the torch twin's neutral columns."""
    require_backends("torch", "paddle")
    neutral = torch_reference["fc2.weight"]  # (out, in) = (9, 5)
    r0 = np.load(paddle_run / "paddle_local_0.npz")["shard0.0"]
    r1 = np.load(paddle_run / "paddle_local_1.npz")["shard0.1"]
    assert np.array_equal(r0, neutral[:, :3].T) and np.array_equal(r1, neutral[:, 3:].T)


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


@pytest.mark.parametrize("tag", ["1d.0", "1d.1", "2d.0", "2d.1", "2d.2", "abstract", "partitioned"])
def test_jax_shards_equal_the_single_device_init(jax_run, tag):
    results, arrays = jax_run
    assert results["devices"] == 4
    assert results[tag]["kept_sharding"], f"{tag}: the sharding was not kept"
    refs = {k[4:]: v for k, v in arrays.items() if k.startswith("ref.")}
    assert refs
    for name, ref in refs.items():
        assert np.array_equal(arrays[f"{tag}.{name}"], ref), f"{tag}: {name} differs"
    assert results[tag]["shards"]["fc1.kernel"] == 4


def test_with_partitioning_annotations_are_the_shardings_kept(jax_run):
    """The with_partitioning case really was sharded by Flax on the 2x2 mesh as annotated
    (fc1.kernel over both axes: 4 distinct blocks), so the equality above is over shards."""
    specs = jax_run[0]["partitioned"]["specs"]
    assert specs["fc1.kernel"] == ["data", "model"]
    assert specs["fc2.kernel"] == ["model", "data"]
    assert specs["ln.scale"] == ["model"]


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


@pytest.mark.parametrize(
    "law", [NormalDist(0.5, 2.0), UniformDist(-1, 3), TruncNormalDist(0.0, 1.0, -0.3, 0.3)]
)
def test_many_short_runs_on_all_cores_equal_the_block_of_the_whole(law):
    """Column blocks of a (1500, 1001) tensor: 1500 runs per box computed many rows per pass
    (odd row stride: rows start at even and odd elements, so normal pairs are cut both ways),
    and a box of 1.2 M values split into tasks on the thread pool."""
    shape = (1500, 1001)
    whole = keyed_sample(law, shape, 9, "w")
    for offset, size in [((0, 333), (1500, 100)), ((7, 1), (1490, 999)), ((0, 1000), (1500, 1))]:
        box = keyed_box(law, shape, 9, "w", offset, size)
        block = whole[offset[0] : offset[0] + size[0], offset[1] : offset[1] + size[1]]
        assert np.array_equal(box, block), (offset, size)


def test_a_transposed_box_in_bands_is_the_block_of_the_transposed_whole():
    """box_values with a permutation (Flax / Paddle kernels) computes the neutral box in bands
    of BAND values: a (2100, 1000) neutral tensor whole (3 bands) and a column block, and a
    4-d kernel laid out (kh, kw, I, O), all equal to the transposed whole."""
    from xinit.backends.common.sharding import BAND, box_values

    law = NormalDist(0.0, 1.0)
    shape = (2100, 1000)
    assert shape[0] * shape[1] > 2 * BAND
    native = keyed_sample(law, shape, 4, "k").T  # (in, out)
    for offset, size in [((0, 0), (1000, 2100)), ((250, 0), (500, 2100)), ((0, 17), (1000, 1))]:
        got = box_values(
            law, shape, (1, 0), offset, size, seed=4, path="k", rng="xinit", where="test"
        )
        want = native[offset[0] : offset[0] + size[0], offset[1] : offset[1] + size[1]]
        assert got.shape == want.shape and np.array_equal(got, want), (offset, size)
    conv = (8, 300, 3, 3)
    perm = (2, 3, 1, 0)
    hwio = keyed_sample(law, conv, 4, "c").transpose(perm)
    out = np.empty((3, 3, 100, 8), np.float32)
    got = box_values(
        law,
        conv,
        perm,
        (0, 0, 100, 0),
        out.shape,
        seed=4,
        path="c",
        rng="xinit",
        where="t",
        out=out,
    )
    assert got is out and np.array_equal(out, hwio[:, :, 100:200])


def test_keyed_box_outside_the_tensor_is_an_error():
    with pytest.raises(ValueError, match=r"outside a tensor of shape \(4, 6\)"):
        keyed_box(NormalDist(0, 1), (4, 6), 0, "w", (2, 0), (3, 6))
    with pytest.raises(ValueError, match="C-contiguous float32 array of shape"):
        keyed_box(NormalDist(0, 1), (4, 6), 0, "w", (0, 0), (2, 6), out=np.empty((6, 2)))
