"""LeNet-5 as in the PyTorch CIFAR-10 tutorial's ``Net`` (3x32x32 input, 10 classes)."""

from __future__ import annotations

from ..blocks import Sequential
from ..layers import Conv, Flatten, Linear, MaxPool, ReLU
from ._arguments import zoo_model


@zoo_model
@zoo_model
def lenet(num_classes: int = 10, in_channels: int = 3) -> Sequential:
    """conv1(3->6, 5) pool conv2(6->16, 5) pool fc1(400->120) fc2(120->84) fc3(84->classes)."""
    return Sequential(
        ("conv1", Conv(in_channels, 6, 5)),
        ("relu", ReLU()),
        ("pool", MaxPool(2, 2)),
        ("conv2", Conv(6, 16, 5)),
        ("relu", ReLU()),
        ("pool", MaxPool(2, 2)),
        ("flatten", Flatten()),
        ("fc1", Linear(16 * 5 * 5, 120)),
        ("relu", ReLU()),
        ("fc2", Linear(120, 84)),
        ("relu", ReLU()),
        ("fc3", Linear(84, num_classes)),
    )
