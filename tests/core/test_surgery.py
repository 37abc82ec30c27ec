"""Backbone surgery: feature taps as torchvision's create_feature_extractor, truncation at a
node, a headless zoo ResNet and a sub-spec by path; the weights keep their paths, so the
full model's state loads into the cut one."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import FRAMEWORKS, require_backend, require_backends

import xinit
from xinit import models
from xinit.blocks import infer, param_specs
from xinit.graph import Graph, feature_extractor, sub_spec, truncate
from xinit.layers import SpecError
from xinit.state import load_state_dict, state_dict, transfer

X = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)


def _torch_taps(module, paths):
    """The outputs of ``paths`` in a forward of the full torch model, by forward hooks."""
    import torch

    seen, handles = {}, []
    for path in paths:
        sub = module.get_submodule(path)
        handles.append(sub.register_forward_hook(lambda m, i, o, p=path: seen.__setitem__(p, o)))
    with torch.no_grad():
        module.eval()(torch.from_numpy(X))
    for h in handles:
        h.remove()
    return {p: seen[p].numpy() for p in paths}


def test_feature_extractor_returns_the_named_stages_like_torchvision():
    require_backend("torch")
    full = xinit.build(models.resnet18(), "torch", seed=0)
    xinit.randomize_batchnorm(full, seed=1)
    spec = feature_extractor(models.resnet18(), {"layer1": "c2", "layer2.1": "mid", "layer4": "c5"})
    assert isinstance(spec, Graph)
    shapes = infer(spec, X.shape)[-1].output_shape
    assert shapes == {"c2": (1, 64, 16, 16), "mid": (1, 128, 8, 8), "c5": (1, 512, 2, 2)}
    keys = list(param_specs(spec))
    assert keys == [k for k in param_specs(models.resnet18()) if not k.startswith("fc.")]
    taps = xinit.build(spec, "torch", seed=5)
    report = load_state_dict(taps, state_dict(full), strict=False)  # the same paths
    assert list(report.unexpected) == ["fc.weight", "fc.bias"] and not report.missing
    got = xinit.run(taps, X)
    want = _torch_taps(full, ["layer1", "layer2.1", "layer4"])
    for key, path in (("c2", "layer1"), ("mid", "layer2.1"), ("c5", "layer4")):
        np.testing.assert_allclose(got[key], want[path], rtol=1e-5, atol=1e-5)


def test_feature_extractor_agrees_across_frameworks():
    require_backends(*FRAMEWORKS)
    spec = feature_extractor(models.resnet18(), ["layer1", "layer3"])
    mods = {b: xinit.build(spec, b, seed=2, rng="xinit") for b in FRAMEWORKS}
    xinit.randomize_batchnorm(mods["torch"], seed=3)
    for b in FRAMEWORKS[1:]:
        transfer(mods["torch"], mods[b])
    ref = xinit.run(mods["torch"], X)
    for b in FRAMEWORKS[1:]:
        out = xinit.run(mods[b], X)
        assert list(out) == ["layer1", "layer3"]
        for k in ref:
            np.testing.assert_allclose(out[k], ref[k], rtol=1e-4, atol=1e-4, err_msg=f"{b} {k}")


def test_truncate_headless_and_sub_spec():
    cut = truncate(models.resnet18(), "layer3")
    assert infer(cut, X.shape)[-1].output_shape == (1, 256, 4, 4)
    assert not any(k.startswith(("layer4", "fc")) for k in param_specs(cut))
    headless = models.resnet18(num_classes=0)
    assert infer(headless, X.shape)[-1].output_shape == (1, 512)
    assert list(param_specs(headless))[-1] == "layer4.1.bn2.num_batches_tracked"
    block = sub_spec(models.resnet18(), "layer2.0")
    assert infer(block, (1, 64, 16, 16))[-1].output_shape == (1, 128, 8, 8)
    assert "downsample.0.weight" in param_specs(block)
    with pytest.raises(SpecError, match="num_classes must be >= 0"):
        models.resnet18(num_classes=-1)


def test_taps_naming_no_node_are_refused():
    with pytest.raises(SpecError, match=r"no node 'layer5' to tap or cut at .*layer4"):
        feature_extractor(models.resnet18(), {"layer5": "c6"})
    with pytest.raises(SpecError, match=r"no node 'layer1.9' to tap or cut at"):
        truncate(models.resnet18(), "layer1.9")
    with pytest.raises(SpecError, match="cannot cut or tap inside a Residual"):
        feature_extractor(models.resnet18(), ["layer1.0.conv1"])
    with pytest.raises(SpecError, match="no node 'nope' on the way to 'layer1.nope'"):
        sub_spec(models.resnet18(), "layer1.nope")
