"""The defaults catalogue's formulas, names and records, with no framework installed: each
framework's law for each layer as its lowerings state it (``Lowering.default_rule``)."""

from __future__ import annotations

import json
import math

import pytest

from xinit import defaults as D
from xinit import layers as L
from xinit.distributions import (
    ConstantDist,
    NormalDist,
    OrthogonalDist,
    TruncNormalDist,
    UniformDist,
)


def test_catalogue_formulas():
    def std(fw, d, param="weight"):
        return D.default_entry(fw, d, param).std

    conv = D.layer_spec("conv2d", 64, 128, 3, groups=4)
    fi = 16 * 9
    assert std("torch", conv) == pytest.approx(1 / math.sqrt(3 * fi))
    assert std("torch", conv, "bias") == pytest.approx(1 / math.sqrt(3 * fi))
    assert isinstance(D.default_entry("torch", conv, "weight").distribution, UniformDist)
    paddle_w = D.default_entry("paddle", conv, "weight").distribution
    assert isinstance(paddle_w, NormalDist)
    assert paddle_w.sigma == pytest.approx(math.sqrt(2 / (64 * 9)))  # full C_in, groups ignored
    flax_w = D.default_entry("flax", conv, "weight").distribution
    assert isinstance(flax_w, TruncNormalDist)
    assert flax_w.std == pytest.approx(1 / math.sqrt(fi))
    assert flax_w.high == pytest.approx(2 * flax_w.sigma)
    for fw in ("paddle", "flax"):
        assert D.default_entry(fw, conv, "bias").distribution == ConstantDist(0.0)

    convt = D.layer_spec("conv_transpose2d", 64, 32, 3)
    assert std("torch", convt) == pytest.approx(1 / math.sqrt(3 * 32 * 9))  # C_out as fan_in
    assert std("flax", convt) == pytest.approx(1 / math.sqrt(64 * 9))  # C_in as fan_in
    assert std("paddle", convt) == pytest.approx(math.sqrt(2 / (9 * (64 + 32))))
    assert D.default_entry(
        "flax", D.layer_spec("conv_transpose2d", 64, 32, 3, groups=2), "weight"
    ).note

    lin = D.layer_spec("linear", 1024, 512)
    assert std("torch", lin) == pytest.approx(1 / math.sqrt(3 * 1024))
    assert std("paddle", lin) == pytest.approx(math.sqrt(2 / 1536))
    assert D.default_entry("paddle", lin, "weight").native_shape == (1024, 512)
    assert std("flax", lin) == pytest.approx(1 / 32)

    emb = D.layer_spec("embedding", 1000, 64)
    assert std("torch", emb) == 1.0
    assert std("paddle", emb) == pytest.approx(math.sqrt(2 / 1064))
    assert std("flax", emb) == pytest.approx(1 / 8)
    assert isinstance(D.default_entry("flax", emb, "weight").distribution, NormalDist)

    assert [e.param for e in D.catalogue("batchnorm", 8) if e.framework == "torch"] == [
        "weight",
        "bias",
        "running_mean",
        "running_var",
        "num_batches_tracked",
    ]
    assert (
        D.default_entry("paddle", D.layer_spec("bn", 8), "running_var").native_name == "_variance"
    )
    assert D.default_entry("flax", D.layer_spec("ln", 8), "weight").native_name == "scale"

    # attention: which fans each framework's init sees (Xavier: std = √(2/(fan_in+fan_out)))
    e, h = 512, 8
    mha = D.layer_spec("multihead_attention", e, heads=h)
    assert std("torch", mha, "in_proj_weight") == pytest.approx(math.sqrt(2 / (e + 3 * e)))
    assert std("paddle", mha, "in_proj_weight") == pytest.approx(math.sqrt(2 / (e + e)))
    assert std("flax", mha, "in_proj_weight") == pytest.approx(1 / math.sqrt(e))
    assert std("torch", mha, "out_proj.weight") == pytest.approx(1 / math.sqrt(3 * e))
    assert std("paddle", mha, "out_proj.weight") == pytest.approx(math.sqrt(2 / (e + e)))
    assert std("flax", mha, "out_proj.weight") == pytest.approx(1 / math.sqrt(e))
    for fw in D.FRAMEWORKS:
        for p in ("in_proj_bias", "out_proj.bias"):
            assert D.default_entry(fw, mha, p).distribution == ConstantDist(0.0), (fw, p)
    q = {fw: D.default_entry(fw, mha, "in_proj_weight") for fw in D.FRAMEWORKS}
    assert q["torch"].leaves == (("in_proj_weight", (3 * e, e)),)
    assert q["paddle"].native_names == ("q_proj.weight", "k_proj.weight", "v_proj.weight")
    assert q["paddle"].native_shape == (e, e)
    assert q["flax"].native_name == "{query,key,value}.kernel"
    assert q["flax"].native_shape == (e, h, e // h)
    assert D.default_entry("flax", mha, "out_proj.weight").native_shape == (h, e // h, e)

    rms = D.layer_spec("rmsnorm", 16)
    assert D.default_entry("torch", rms, "weight").distribution == ConstantDist(1.0)
    assert D.default_entry("flax", rms, "weight").native_name == "scale"
    assert not D.default_entry("paddle", rms, "weight").supported
    assert "no RMSNorm" in D.default_entry("paddle", rms, "weight").note


def test_catalogue_accepts_specs_and_rejects_bad_input():
    spec = L.Conv(64, 128, 3, groups=4)
    assert D.catalogue(spec) == D.catalogue("conv2d", 64, 128, 3, groups=4)
    assert D.layer_name(L.ConvTranspose2d(8, 4, 3)) == "conv_transpose2d"
    assert D.layer_spec("embedding", 10, 4) == L.Embedding(10, 4)
    assert D.as_spec({"layer": "linear", "in_features": 3, "out_features": 5}) == L.Linear(3, 5)
    assert D.layer_spec("depthwise_conv2d", 32, 64, 3).groups == 32
    assert D.default_init("flax", "embedding", "weight", D.layer_spec("embed", 10, 16)).std == 0.25
    mha = D.layer_spec("multihead_attention", 64, heads=8)
    assert mha == L.MultiheadAttention(64, 8)
    assert D.layer_spec("rmsnorm", 16) == L.RMSNorm(16)
    assert D.layer_numbers(L.LayerNorm((4, 8))) == D.layer_numbers(D.layer_spec("ln", 32))
    assert D.describe(L.LayerNorm((4, 8))) == "layernorm(32)"
    for name in ("mha", "attention", "MultiHeadAttention", "multi-head attention"):
        assert D.layer_spec(name, 64, heads=8) == mha, name
    assert D.layer_spec("mha", 32, 64, heads=8).embed_dim == 64  # one count: the out features
    assert D.layer_name(D.layer_spec("LayerNorm", 8)) == "layernorm"
    assert D.layer_spec("linear", 8, 4, heads=8) == L.Linear(8, 4)  # heads: attention's only
    with pytest.raises(
        ValueError, match="unknown layer kind 'layernrom'; did you mean 'layernorm'"
    ):
        D.layer_spec("layernrom", 8)
    with pytest.raises(ValueError, match="embed_dim 64 is not divisible by num_heads 3"):
        D.layer_spec("mha", 64, heads=3)
    with pytest.raises(ValueError, match="linear has no groups"):
        D.layer_spec("linear", 8, 8, groups=2)
    with pytest.raises(ValueError, match="the catalogue has no relu layer"):
        D.catalogue(L.ReLU())
    with pytest.raises(ValueError, match="the catalogue takes an xinit layer spec"):
        D.catalogue(3.5)
    with pytest.raises(ValueError, match="groups=3 does not divide"):
        D.layer_spec("conv2d", 64, 128, 3, groups=3)
    with pytest.raises(ValueError, match="unknown framework 'keras'"):
        D.default_entry("keras", D.layer_spec("linear", 2, 2), "weight")
    with pytest.raises(ValueError, match="no parameter 'num_batches_tracked'"):
        D.default_entry("paddle", D.layer_spec("batchnorm", 4), "num_batches_tracked")
    grouped = D.layer_spec("conv_transpose2d", 4, 4, 3, 2)
    with pytest.raises(ValueError, match="no groups"):
        D.default_init("flax", "conv_transpose2d", "weight", grouped)
    with pytest.raises(ValueError, match="does not match the layer conv_transpose2d"):
        D.default_init("flax", "conv2d", "weight", grouped)


def test_records_are_json_with_the_required_keys():
    recs = D.records(D.catalogue("conv2d", 64, 128, 3), reference="torch")
    text = json.dumps(recs)
    assert len(json.loads(text)) == 6
    for r in recs:
        assert {"framework", "layer", "param", "distribution", "std"} <= set(r)
    paddle_w = next(r for r in recs if r["framework"] == "paddle" and r["param"] == "weight")
    assert paddle_w["ratio"] == pytest.approx(math.sqrt(2 / 576) * math.sqrt(3 * 576))
    assert paddle_w["law"] == {"type": "NormalDist", "mu": 0.0, "sigma": math.sqrt(2 / 576)}


def test_recurrent_catalogue_formulas():
    """The catalogue's LSTM/GRU rows: PyTorch's and Paddle's U(±1/√H) everywhere; Flax's
    lecun_normal input kernels (fan_in = in per gate), orthogonal recurrent kernels (per gate
    for LSTMCell, on the stacked (H, 3H) kernel for GRUCell) and the one bias it keeps."""
    lstm, gru = D.layer_spec("lstm", 64, 256), D.layer_spec("gru", 64, 256)
    for fw in ("torch", "paddle"):
        for d in (lstm, gru):
            assert D.params_of(fw, d) == (
                "weight_ih_l0",
                "weight_hh_l0",
                "bias_ih_l0",
                "bias_hh_l0",
            )
            for p in D.params_of(fw, d):
                assert D.default_entry(fw, d, p).std == pytest.approx(1 / 16 / math.sqrt(3))
    assert D.params_of("flax", lstm) == ("weight_ih_l0", "weight_hh_l0", "bias_hh_l0")
    assert D.params_of("flax", gru) == ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0")
    w_ih = D.default_entry("flax", lstm, "weight_ih_l0")
    assert w_ih.native_names == ("ii.kernel", "if_.kernel", "ig.kernel", "io.kernel")
    assert w_ih.native_shape == (64, 256) and w_ih.std == pytest.approx(1 / 8)
    w_hh = D.default_entry("flax", lstm, "weight_hh_l0")
    assert w_hh.distribution == OrthogonalDist(1.0, 4, 256) and w_hh.std == pytest.approx(1 / 16)
    g_hh = D.default_entry("flax", gru, "weight_hh_l0")
    assert (g_hh.native_name, g_hh.native_shape) == ("dense_h.kernel", (256, 768))
    assert g_hh.std == pytest.approx(1 / math.sqrt(768))  # unit columns of the (3H, H) tensor
    assert D.default_entry("paddle", lstm, "weight_ih_l0").native_name == "0.cell.weight_ih"
    deep, one = L.GRU(8, 4, num_layers=3), D.layer_spec("gru", 8, 4)
    assert D.layer_numbers(deep) == D.layer_numbers(one)  # rows: layer 0, one direction

    def laws(spec):
        return [(e.framework, e.param, e.leaves, e.distribution) for e in D.catalogue(spec)]

    assert laws(deep) == laws(one)
