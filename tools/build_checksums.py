"""sha256 of every zoo model built in each framework with rng="xinit" and rng="native".

Run before and after a refactor that must change nothing a user sees:
    python tools/build_checksums.py -o before.json
    python tools/build_checksums.py --check before.json
Each entry hashes the native state (the framework's own names, layouts, dtypes and bytes,
in its own order) and the neutral state (``xinit.state_dict``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys

import numpy as np

import xinit
from xinit.models import ZOO

SKIP = {"gpt2_1b"}  # a billion parameters: minutes per build on a laptop


def _native_items(module, framework):
    if framework == "torch":
        return [(k, v.detach().cpu().numpy()) for k, v in module.state_dict().items()]
    if framework == "paddle":
        return [(k, v.numpy()) for k, v in module.state_dict().items()]
    import jax
    from flax import nnx

    def host(v):  # RNG key leaves (Dropout's stream) hash as their key data
        if jax.dtypes.issubdtype(v.dtype, jax.dtypes.prng_key):
            v = jax.random.key_data(v)
        return np.asarray(v)

    flat = nnx.to_flat_state(nnx.state(module))
    return [(".".join(map(str, path)), host(v.get_value())) for path, v in flat]


def _digest(items):
    h = hashlib.sha256()
    for k, a in items:
        a = np.ascontiguousarray(a)
        h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def checksums(models, frameworks, rngs):
    out = {}
    for name in models:
        for fw in frameworks:
            for rng in rngs:
                m = xinit.build(name, fw, seed=0, rng=rng)
                key = f"{name}/{fw}/{rng}"
                out[key] = {
                    "native": _digest(_native_items(m, fw)),
                    "neutral": _digest(sorted(xinit.state_dict(m).items())),
                }
                print(key, out[key]["native"][:12], out[key]["neutral"][:12], flush=True)
                del m
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", "--out", help="write the checksums to this JSON file")
    p.add_argument("--check", help="compare with a JSON file written earlier; exit 1 on change")
    p.add_argument("--models", nargs="*", default=[m for m in ZOO if m not in SKIP])
    p.add_argument("--frameworks", nargs="*", default=["torch", "paddle", "flax"])
    p.add_argument("--rng", nargs="*", default=["xinit", "native"])
    a = p.parse_args(argv)
    got = checksums(a.models, a.frameworks, a.rng)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(got, f, indent=1, sort_keys=True)
    if a.check:
        with open(a.check) as f:
            want = json.load(f)
        bad = [k for k in got if k in want and want[k] != got[k]]
        missing = [k for k in got if k not in want]
        same = len(got) - len(bad) - len(missing)
        print(f"{same} unchanged, {len(bad)} changed, {len(missing)} not recorded")
        for k in bad:
            print("CHANGED", k)
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
