"""A hand-written Flax NNX ResNet-50 (torchvision's structure), the way a Flax user writes it.

Used by the build benchmark as "the framework's own way": nnx.Conv / nnx.BatchNorm /
nnx.Linear with their default initialisers.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class Bottleneck(nnx.Module):
    def __init__(self, cin: int, planes: int, stride: int, rngs: nnx.Rngs):
        out = planes * 4
        self.conv1 = nnx.Conv(cin, planes, (1, 1), use_bias=False, rngs=rngs)
        self.bn1 = nnx.BatchNorm(planes, rngs=rngs)
        self.conv2 = nnx.Conv(
            planes,
            planes,
            (3, 3),
            strides=stride,
            padding=((1, 1), (1, 1)),
            use_bias=False,
            rngs=rngs,
        )
        self.bn2 = nnx.BatchNorm(planes, rngs=rngs)
        self.conv3 = nnx.Conv(planes, out, (1, 1), use_bias=False, rngs=rngs)
        self.bn3 = nnx.BatchNorm(out, rngs=rngs)
        if stride != 1 or cin != out:
            self.downsample = nnx.Sequential(
                nnx.Conv(cin, out, (1, 1), strides=stride, use_bias=False, rngs=rngs),
                nnx.BatchNorm(out, rngs=rngs),
            )
        else:
            self.downsample = None

    def __call__(self, x):
        y = jax.nn.relu(self.bn1(self.conv1(x)))
        y = jax.nn.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return jax.nn.relu(y + (self.downsample(x) if self.downsample is not None else x))


class ResNet50(nnx.Module):
    def __init__(self, num_classes: int = 1000, rngs: nnx.Rngs | None = None):
        rngs = rngs or nnx.Rngs(0)
        self.conv1 = nnx.Conv(
            3, 64, (7, 7), strides=2, padding=((3, 3), (3, 3)), use_bias=False, rngs=rngs
        )
        self.bn1 = nnx.BatchNorm(64, rngs=rngs)
        cin, stages = 64, []
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3))):
            blocks = []
            for j in range(n):
                blocks.append(Bottleneck(cin, planes, 2 if (i > 0 and j == 0) else 1, rngs))
                cin = planes * 4
            stages.append(nnx.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nnx.Linear(2048, num_classes, rngs=rngs)

    def __call__(self, x):
        x = jax.nn.relu(self.bn1(self.conv1(x)))
        x = nnx.max_pool(x, (3, 3), (2, 2), ((1, 1), (1, 1)))
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
        return self.fc(jnp.mean(x, axis=(1, 2)))
