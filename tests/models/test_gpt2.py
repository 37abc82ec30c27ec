"""The GPT-2 zoo model: Hugging Face ``GPT2Model``'s names, order and counts; an HF state dict
loads strictly into the ``conv1d=True`` torch build and gives HF's hidden states; ported by
kind into the plain-Linear build of every framework it gives them too; the three frameworks
agree layer by layer; a ~1B configuration builds on torch's meta device.

``transformers`` is not installed here: the reference is ``reference_models.torch_gpt2``,
HF's ``modeling_gpt2.py`` retyped (Conv1D with ``addmm``, eager causal attention with the
``finfo.min`` mask, ``NewGELUActivation``, ``_init_weights``)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import FRAMEWORKS, installed, require_backend, require_backends

import xinit
from xinit.blocks import num_params, output_shape, param_specs
from xinit.layers import SpecError
from xinit.state import state_dict, transfer

TINY = dict(n_layer=2, n_head=4, n_embd=32, vocab_size=97, n_positions=64)

# float32: each hidden state is a few sums of <= 128 products, two softmaxes over <= 11
# tokens and five LayerNorms; HF's addmm / explicit softmax and xinit's matmul / sdpa round
# differently (measured < 1e-6 relative on O(1) values). rtol 1e-5 is 10x that; a
# transposed Conv1D weight or a misplaced head is off by O(1).
RTOL, ATOL = 1e-5, 1e-6


def ids(n=2, length=11, seed=0, vocab=97):
    return np.random.default_rng(seed).integers(0, vocab, (n, length)).astype(np.int64)


def hf_reference(seed=0):
    torch = require_backend("torch") and __import__("torch")
    from reference_models import torch_gpt2

    torch.manual_seed(seed)
    return torch_gpt2(**TINY).eval()


def hf_outputs(ref, x):
    import torch

    with torch.no_grad():
        return ref(torch.from_numpy(x)).numpy()


def test_gpt2_small_names_shapes_order_and_count():
    """GPT-2 small: HF's published 124,439,808 parameters; with ``conv1d=True`` HF's exact
    keys, shapes (Conv1D weights (in, out)) and order, built on the meta device."""
    torch = require_backend("torch") and __import__("torch")
    from reference_models import torch_gpt2

    spec = xinit.models.gpt2(conv1d=True)
    assert num_params(spec) == 124_439_808
    with torch.device("meta"):
        ref = torch_gpt2(12, 12, 768, 50257, 1024)
    want = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    built = xinit.build(spec, "torch", device="meta")
    assert list(built.state_dict()) == list(want) == list(param_specs(spec))
    assert {k: tuple(v.shape) for k, v in built.state_dict().items()} == want
    assert want["h.0.attn.c_attn.weight"] == (768, 2304)  # HF's Conv1D: (in, out)
    plain = xinit.build(xinit.models.gpt2(), "torch", device="meta")
    assert tuple(plain.state_dict()["h.0.attn.c_attn.weight"].shape) == (2304, 768)
    assert param_specs(spec)["h.0.attn.c_attn.weight"].shape == (2304, 768)  # neutral


def test_an_hf_state_dict_loads_strictly_and_gives_hfs_hidden_states():
    ref = hf_reference()
    spec = xinit.models.gpt2(**TINY, conv1d=True)
    built = xinit.build(spec, "torch", seed=1)
    result = built.load_state_dict(ref.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    x = ids()
    np.testing.assert_allclose(xinit.run(built, x), hf_outputs(ref, x), rtol=RTOL, atol=ATOL)
    # layer by layer (a batch of 1: HF's wpe output is (1, L, E), broadcast in the add)
    report = xinit.parity({"hf": ref, "xinit": built}, ids(n=1))
    assert report.ok, str(report.first_divergent)
    assert {"wte", "wpe", "h.1.attn.c_attn", "h.1.mlp.c_proj", "ln_f"} <= {
        r.path for r in report.rows
    }


@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_hf_weights_ported_by_kind_give_hfs_hidden_states(backend):
    """The HF checkpoint read through the ``conv1d`` map is neutral (out, in); loaded into
    the plain-Linear build of any framework it gives HF's outputs (the square c_proj too)."""
    require_backend(backend)
    ref = hf_reference(seed=1)
    ckpt = {k: v.numpy() for k, v in ref.state_dict().items()}
    neutral = xinit.port(ckpt, xinit.models.gpt2(**TINY, conv1d=True), src="torch", dst="neutral")
    np.testing.assert_array_equal(
        neutral["h.0.attn.c_proj.weight"], ckpt["h.0.attn.c_proj.weight"].T
    )
    built = xinit.build(xinit.models.gpt2(**TINY), backend, seed=2)
    xinit.load_state_dict(built, dict(neutral))
    x = ids(seed=4)
    rtol = 1e-4 if backend == "flax" else RTOL  # XLA's reductions: flax's PARITY_RTOL
    np.testing.assert_allclose(
        np.asarray(xinit.run(built, x)), hf_outputs(ref, x), rtol=rtol, atol=ATOL
    )


