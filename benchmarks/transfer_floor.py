"""What a torch -> flax transfer of ResNet-50 cannot go below, beside the row's memcpy.

``python -m benchmarks.transfer_floor``: Flax holds kernels HWIO, PyTorch OIHW, so nearly
every byte moves through a transposed copy, then ``jax.device_put``. This times those steps
alone (numpy's, torch's and XLA's own transposes, the puts) against the memcpy the
``transfer`` row compares with; no target, a reference for that row.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np

PERM = {4: (2, 3, 1, 0), 2: (1, 0), 1: (0,)}  # OIHW -> HWIO, (out, in) -> (in, out)


def main(repeats: int = 7) -> None:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    import jax.numpy as jnp
    import torch

    import xinit
    from xinit.backends.common.blocked_copy import copy_into
    from xinit.state import _state

    spec = xinit.models.resnet50()
    src, dst = xinit.build(spec, "torch"), xinit.build(spec, "flax")
    state = {k: v for k, v in _state(src, copy=False).items() if v.ndim}
    nbytes = sum(a.nbytes for a in state.values())
    views = [a.transpose(PERM[a.ndim]) for a in state.values()]
    outs = [np.empty(v.shape, v.dtype) for v in views]
    torch_src = [torch.from_numpy(a) for a in state.values()]
    jax_src = [jnp.asarray(np.array(a)) for a in state.values()]
    flat = np.ones(nbytes // 4, np.float32)
    flat_out = np.empty_like(flat)
    cpu = jax.devices("cpu")[0]

    def numpy_transpose():
        for out, view in zip(outs, views):
            copy_into(out, view)

    steps = {
        "memcpy of the bytes (the row's own)": lambda: np.copyto(flat_out, flat),
        "xinit.transfer torch -> flax": lambda: xinit.transfer(src, dst),
        "numpy transposed copy (copy_into)": numpy_transpose,
        "torch permute(...).contiguous()": lambda: [
            t.permute(PERM[t.ndim]).contiguous() for t in torch_src
        ],
        "jnp.transpose (compiled, warm)": lambda: jax.block_until_ready(
            [jnp.transpose(a, PERM[a.ndim]) for a in jax_src]
        ),
        f"jax.device_put of the {len(outs)} host arrays": lambda: jax.block_until_ready(
            [jax.device_put(o, cpu) for o in outs]
        ),
    }
    for step in steps.values():
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):  # interleaved: drift in the machine hits every step alike
        for name, step in steps.items():
            t = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t)
    base = statistics.median(times["memcpy of the bytes (the row's own)"])
    print(f"load average {os.getloadavg()[0]:.1f}, torch threads {torch.get_num_threads()}")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"{name:42s} {m * 1e3:8.1f} ms {nbytes / m / 1e9:6.2f} GB/s  ratio {base / m:.2f}")


if __name__ == "__main__":
    main()
