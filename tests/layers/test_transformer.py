"""Transformer layers (``xinit.transformer``): graphs of xinit layers named as PyTorch names
its children. The torch build has ``nn.TransformerEncoderLayer``'s / ``DecoderLayer``'s
state-dict keys (batch first), the paddle build Paddle's; native weights give native outputs
with masks (eval mode, dropout off); transfer is exact between all pairs; a policy applied to
a native layer reaches every parameter, as it does in the xinit build."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import FRAMEWORKS, assert_transfers_exact, require_backend, require_backends
from stats_helpers import case_seed

import xinit
from xinit.blocks import infer, num_params
from xinit.init import Normal, Ones, XavierUniform, Zeros
from xinit.layers import LayerNorm, SpecError
from xinit.native import neutral_values
from xinit.policy import Policy, Rule
from xinit.state import state_dict, transfer
from xinit.transformer import (
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)

D, H, FF = 16, 4, 24  # d_model, heads, feed-forward width
N, L, S = 2, 5, 7  # batch, target length, memory length
EPS32 = float(np.finfo(np.float32).eps)
ENCODERS = [(nf, act) for nf in (False, True) for act in ("relu", "gelu")]
IDS = [f"{'pre' if nf else 'post'}-{act}" for nf, act in ENCODERS]


def tol(want: np.ndarray, s_len: int, blocks: int = 1) -> float:
    """The absolute tolerance between two frameworks' transformer outputs: each block chains
    float32 sums computed in each framework's own order: the attention's projections, scores
    and weighted sum (2·D + S terms, once more for a decoder's cross-attention), the
    feed-forward (D + FF terms) and each LayerNorm's mean and variance (2·D terms, up to
    three). A sum of n terms is off by at most n ulps of the summed magnitudes; with O(1)
    inputs and weights <= 0.5 those stay within a small multiple of max|y| (the LayerNorms
    keep activations O(1)): 4 ulps per term of the chain, per block. A wrong residual, norm
    placement or mask is off by O(max|y|)."""
    terms = blocks * (2 * (2 * D + s_len) + D + FF + 3 * 2 * D)
    return 4 * EPS32 * terms * max(1.0, float(np.abs(want).max()))


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _masks(length, s_len, seed):
    """A bool attention mask (length, s_len) and a key padding mask (N, s_len), PyTorch's
    meaning (True: masked out); key 0 always open, so no row is fully masked."""
    rng = np.random.default_rng(seed)
    attn = rng.random((length, s_len)) < 0.3
    attn[:, 0] = False
    pad = np.zeros((N, s_len), bool)
    pad[-1, s_len - 2 :] = True
    return attn, pad


def _paddle_keep(attn, pad):
    """The same positions in Paddle's convention: one bool mask [N, 1, L, S], True KEEPS."""
    blocked = np.zeros((N, 1, *attn.shape), bool) | attn[None, None]
    if pad is not None:
        blocked |= pad[:, None, None, :]
    return ~blocked


def _randomize(backend, module, seed):
    """Random weights (U(-0.5, 0.5)) and LayerNorm affines in a native module, so a
    transfer moves something other than the defaults."""
    rng = np.random.default_rng(seed)
    if backend == "torch":
        import torch

        with torch.no_grad():
            for p in module.parameters():
                p.copy_(torch.from_numpy(rng.uniform(-0.5, 0.5, p.shape).astype(np.float32)))
        module.eval()
    else:
        for p in module.parameters():
            p.set_value(rng.uniform(-0.5, 0.5, p.shape).astype(np.float32))
        module.eval()
    return module


def _torch_encoder(norm_first, activation, bias=True):
    import torch

    m = torch.nn.TransformerEncoderLayer(
        D, H, FF, activation=activation, norm_first=norm_first, bias=bias, batch_first=True
    )
    return _randomize("torch", m, case_seed("enc", norm_first, activation, bias))


def _torch_decoder(norm_first, activation):
    import torch

    m = torch.nn.TransformerDecoderLayer(
        D, H, FF, activation=activation, norm_first=norm_first, batch_first=True
    )
    return _randomize("torch", m, case_seed("dec", norm_first, activation))


