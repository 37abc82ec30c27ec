"""CenterNet (ResNet-18 PoseResNet with hm/wh/reg heads) in torch, paddle and Flax NNX,
initialised as the seed does it, with the three heads' parity.

The seed builds ``msra_resnet``, runs ``init_weights`` (deconvs N(0, 0.001) and their BNs
1/0; ``hm``'s last bias -2.19; ``wh``/``reg``'s last conv N(0, 0.001) / 0) and loads the
backbone from a checkpoint with ``strict=False``. Here, in each framework:

1. ``xinit.build(centernet_resnet(...), fw, policy=presets.centernet_heads(), rng="xinit")``;
2. a backbone state (a torchvision-style ResNet-18's, made on the spot: nothing downloaded)
   is loaded with ``strict=False``;
3. ``xinit.apply(preset, model, skip=backbone keys)`` initialises only what the checkpoint
   lacks, leaving the loaded tensors as they are;

then the three models run one image and the heads are compared layer by layer.

    python examples/centernet_three_frameworks.py [--size 128]
"""

from __future__ import annotations

import argparse

import numpy as np

import xinit
from xinit import models, presets
from xinit.backends import available

HEADS = {"hm": 80, "wh": 2, "reg": 2}


def backbone_state(seed: int = 0) -> dict[str, np.ndarray]:
    """A ResNet-18 backbone checkpoint in neutral (torch) names: xinit's own torchvision
    ResNet-18 built with a different seed and its BN statistics randomised, fc dropped."""
    resnet = xinit.build(
        models.resnet18(), "torch" if "torch" in available() else "flax", seed=seed
    )
    xinit.randomize_batchnorm(resnet, seed=seed)
    return {k: v for k, v in xinit.state_dict(resnet).items() if not k.startswith("fc.")}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=128, help="input side (a multiple of 32)")
    args = parser.parse_args()
    frameworks = [f for f in ("torch", "paddle", "flax") if f in available()]
    spec = models.centernet_resnet(depth=18, heads=HEADS, head_conv=64)
    policy = presets.centernet_heads()
    backbone = backbone_state(seed=7)
    print(xinit.summary(spec, (1, 3, args.size, args.size)).caption())
    built = {}
    for fw in frameworks:
        model = xinit.build(spec, fw, seed=0, rng="xinit", policy=policy)
        loaded = xinit.load_state_dict(model, backbone, strict=False)
        report = xinit.apply(policy, model, seed=0, rng="xinit", skip=backbone.keys())
        print(
            f"{fw:>6}: backbone {len(backbone)} tensors loaded ({len(loaded.missing)} missing: "
            f"deconvs and heads); apply: {len(report.initialized)} initialised, "
            f"{len(report.skipped)} loaded left alone"
        )
        built[fw] = model
    x = np.random.default_rng(0).standard_normal((1, 3, args.size, args.size)).astype(np.float32)
    outs = {fw: xinit.run(m, x) for fw, m in built.items()}
    ref = frameworks[0]
    for head in HEADS:
        line = ", ".join(
            f"{fw} vs {ref}: {np.abs(outs[fw][head] - outs[ref][head]).max():.2e}"
            for fw in frameworks[1:]
        )
        print(f"{head:>4} {tuple(outs[ref][head].shape)} max |diff| {line}")
    hm_bias = xinit.state_dict(built[ref])["hm.2.bias"]
    print(f"hm.2.bias = {hm_bias[0]:.2f} everywhere: {bool(np.all(hm_bias == np.float32(-2.19)))}")
    if len(frameworks) > 1:
        report = xinit.parity(built, x)
        print(report)
        raise SystemExit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