def test_tiny_gpt2_parity_over_three_frameworks():
    require_backends(*FRAMEWORKS)
    spec = xinit.models.gpt2(**TINY)
    mods = {b: xinit.build(spec, b, seed=3, rng="xinit") for b in FRAMEWORKS}
    report = xinit.parity(mods, ids(seed=5))
    assert report.ok, str(report.first_divergent)
    assert "h.0.attn.sdpa" in {r.path for r in report.rows}
    ref = state_dict(mods["torch"])
    for src, dst in (("flax", "paddle"), ("paddle", "torch"), ("torch", "flax")):
        other = xinit.build(spec, dst, seed=9)
        transfer(mods[src], other)
        for k, v in state_dict(other).items():
            np.testing.assert_array_equal(v, ref[k], err_msg=f"{src}->{dst} {k}")
    conv = xinit.build(xinit.models.gpt2(**TINY, conv1d=True), "torch", seed=0)
    transfer(mods["flax"], conv)  # by kind: flax (in, out) kernels -> HF's Conv1D (in, out)
    np.testing.assert_allclose(
        xinit.run(conv, ids(seed=6)), xinit.run(mods["torch"], ids(seed=6)), rtol=RTOL, atol=ATOL
    )


def test_causal_in_every_framework():
    """Changing token 7 changes no hidden state before position 7."""
    spec = xinit.models.gpt2(**TINY)
    x = ids(n=1, seed=7)
    y = x.copy()
    y[0, 7] = (y[0, 7] + 1) % 97
    for backend in installed():
        m = xinit.build(spec, backend, seed=0, rng="xinit")
        a, b = np.asarray(xinit.run(m, x)), np.asarray(xinit.run(m, y))
        np.testing.assert_array_equal(a[0, :7], b[0, :7], err_msg=backend)
        assert np.abs(a[0, 7:] - b[0, 7:]).max() > 1e-3, backend


def test_one_billion_configuration_builds_on_meta():
    torch = require_backend("torch") and __import__("torch")
    spec = xinit.models.gpt2_1b()
    assert num_params(spec) == 1_017_302_272
    assert output_shape(spec, (2, 1024)) == (2, 1024, 1792)
    m = xinit.build(spec, "torch", device="meta")
    assert sum(p.numel() for p in m.parameters()) == 1_017_302_272
    assert all(p.device == torch.device("meta") for p in m.parameters())
    assert len(m.h) == 24


def test_head_and_bad_input():
    spec = xinit.models.gpt2(**TINY, lm_head=True)
    assert output_shape(spec, (2, 5)) == (2, 5, 97)
    assert param_specs(spec)["lm_head.weight"].shape == (97, 32)
    assert "lm_head.bias" not in param_specs(spec)
    with pytest.raises(SpecError, match=r"position_ids: PositionIds: 65 tokens exceed the 64"):
        output_shape(xinit.models.gpt2(**TINY), (1, 65))
    with pytest.raises(SpecError, match=r"n_embd 30 is not divisible by n_head 4"):
        xinit.models.gpt2(n_embd=30, n_head=4)


def test_cli_parity_feeds_token_ids(capsys):
    """``xinit parity gpt2`` draws token ids (its first layer is an embedding), not floats."""
    require_backends("torch", "paddle")
    from xinit.cli import main

    args = "n_layer=1,n_embd=16,n_head=2,vocab_size=50,n_positions=16"
    code = main(["parity", "gpt2", "--model-args", args, "--backends", "torch,paddle"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASS" in out and "h.0.attn.sdpa" in out


@pytest.mark.parametrize("model", ["gpt2", "vit"])
def test_meta_build_then_to_empty_then_apply_is_the_build(model):
    """The sharded recipe's steps on one process: the structure on the meta device,
    ``to_empty``, then ``xinit.apply(preset, rng="xinit")`` gives every parameter the value
    ``xinit.build`` gives it (learned-parameter nodes included), and the same outputs."""
    torch = require_backend("torch") and __import__("torch")
    from xinit.models.vit import vision_transformer

    if model == "gpt2":
        spec, policy, x = xinit.models.gpt2(**TINY), xinit.presets.gpt2(n_layer=2), ids()
    else:
        spec = vision_transformer(32, 2, 2, img_size=16, patch_size=8, num_classes=5)
        conv = xinit.policy.Rule(xinit.init.XavierUniform(), kind="conv", bias=0.0)
        policy = xinit.presets.vit_timm() + conv  # the patch conv too: every parameter set
        x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    meta = xinit.build(spec, "torch", device="meta")
    meta.to_empty(device="cpu")
    report = xinit.apply(policy, meta, seed=11, rng="xinit", strict=True)
    assert len(report.initialized) == len(param_specs(spec))
    built = xinit.build(spec, "torch", seed=11, rng="xinit", policy=policy)
    want = state_dict(built)
    for k, v in state_dict(meta).items():
        np.testing.assert_array_equal(v, want[k], err_msg=k)
    with torch.no_grad():
        np.testing.assert_array_equal(xinit.run(meta, x), xinit.run(built, x))