def _shapes(module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


# ---- names and shapes --------------------------------------------------------------------
@pytest.mark.parametrize("norm_first, activation", ENCODERS, ids=IDS)
def test_encoder_keys_are_torchs_and_paddles(norm_first, activation):
    """The torch build has exactly nn.TransformerEncoderLayer's state-dict keys, in order,
    and shapes; the paddle build paddle.nn.TransformerEncoderLayer's (normalize_before)."""
    spec = TransformerEncoderLayer(D, H, FF, activation=activation, norm_first=norm_first)
    require_backend("torch")
    native = _torch_encoder(norm_first, activation)
    built = xinit.build(spec, "torch", seed=0)
    assert list(built.state_dict()) == list(native.state_dict())
    assert _shapes(built) == _shapes(native)
    require_backend("paddle")
    import paddle

    pn = paddle.nn.TransformerEncoderLayer(
        D, H, FF, activation=activation, normalize_before=norm_first
    )
    pb = xinit.build(spec, "paddle", seed=0)
    assert list(pb.state_dict()) == list(pn.state_dict())
    assert _shapes(pb) == _shapes(pn)


def test_encoder_without_bias_has_torchs_keys():
    require_backend("torch")
    spec = TransformerEncoderLayer(D, H, FF, bias=False)
    native = _torch_encoder(False, "relu", bias=False)
    assert _shapes(xinit.build(spec, "torch", seed=0)) == _shapes(native)
    assert not any(k.endswith("bias") for k in native.state_dict())


def test_decoder_keys_are_torchs_and_paddles():
    """Decoder: torch's ``multihead_attn``; with ``cross_attn_name="cross_attn"`` Paddle's."""
    require_backends("torch", "paddle")
    import paddle

    torch_native = _torch_decoder(False, "relu")
    built = xinit.build(TransformerDecoderLayer(D, H, FF), "torch", seed=0)
    assert list(built.state_dict()) == list(torch_native.state_dict())
    assert _shapes(built) == _shapes(torch_native)
    pn = paddle.nn.TransformerDecoderLayer(D, H, FF, normalize_before=True)
    spec = TransformerDecoderLayer(D, H, FF, norm_first=True, cross_attn_name="cross_attn")
    pb = xinit.build(spec, "paddle", seed=0)
    assert list(pb.state_dict()) == list(pn.state_dict())
    assert _shapes(pb) == _shapes(pn)


@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_every_framework_holds_the_same_neutral_parameters(backend):
    """Every build reads back as torch's names and shapes; Flax's LinearGeneral and Linear
    kernels are the neutral ones transposed (and split by head)."""
    require_backends("torch", backend)
    spec = TransformerDecoderLayer(D, H, FF, tgt_mask=True)
    native = _torch_decoder(True, "gelu")
    state = state_dict(xinit.build(spec, backend, seed=1))
    assert {k: v.shape for k, v in state.items()} == _shapes(native)


# ---- native weights give native outputs --------------------------------------------------
@pytest.mark.parametrize("norm_first, activation", ENCODERS, ids=IDS)
@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_torch_encoder_weights_give_torchs_outputs(backend, norm_first, activation):
    """nn.TransformerEncoderLayer's weights transferred into each framework's build give
    its eval-mode output with a bool src_mask and a key padding mask."""
    require_backends("torch", backend)
    import torch

    native = _torch_encoder(norm_first, activation)
    spec = TransformerEncoderLayer(
        D,
        H,
        FF,
        activation=activation,
        norm_first=norm_first,
        src_mask=True,
        src_key_padding_mask=True,
    )
    built = xinit.build(spec, backend, seed=0)
    transfer(native, built)
    x = rand(N, L, D, seed=3)
    attn, pad = _masks(L, L, seed=4)
    with torch.no_grad():
        t = torch.from_numpy
        want = native(t(x), src_mask=t(attn), src_key_padding_mask=t(pad)).numpy()
    got = xinit.run(built, (x, attn, pad))
    np.testing.assert_allclose(got, want, rtol=0, atol=tol(want, L))


@pytest.mark.parametrize("norm_first, activation", ENCODERS, ids=IDS)
@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_paddle_encoder_weights_give_paddles_outputs(backend, norm_first, activation):
    """paddle.nn.TransformerEncoderLayer's weights (q/k/v Linears stored (in, out)) give its
    output in every framework; Paddle gets the masks as its one keep-mask."""
    require_backends("paddle", backend)
    import paddle

    native = paddle.nn.TransformerEncoderLayer(
        D, H, FF, activation=activation, normalize_before=norm_first
    )
    _randomize("paddle", native, case_seed("penc", norm_first, activation))
    spec = TransformerEncoderLayer(
        D,
        H,
        FF,
        activation=activation,
        norm_first=norm_first,
        src_mask=True,
        src_key_padding_mask=True,
    )
    built = xinit.build(spec, backend, seed=0)
    transfer(native, built)
    x = rand(N, L, D, seed=5)
    attn, pad = _masks(L, L, seed=6)
    want = native(paddle.to_tensor(x), paddle.to_tensor(_paddle_keep(attn, pad))).numpy()
    got = xinit.run(built, (x, attn, pad))
    np.testing.assert_allclose(got, want, rtol=0, atol=tol(want, L))


@pytest.mark.parametrize("norm_first", [False, True], ids=["post", "pre"])
@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_torch_decoder_weights_give_torchs_outputs(backend, norm_first):
    """nn.TransformerDecoderLayer: (tgt, memory) through the multi-input graph, a float
    causal tgt_mask and a memory key padding mask; and the causal option gives the same."""
    require_backends("torch", backend)
    import torch

    native = _torch_decoder(norm_first, "gelu")
    tgt, memory = rand(N, L, D, seed=7), rand(N, S, D, seed=8)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(L)  # float, -inf above
    _, pad = _masks(L, S, seed=9)
    with torch.no_grad():
        t = torch.from_numpy
        want = native(t(tgt), t(memory), tgt_mask=causal, memory_key_padding_mask=t(pad)).numpy()
    common = dict(activation="gelu", norm_first=norm_first, memory_key_padding_mask=True)
    with_mask = TransformerDecoderLayer(D, H, FF, tgt_mask=True, **common)
    built = xinit.build(with_mask, backend, seed=0)
    transfer(native, built)
    got = xinit.run(built, (tgt, memory, causal.numpy(), pad))
    np.testing.assert_allclose(got, want, rtol=0, atol=tol(want, S))
    is_causal = TransformerDecoderLayer(D, H, FF, tgt_is_causal=True, **common)
    built = xinit.build(is_causal, backend, seed=0)
    transfer(native, built)
    got = xinit.run(built, (tgt, memory, pad))
    np.testing.assert_allclose(got, want, rtol=0, atol=tol(want, S))


@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_paddle_decoder_weights_give_paddles_outputs(backend):
    """paddle.nn.TransformerDecoderLayer (pre-norm, ``cross_attn``): into a build named as
    PyTorch (``multihead_attn``) through a name map, its output in every framework."""
    require_backends("paddle", backend)
    import paddle

    native = paddle.nn.TransformerDecoderLayer(D, H, FF, normalize_before=True)
    _randomize("paddle", native, case_seed("pdec"))
    spec = TransformerDecoderLayer(D, H, FF, norm_first=True, tgt_mask=True, memory_mask=True)
    built = xinit.build(spec, backend, seed=0)
    report = transfer(native, built, name_map={"cross_attn.": "multihead_attn."})
    assert len(report.renamed) == 4 and len(report.loaded) == len(state_dict(built))
    tgt, memory = rand(N, L, D, seed=10), rand(N, S, D, seed=11)
    tgt_mask, _ = _masks(L, L, seed=12)
    memory_mask, _ = _masks(L, S, seed=13)
    t = paddle.to_tensor
    keep = (~tgt_mask)[None, None], (~memory_mask)[None, None]
    want = native(t(tgt), t(memory), t(keep[0]), t(keep[1])).numpy()
    got = xinit.run(built, (tgt, memory, tgt_mask, memory_mask))
    np.testing.assert_allclose(got, want, rtol=0, atol=tol(want, S))


@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_stacks_give_torchs_outputs(backend):
    """TransformerEncoder/Decoder: ``layers.N`` and ``norm`` as torch names them, each layer
    fed the same masks; 2 layers each, the output of torch's own stacks."""
    require_backends("torch", backend)
    import torch

    enc_layer = TransformerEncoderLayer(D, H, FF, src_key_padding_mask=True)
    enc = TransformerEncoder(enc_layer, 2, norm=LayerNorm(D))
    native = torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(D, H, FF, batch_first=True),
        2,
        norm=torch.nn.LayerNorm(D),
        enable_nested_tensor=False,
    )
    _randomize("torch", native, case_seed("enc-stack"))
    built = xinit.build(enc, backend, seed=0)
    transfer(native, built)
    x = rand(N, L, D, seed=14)
    _, pad = _masks(L, L, seed=15)
    with torch.no_grad():
        want = native(torch.from_numpy(x), src_key_padding_mask=torch.from_numpy(pad)).numpy()
    got = xinit.run(built, (x, pad))
    np.testing.assert_allclose(got, want, rtol=0, atol=tol(want, L, blocks=2))
    if backend == "torch":
        assert list(built.state_dict()) == list(native.state_dict())

    dec = TransformerDecoder(TransformerDecoderLayer(D, H, FF, tgt_is_causal=True), 2)
    native = torch.nn.TransformerDecoder(
        torch.nn.TransformerDecoderLayer(D, H, FF, batch_first=True), 2
    )
    _randomize("torch", native, case_seed("dec-stack"))
    built = xinit.build(dec, backend, seed=0)
    transfer(native, built)
    tgt, memory = rand(N, L, D, seed=16), rand(N, S, D, seed=17)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(L)
    with torch.no_grad():
        want = native(torch.from_numpy(tgt), torch.from_numpy(memory), tgt_mask=causal).numpy()
    got = xinit.run(built, (tgt, memory))
    np.testing.assert_allclose(got, want, rtol=0, atol=tol(want, S, blocks=2))


