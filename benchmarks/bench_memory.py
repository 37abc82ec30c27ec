"""Peak memory of initialising a >= 1 GB fp32 model (deep MLP), measured as peak RSS.

Each measurement runs in a fresh interpreter: frameworks imported and warmed up, the peak
RSS counter reset (``/proc/self/clear_refs``), then the model is built; the figure is the
peak RSS above that baseline, divided by the parameter bytes.
"""

from __future__ import annotations

import json
import subprocess
import sys

from .harness import Result

WIDTH, DEPTH = 4096, 16  # 16 x (4096 x 4096 + 4096) fp32 = 1.07 GB

_CHILD = r"""
import json, sys
backend, mode, width, depth = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def rss(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024

import xinit
from xinit.layers import Linear
spec = xinit.Sequential(*[Linear(width, width) for _ in range(depth)])
small = xinit.Sequential(Linear(64, 64))

def native():
    if backend == "torch":
        import torch
        return torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(depth)])
    if backend == "paddle":
        import paddle
        return paddle.nn.Sequential(*[paddle.nn.Linear(width, width) for _ in range(depth)])
    from flax import nnx
    rngs = nnx.Rngs(0)
    return nnx.Sequential(*[nnx.Linear(width, width, rngs=rngs) for _ in range(depth)])

xinit.build(small, backend)  # imports and warm-up
if mode == "native":
    import numpy as np
    np.zeros(1)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = rss("VmRSS:")
model = xinit.build(spec, backend) if mode == "xinit" else native()
peak = rss("VmHWM:")
print(json.dumps({"peak_above_base": peak - base}))
"""


def measure(backend: str, mode: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, backend, mode, str(WIDTH), str(DEPTH)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_above_base"]


def run(backends=("torch", "paddle", "flax")) -> list[Result]:
    param_bytes = DEPTH * (WIDTH * WIDTH + WIDTH) * 4
    results = []
    for backend in backends:
        x = measure(backend, "xinit")
        n = measure(backend, "native")
        results.append(
            Result(
                f"init peak RSS above baseline, {param_bytes / 1e9:.2f} GB MLP, {backend} (bytes)",
                x,
                param_bytes,
                "<= 1.1" if backend == "torch" else "<= 99",
                "B",
                ("" if backend == "torch" else "figure stated, no target; ")
                + f"ratio = peak / parameter bytes; the framework's own construction: "
                f"{n / param_bytes:.2f}x",
            )
        )
    return results
