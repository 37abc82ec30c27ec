"""Keyed generator throughput (rng="xinit") vs the frameworks' own samplers, 64 Mi float32."""

from __future__ import annotations

import numpy as np

from xinit.distributions import NormalDist, TruncNormalDist
from xinit.rng import keyed_sample

from .harness import Result, interleaved

N = 64 * 1024 * 1024


def run(repeats: int = 5) -> list[Result]:
    import torch

    torch.set_num_threads(2)
    buf = torch.empty(N)
    mine = np.empty(N, np.float32)  # both sides write into preallocated memory
    normal = NormalDist(0.0, 1.0)
    trunc = TruncNormalDist(0.0, 1.0, -2.0, 2.0)
    out = []
    tx, tn = interleaved(
        lambda: keyed_sample(normal, (N,), 0, "w", out=mine), lambda: buf.normal_(), repeats
    )
    out.append(Result("keyed normal vs torch normal_ (samples/s)", N / tx, N / tn, ">= 1.0", "M/s"))
    tx, tn = interleaved(
        lambda: keyed_sample(trunc, (N,), 0, "w", out=mine),
        lambda: torch.nn.init.trunc_normal_(buf),
        repeats,
    )
    out.append(
        Result(
            "keyed truncated normal vs torch trunc_normal_ (samples/s)",
            N / tx,
            N / tn,
            ">= 5.0",
            "M/s",
        )
    )
    try:
        import jax

        key = jax.random.key(0)
        jn = jax.jit(lambda k: jax.random.normal(k, (N,)))
        jt = jax.jit(lambda k: jax.random.truncated_normal(k, -2.0, 2.0, (N,)))
        tx, tj = interleaved(
            lambda: keyed_sample(normal, (N,), 0, "w", out=mine),
            lambda: jn(key).block_until_ready(),
            repeats,
        )
        out.append(
            Result(
                "keyed normal vs jax.random.normal (samples/s)",
                N / tx,
                N / tj,
                "<= 99",
                "M/s",
                "reported, no target",
            )
        )
        tx, tj = interleaved(
            lambda: keyed_sample(trunc, (N,), 0, "w", out=mine),
            lambda: jt(key).block_until_ready(),
            repeats,
        )
        out.append(
            Result(
                "keyed trunc normal vs jax.random.truncated_normal (samples/s)",
                N / tx,
                N / tj,
                "<= 99",
                "M/s",
                "reported, no target",
            )
        )
    except ImportError:
        pass
    try:
        import paddle

        tx, tp = interleaved(
            lambda: keyed_sample(normal, (N,), 0, "w", out=mine),
            lambda: paddle.normal(0.0, 1.0, [N]),
            repeats,
        )
        out.append(
            Result(
                "keyed normal vs paddle.normal (samples/s)",
                N / tx,
                N / tp,
                "<= 99",
                "M/s",
                "reported, no target",
            )
        )
    except ImportError:
        pass
    return out