def test_paddle_stack_keys():
    require_backend("paddle")
    import paddle

    native = paddle.nn.TransformerEncoder(
        paddle.nn.TransformerEncoderLayer(D, H, FF), 3, norm=paddle.nn.LayerNorm(D)
    )
    spec = TransformerEncoder(TransformerEncoderLayer(D, H, FF), 3, norm=LayerNorm(D))
    built = xinit.build(spec, "paddle", seed=0)
    assert list(built.state_dict()) == list(native.state_dict())
    assert _shapes(built) == _shapes(native)


# ---- across frameworks ---------------------------------------------------------------------
def test_transfer_exact_between_all_pairs_and_parity_node_by_node():
    """rng="xinit" builds are equal everywhere; transfer between every pair is exact; parity
    compares every node of the decoder on its four inputs, the block itself named."""
    require_backends(*FRAMEWORKS)
    spec = TransformerDecoderLayer(
        D, H, FF, activation="gelu", norm_first=True, tgt_mask=True, memory_key_padding_mask=True
    )
    mods = {b: xinit.build(spec, b, seed=2, rng="xinit") for b in FRAMEWORKS}
    ref = state_dict(mods["torch"])
    assert_transfers_exact(spec, mods, ref)
    tgt_mask, _ = _masks(L, L, seed=18)
    _, pad = _masks(L, S, seed=19)
    report = xinit.parity(mods, (rand(N, L, D, seed=20), rand(N, S, D, seed=21), tgt_mask, pad))
    assert report.ok, str(report.first_divergent)
    kinds = {r.path: r.kind for r in report.rows}
    assert kinds["self_attn"] == kinds["multihead_attn"] == "multihead_attention"
    assert kinds["norm3"] == "layernorm" and kinds[""] == "transformer_decoder_layer"
    assert [r.path for r in report.rows][:4] == ["norm1", "self_attn", "dropout1", "residual1"]


