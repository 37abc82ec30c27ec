"""Convert torchvision's MobileNetV3-Small to PaddlePaddle and Flax: no twin, one call each.

No Paddle or Flax MobileNetV3 with torchvision's names exists to port the weights into, and
none is needed: ``xinit.convert`` traces the torch model into a spec (its layers under their
module paths, the glue between them as graph operations), builds that spec in the target
framework, moves every weight by name (Paddle's ``_mean``, Flax's HWIO kernels) and compares
the two models layer by layer with xinit's parity verdict (float64-derived). The traced spec
is data: saved as JSON it builds again with no torch installed.

Run: ``python examples/convert_torchvision_to_paddle.py`` (``--to paddle`` alone takes
about 20 s on 2 cores; Flax compiles every layer and takes a few minutes). torchvision must be
installed (randomly initialised weights, nothing downloaded).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import types
from pathlib import Path


def main(model_name: str, targets: list[str], size: int) -> bool:
    """Convert ``model_name`` to each of ``targets``; True when every parity verdict passes."""
    import numpy as np

    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("stub"))
    import torchvision

    import xinit

    model = getattr(torchvision.models, model_name)()
    xinit.randomize_batchnorm(model, seed=0)  # a fresh model's statistics are 0 and 1
    x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    ok = True
    for to in targets:
        module, report = xinit.convert(model, to, x)
        print(f"== torchvision {model_name} -> {to} ({type(module).__name__})")
        print(report.summary())
        ok = ok and report.ok
        with tempfile.TemporaryDirectory() as folder:
            path = xinit.save_spec(report.spec, Path(folder) / "spec.json")
            again = xinit.load_spec(path)
            same = again == report.spec
            print(f"spec.json: {path.stat().st_size:,} bytes, loads back equal: {same}")
    return ok


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="mobilenet_v3_small", help="a torchvision model name")
    parser.add_argument(
        "--to", default="paddle,flax", help="the target frameworks, comma-separated"
    )
    parser.add_argument("--size", type=int, default=224, help="the input's height and width")
    args = parser.parse_args()
    sys.exit(0 if main(args.model, args.to.split(","), args.size) else 1)