def test_summary_names_the_block_and_counts_torchs_parameters():
    require_backend("torch")
    import torch

    spec = TransformerEncoder(TransformerEncoderLayer(D, H, FF), 2, norm=LayerNorm(D))
    s = xinit.summary(spec, (N, L, D))
    rows = {r.path: r for r in s.rows}
    assert rows["layers.1"].kind == "transformer_encoder_layer" and rows["layers.1"].params == 0
    assert rows[""].kind == "transformer_encoder" and rows[""].output_shape == (N, L, D)
    native = torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(D, H, FF, batch_first=True), 2, norm=torch.nn.LayerNorm(D)
    )
    count = sum(p.numel() for p in native.parameters())
    assert s.total_params == sum(r.params for r in s.rows) == num_params(spec) == count


# ---- policies on native layers -------------------------------------------------------------
POLICY = Policy(
    [
        Rule(
            XavierUniform(), kind="multihead_attention", param=("in_proj_weight", "out_proj.weight")
        ),
        Rule(Zeros(), kind="multihead_attention", param=("in_proj_bias", "out_proj.bias")),
        Rule(Normal(0.0, 0.02), kind="linear", bias=Zeros()),
        Rule(Ones(), kind="layernorm", bias=Zeros()),
    ]
)


@pytest.mark.parametrize("backend", ["torch", "paddle"])
def test_policy_on_a_native_layer_reaches_every_parameter(backend):
    """``xinit.apply`` on the framework's own TransformerEncoderLayer and DecoderLayer
    matches every parameter (torch's packed in_proj_weight/in_proj_bias too: the issue saw
    them unmatched), and with rng="xinit" gives the values the xinit build gets from the
    same policy, torch's and Paddle's alike."""
    require_backend(backend)
    if backend == "torch":
        import torch

        layers = {
            "encoder": torch.nn.TransformerEncoderLayer(D, H, FF, batch_first=True),
            "decoder": torch.nn.TransformerDecoderLayer(D, H, FF, batch_first=True),
        }
    else:
        import paddle

        layers = {
            "encoder": paddle.nn.TransformerEncoderLayer(D, H, FF),
            "decoder": paddle.nn.TransformerDecoderLayer(D, H, FF),
        }
    specs = {
        "encoder": TransformerEncoderLayer(D, H, FF),
        "decoder": TransformerDecoderLayer(
            D, H, FF, cross_attn_name="cross_attn" if backend == "paddle" else "multihead_attn"
        ),
    }
    for name, native in layers.items():
        report = xinit.apply(POLICY, native, seed=3, rng="xinit", strict=True)
        statuses = {e.path: e.status for e in report.entries}
        assert set(statuses.values()) == {"initialized"}, statuses
        assert "self_attn.in_proj_weight" in statuses and "self_attn.in_proj_bias" in statuses
        built = state_dict(xinit.build(specs[name], backend, seed=3, rng="xinit", policy=POLICY))
        values = neutral_values(native)
        assert values.keys() == built.keys()
        for k, v in values.items():
            np.testing.assert_array_equal(v, built[k], err_msg=f"{backend} {name} {k}")


# ---- bad input -----------------------------------------------------------------------------
def test_bad_transformer_specs_name_the_node_and_shapes():
    enc = TransformerEncoder(TransformerEncoderLayer(D, H, FF, src_mask=True), 2)
    assert infer(enc, ((N, L, D), (L, L)))[-1].output_shape == (N, L, D)
    with pytest.raises(
        SpecError, match=r"layers\.0\.self_attn: .*attn_mask must be .*\(5, 5\).*got \(5, 4\)"
    ):
        infer(enc, ((N, L, D), (L, L - 1)))
    dec = TransformerDecoderLayer(D, H, FF)
    with pytest.raises(
        SpecError, match=r"multihead_attn: .*\(N, S, kdim=16\) key; got shape \(2, 7, 12\)"
    ):
        infer(dec, ((N, L, D), (N, S, 12)))
    with pytest.raises(SpecError, match=r"d_model 10 is not divisible by nhead 4"):
        TransformerEncoderLayer(10, 4)
    with pytest.raises(SpecError, match=r"activation must be one of \(.*'gelu'.*'relu'.*\)"):
        TransformerEncoderLayer(D, H, activation="swish")
    with pytest.raises(SpecError, match=r"num_layers must be a positive int; got 0"):
        TransformerEncoder(TransformerEncoderLayer(D, H), 0)
    with pytest.raises(SpecError, match=r"dropout must be in \[0, 1\)"):
        TransformerDecoderLayer(D, H, dropout=1.0)
