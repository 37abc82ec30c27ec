"""The Flax code export of sequence models: ViT (learned tokens, layer norm, packed attention),
GPT-2 (embeddings, positions, causal attention), CRNN's bidirectional LSTM, GRU and RNN
stacks, PP-OCRv2's recogniser, and a torchvision ViT traced with ``xinit.trace``
(``nnx.MultiHeadAttention``). Each
file runs in a Python where xinit cannot be imported, holds exactly the state paths of
``xinit.build(spec, "flax")``, loads the build's values and gives its outputs within the
parity verdict (4x the float32 rounding of both sides, measured in float64);
``init_weights`` draws the spec's laws (KS and moments on every native tensor of each
parameter); the file is ruff-clean and byte-identical when exported again."""

from __future__ import annotations

import json

import numpy as np
import pytest
from export_code_helpers import (
    FLAX_LOAD_BUILD_STATE,
    Case,
    check_init_statistics,
    ruff_problems,
    run_isolated,
)
from helpers import require_backend

import xinit
from xinit import export_code
from xinit import layers as L
from xinit._parity_base import compare, rounding
from xinit.blocks import Sequential, layer_of
from xinit.codegen.structure import ExportError
from xinit.graph import Graph
from xinit.plan import init_plan

pytest.importorskip("flax")

GPT2 = {"n_layer": 2, "n_head": 4, "n_embd": 64, "vocab_size": 500, "n_positions": 64}
VIT = {"img_size": 32, "patch_size": 8, "num_classes": 10}


def _recurrent(kind: str, **fields):
    """A Linear, a stack of ``kind`` cells (PyTorch's fields) and a head, on (N, L, 6)."""
    cell = {"lstm": L.LSTM, "gru": L.GRU, "rnn": L.RNN}[kind](8, 16, **fields)
    width = 16 * (2 if fields.get("bidirectional") else 1)
    return Sequential(proj=L.Linear(6, 8), rnn=cell, head=L.Linear(width, 5))


class SpecCase(Case):
    """A case whose spec is given (not a zoo name)."""

    def __init__(self, name: str, spec, input_shape, **kw):
        super().__init__(name, name, input_shape, **kw)
        self._spec = spec

    @property
    def spec(self):
        return self._spec


GRU_STACK = _recurrent("gru", num_layers=2, bidirectional=True)
# A conv, a transposed conv with output_padding, groups and dilation (the file's ConvTranspose,
# flipped kernel), a bilinear upsample (the file's resize matrices); SVTR's local mixer: packed
# rows and a 3 x 3 window on a 4 x 4 grid (the file's local_window_mask).
DECONV = Sequential(
    conv=L.Conv(3, 8, 3, padding=1),
    up=L.ConvTranspose(8, 4, 3, stride=2, padding=1, output_padding=1, groups=2, dilation=1),
    up2=L.ConvTranspose(4, 4, 2, stride=2, bias=False),
    resize=L.Upsample(scale_factor=1.5, mode="bilinear"),
)
LOCAL = Sequential(
    qkv=L.Linear(8, 24),
    mixer=L.ScaledDotProductAttention(2, local_window=(3, 3), grid=(4, 4)),
    proj=L.Linear(8, 8),
)


def _block(std: float):
    from xinit.initializers import Normal

    conv = L.Conv(4, 4, 3, padding=1, weight_init=Normal(0.0, std), bias=False)
    return Sequential(conv=conv, act=L.ReLU())


# Blocks of one structure whose convs draw N(0, 0.1), N(0, 0.5), N(0, 0.1): one class taking
# its law as ``kernel_init=``.
PER_INSTANCE = Sequential(blocks=Sequential(_block(0.1), _block(0.5), _block(0.1)))
CASES = [
    Case("vit", "vit_tiny_patch16_224", (2, 3, 32, 32), kwargs=VIT, stats=True),
    SpecCase("per_instance_laws", PER_INSTANCE, (2, 4, 6, 6), stats=True),
    Case("crnn", "crnn", (2, 3, 32, 64), stats=True),
    Case("gpt2", "gpt2", (2, 16), kwargs=GPT2, stats=True, vocab=GPT2["vocab_size"]),
    # The policy's laws, not the spec's: GPT-2's c_proj at N(0, 0.02 / sqrt(2 n_layer)).
    Case("gpt2_policy", "gpt2", (1, 8), kwargs=GPT2, policy="gpt2", stats=True, vocab=500),
    SpecCase("gru", GRU_STACK, (2, 7, 6), stats=True),
    SpecCase("rnn_relu", _recurrent("rnn", nonlinearity="relu"), (2, 7, 6), stats=True),
    SpecCase("lstm3", _recurrent("lstm", num_layers=3), (2, 7, 6)),
    SpecCase("deconv", DECONV, (2, 3, 6, 5), stats=True),
    SpecCase("local_window", LOCAL, (2, 16, 8), stats=True),
]
# PP-OCRv2's recogniser (slow: 6625 classes, run op by op in float32 and float64): its shared
# blocks' convs draw N(0, 2 / fan_in) each, written as the one variance_scaling they share;
# hard-swish, softmax over PyTorch's class axis.
SLOW = Case("ppocrv2_rec", "ppocrv2_rec", (1, 3, 32, 64), stats=True)
# Planted faults: the GRU stack's file with its recurrent kernels drawn twice as wide;
# GPT-2's with its attention no longer causal.
FAULT = SpecCase("gru_fault", GRU_STACK, (2, 7, 6), stats=True)
RIGHT = "recurrent_kernel_init=uniform(-0.25, 0.25)"
WRONG = "recurrent_kernel_init=uniform(-0.5, 0.5)"
FORWARD_FAULT = Case("gpt2_fault", "gpt2", (2, 16), kwargs=GPT2, vocab=GPT2["vocab_size"])
# The transposed convolution's kernel not flipped; the local window's mask left out.
FLIP_FAULT = SpecCase("deconv_fault", DECONV, (2, 3, 6, 5))
WINDOW_FAULT = SpecCase("local_window_fault", LOCAL, (2, 16, 8))
FORWARD_FAULTS = [
    (FORWARD_FAULT, ", causal=True", ""),
    (FLIP_FAULT, "jnp.flip(self.kernel[...], axis=tuple(range(dims)))", "self.kernel[...]"),
    (WINDOW_FAULT, ", mask=local_window_mask((4, 4), (3, 3))", ""),
]

# The isolated run: each file's model holds exactly the build's state paths (RNG streams of
# dropout layers included), takes the build's values (every one used), runs the input in eval
# mode (an image channel-last, as the file's header says; a sequence as it is); for cases
# with ``stats``, a fresh model under seeds 0 and 1 redrawn by ``init_weights``.
SCRIPT = (
    FLAX_LOAD_BUILD_STATE
    + """
for name, stats in json.load(open("cases.json")):
    model_class = importlib.import_module(name).Model
    model = model_class()
    saved = load_build_state(model, name)
    x = np.load(name + "_x.npy")
    x = np.moveaxis(x, 1, -1) if x.ndim == 4 else x
    out = model(jnp.asarray(x))
    outs = out if isinstance(out, dict) else {"": out}
    outs = {k: np.asarray(v) for k, v in outs.items()}
    outs = {k: np.moveaxis(v, -1, 1) if v.ndim == 4 else v for k, v in outs.items()}
    np.savez(name + "_out.npz", **outs)
    for seed in (0, 1) if stats else ():
        fresh = model_class(rngs=nnx.Rngs(seed))
        fresh.init_weights(nnx.Rngs(seed + 10))
        drawn = {k: np.asarray(v.get_value()) for k, v in flat(fresh).items() if k in saved}
        np.savez(f"{name}_init{seed}.npz", **drawn)
"""
)


def _export(case: Case, folder) -> str:
    policy = case.policy_object()
    text = export_code(case.spec, "flax", class_name="Model", policy=policy, source=case.model)
    (folder / f"{case.name}.py").write_text(text)
    return text


def _save_build(case: Case, folder, text: str | None = None):
    """The build's state (parameters and batch statistics) and all its paths, the input, and
    (the build's output, the float32 rounding of the build against its float64 run)."""
    from flax import nnx

    from xinit.backends import get_backend

    module = xinit.build(case.spec, "flax", rng="xinit", policy=case.policy_object())
    flat = {".".join(map(str, k)): v for k, v in nnx.to_flat_state(nnx.state(module))}
    (folder / f"{case.name}_paths.json").write_text(json.dumps(sorted(flat)))
    values = {
        k: np.asarray(v.get_value())
        for k, v in flat.items()
        if isinstance(v, (nnx.Param, nnx.BatchStat))
    }
    np.savez(folder / f"{case.name}_state.npz", **values)
    x = case.input()
    np.save(folder / f"{case.name}_x.npy", x)
    backend = get_backend("flax")
    want = backend.run(module, x)
    with backend.float64(module):
        wide = backend.run(module, x if x.dtype == np.int64 else x.astype(np.float64))
    if isinstance(want, dict):  # a model of several outputs (an encoder's, a detector's maps)
        return {k: (np.asarray(v), rounding(v, wide[k])) for k, v in want.items()}
    return want, rounding(want, wide)


def _run(cases: list[Case], folder) -> dict:
    (folder / "cases.json").write_text(json.dumps([[c.name, c.stats] for c in cases]))
    run_isolated(folder, SCRIPT)
    outs = {}
    for c in cases:
        found = dict(np.load(folder / f"{c.name}_out.npz"))
        outs[c.name] = found[""] if list(found) == [""] else found
    return outs


def _passes(expected, got) -> bool:
    """Within the parity verdict (twice the build's float32 rounding per side), every output."""
    if isinstance(expected, dict):
        return set(expected) == set(got) and all(_passes(expected[k], got[k]) for k in expected)
    want, noise = expected
    return compare(want, got, atol=None, noise=2 * noise).passed


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every case exported and its build saved, the planted fault too; one isolated run."""
    require_backend("flax")
    folder = tmp_path_factory.mktemp("export_flax")
    texts, expected = {}, {}
    for case in CASES:
        texts[case.name] = _export(case, folder)
        expected[case.name] = _save_build(case, folder)
    faults = [(FAULT, RIGHT, WRONG), *FORWARD_FAULTS]
    for fault, right, wrong in faults:
        text = _export(fault, folder)
        assert right in text
        (folder / f"{fault.name}.py").write_text(text.replace(right, wrong))
        expected[fault.name] = _save_build(fault, folder)
    outs = _run([*CASES, *(f[0] for f in faults)], folder)
    return folder, texts, expected, outs


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_outputs_equal_the_build_within_the_verdict(exported, case):
    _, _, expected, outs = exported
    want, noise = expected[case.name]
    diff = compare(want, outs[case.name], atol=None, noise=2 * noise)
    assert diff.passed, (case.name, diff)


@pytest.mark.slow
def test_ppocrv2_rec_exports_and_runs_as_the_build(tmp_path):
    require_backend("flax")
    text = _export(SLOW, tmp_path)
    assert 'variance_scaling(2.0, "fan_in", "normal")' in text
    want, noise = _save_build(SLOW, tmp_path)
    got = _run([SLOW], tmp_path)[SLOW.name]
    assert compare(want, got, atol=None, noise=2 * noise).passed
    check_flax_init(SLOW, *_draws(tmp_path, SLOW.name))
    assert ruff_problems(tmp_path, [f"{SLOW.name}.py"]) == ""


# ---- the zoo's other models ---------------------------------------------------------------
# Each exported, run without xinit on the build's state and compared with the build; the
# cheap one in the default run, the large ones slow. vgg19_encoder: a numbered layer list
# (relus as None gaps, numbers kept) returning a dict.
ZOO_CASES = [Case("vgg19_encoder", "vgg19_encoder", (1, 3, 32, 32), stats=True)]
# centernet_resnet: transposed convolutions; unet: ConvTranspose up steps whose instances draw
# other laws (given as kernel_init=/bias_init= arguments); dbnet_pplcnetv3, ppocrv4_server_det:
# layer lists with a sum, nearest upsampling, a scalar op; ppocr_cls, ppocrv3_det: PP-OCR
# blocks whose instances draw other laws (kernel_init= arguments); svtr_tiny: local-window
# attention, Paddle's downscale dropout; ppocrv4_rec, ppocrv4_server_rec: SVTR encoder convs
# on images and on tokens (a class each), avg pools; visionlan: sinusoid positions, slices,
# matmul; abinet: ABINet with its language passes (Reuse).
ZOO_SLOW = [
    Case(name, name, shape, stats=True)
    for name, shape in {
        "centernet_resnet": (1, 3, 64, 64),
        "unet": (1, 3, 32, 32),
        "dbnet_pplcnetv3": (1, 3, 64, 64),
        "ppocrv4_server_det": (1, 3, 64, 64),
        "ppocr_cls": (1, 3, 48, 96),
        "ppocrv3_det": (1, 3, 64, 64),
        "svtr_tiny": (1, 3, 32, 100),
        "ppocrv4_rec": (1, 3, 48, 160),
        "ppocrv4_server_rec": (1, 3, 48, 160),
        "visionlan": (1, 3, 64, 256),
        "abinet": (1, 3, 32, 128),
    }.items()
]
# Zoo models the Flax export does not write, each with the reason (none today).
NOT_WRITTEN: dict[str, str] = {}


@pytest.mark.parametrize("name", sorted(xinit.models.ZOO))
def test_every_zoo_model_writes_a_flax_file(name):
    """Every zoo model (its default arguments) is written, or listed with its reason."""
    if name in NOT_WRITTEN:
        with pytest.raises(ExportError):
            export_code(xinit.models.get(name), "flax")
        return
    text = export_code(xinit.models.get(name), "flax", class_name="Model")
    assert "class Model(" in text and "from flax import nnx" in text


@pytest.fixture(scope="module")
def zoo_exported(tmp_path_factory):
    require_backend("flax")
    folder = tmp_path_factory.mktemp("export_flax_zoo")
    texts = {c.name: _export(c, folder) for c in ZOO_CASES}
    expected = {c.name: _save_build(c, folder) for c in ZOO_CASES}
    return folder, texts, expected, _run(ZOO_CASES, folder)


@pytest.mark.parametrize("case", ZOO_CASES, ids=lambda c: c.name)
def test_zoo_models_run_as_the_build(zoo_exported, case):
    folder, texts, expected, outs = zoo_exported
    assert _passes(expected[case.name], outs[case.name]), case.name
    if case.stats:
        check_flax_init(case, *_draws(folder, case.name))
    assert ruff_problems(folder, [f"{case.name}.py"]) == ""
    assert _export(case, folder) == texts[case.name]


@pytest.mark.slow
@pytest.mark.parametrize("case", ZOO_SLOW, ids=lambda c: c.name)
def test_large_zoo_models_run_as_the_build(tmp_path, case):
    require_backend("flax")
    text = _export(case, tmp_path)
    expected = _save_build(case, tmp_path)
    assert _passes(expected, _run([case], tmp_path)[case.name]), case.name
    if case.stats:
        check_flax_init(case, *_draws(tmp_path, case.name))
    assert ruff_problems(tmp_path, [f"{case.name}.py"]) == ""
    assert _export(case, tmp_path) == text


@pytest.mark.parametrize("fault", [f[0] for f in FORWARD_FAULTS], ids=lambda c: c.name)
def test_the_verdict_catches_a_planted_forward_fault(exported, fault):
    """Attention made non-causal, a transposed conv's kernel not flipped, a mask left out."""
    _, _, expected, outs = exported
    assert not _passes(expected[fault.name], outs[fault.name])


def check_flax_init(case: Case, first: dict, second: dict) -> None:
    """Each parameter of the spec's init plan, read from the Flax state at the native paths
    of xinit's parameter map (every tensor it is split into, concatenated: an LSTM's gates, an
    attention's q, k, v kernels), follows its law (``check_init_statistics`` on the values
    keyed by neutral path; ``second``, another seed, confirms a KS rejection)."""
    from xinit.backends.flax.lowerings import REGISTRY

    def neutral(state: dict) -> dict:
        out = {}
        for item in init_plan(case.spec):
            leaves = REGISTRY.param_map(layer_of(case.spec, item.layer))[item.param.name]
            keys = [".".join(p for p in (item.layer, leaf.name) if p) for leaf in leaves]
            out[item.path] = np.concatenate([state[k].ravel() for k in keys])
        return out

    check_init_statistics(case, neutral(first), neutral(second), "neutral")


def _draws(folder, name: str):
    return [dict(np.load(folder / f"{name}_init{seed}.npz")) for seed in (0, 1)]


@pytest.mark.parametrize("case", [c for c in CASES if c.stats], ids=lambda c: c.name)
def test_init_weights_draws_the_spec_laws(exported, case):
    check_flax_init(case, *_draws(exported[0], case.name))


def test_statistics_catch_recurrent_kernels_drawn_too_wide(exported):
    """The planted fault: the GRU's recurrent kernels drawn from U(±1/2), not U(±1/4)."""
    with pytest.raises(AssertionError, match="weight_hh"):
        check_flax_init(FAULT, *_draws(exported[0], FAULT.name))


def test_files_are_ruff_clean_and_deterministic(exported):
    folder, texts, _, _ = exported
    assert ruff_problems(folder, [f"{c.name}.py" for c in CASES]) == ""
    for case in CASES:
        assert _export(case, folder) == texts[case.name], case.name


def test_files_read_as_flax_code(exported):
    """The forms the issue asks for: Flax's own classes and calls, the laws as kernel_init=."""
    _, texts, _, _ = exported
    vit, gpt2, crnn = texts["vit"], texts["gpt2"], texts["crnn"]
    assert "nnx.LayerNorm(192, use_fast_variance=False, rngs=rngs)" in vit
    assert "nnx.Param(nnx.initializers.normal(1e-06)(rngs.params(), (1, 1, 192)))" in vit
    assert "nnx.dot_product_attention(q, k, v, bias=bias, mask=mask, is_causal=causal)" in vit
    assert "*[Block(rngs=rngs) for _ in range(12)]" in vit
    assert "nnx.Embed(500, 64, embedding_init=nnx.initializers.normal(0.02)" in gpt2
    assert "attention(x, 4, causal=True)" in gpt2
    assert "kernel_init=nnx.initializers.normal(0.01)" in gpt2  # the spec's c_proj law
    assert "kernel_init=nnx.initializers.normal(0.01)" not in texts["gpt2_policy"]
    assert (
        "class LSTMCell(nnx.LSTMCell):" in crnn and "nnx.Bidirectional(forward, backward)" in crnn
    )
    assert "x = jnp.transpose(x, (0, 2, 3, 1))" in crnn  # (N, H, W, C) -> (N, W, C, H) at once
    assert "xinit" not in "".join(line for line in crnn.splitlines() if "import" in line)


def test_a_kind_without_an_emitter_names_the_layer(monkeypatch):
    """A planted fault: the GroupNorm emitter taken out of the table."""
    from xinit import backends

    monkeypatch.delitem(backends.part("flax", "codegen").EMITTERS, "groupnorm")
    spec = Sequential(conv=L.Conv(3, 8, 3), norm=L.GroupNorm(2, 8))
    with pytest.raises(ExportError, match=r"^norm: .*no emitter for layer kind 'groupnorm'"):
        export_code(spec, "flax")


@pytest.mark.parametrize(
    ("layer", "path"),
    [
        (L.MultiheadAttention(8, 2, is_causal=True), "attn"),
        (L.LSTM(8, 8, proj_size=4), "attn"),
        (L.LayerNorm((4, 8)), "attn"),
    ],
    ids=["masked_attention", "lstm_proj", "layernorm_2d"],
)
def test_an_unsupported_form_names_the_layer(layer, path):
    spec = Sequential(proj=L.Linear(8, 8), attn=layer)
    with pytest.raises(ExportError, match=rf"^{path}: the flax export"):
        export_code(spec, "flax")


def test_instances_that_draw_other_laws_take_the_law_as_an_argument(exported):
    """Blocks alike but for their conv's law (N(0, 0.1), N(0, 0.5), N(0, 0.1)): one class
    whose law is a keyword argument, given where each instance is made, as Flax users write
    (the case ``per_instance_laws`` above runs it and checks each instance's draws)."""
    text = exported[1]["per_instance_laws"]
    assert text.count("class Block(") == 1 and "class Block2(" not in text
    assert "def __init__(self, *, kernel_init: nnx.Initializer, rngs: nnx.Rngs):" in text
    assert "kernel_init=kernel_init," in text
    calls = [f"Block(kernel_init=nnx.initializers.normal({std}), rngs=rngs)" for std in (0.1, 0.5)]
    assert text.count(calls[0]) == 2 and text.count(calls[1]) == 1


def test_other_laws_of_a_layer_without_an_init_argument_become_classes():
    """A learned tensor (its law drawn in the class, no constructor keyword) drawn
    N(0, 0.1) in one block and N(0, 0.5) in the other: each block its own class."""
    from xinit.initializers import Normal

    def block(std):
        scale = ("scale", L.LearnedTensor((4, 1, 1), init=Normal(0.0, std)), ("x",))
        return Graph([("conv", L.Conv(4, 4, 1), "x"), scale, ("mul", L.Mul(), ("scale", "conv"))])

    text = export_code(Sequential(a=block(0.1), b=block(0.5)), "flax")
    assert "self.a = A(rngs=rngs)" in text and "self.b = B(rngs=rngs)" in text
    assert "normal(0.1)" in text.split("class B(")[0] and "normal(0.5)" in text.split("class B(")[1]


def test_recurrent_laws_that_differ_by_layer_are_refused():
    """The file gives each cell one initializer per tensor family: an LSTM whose layers draw
    different laws (Xavier on inputs of 8 and of 16) cannot be written that way."""
    from xinit.presets import Policy, Rule, XavierUniform

    spec = Sequential(rnn=L.LSTM(8, 16, num_layers=2))
    policy = Policy(Rule(XavierUniform(), kind="lstm", param="weight_ih_*"))
    assert len({i.dist for i in init_plan(spec, policy) if "weight_ih" in i.path}) == 2
    with pytest.raises(ExportError, match=r"^rnn: its weight_ih_\* tensors draw 2 laws"):
        export_code(spec, "flax", policy=policy)


# ---- a torchvision ViT traced with xinit.trace ----------------------------------------------
def test_a_traced_vit_exports_and_runs_as_the_build(tmp_path):
    """torchvision's VisionTransformer (small) traced and saved with ``xinit.save_spec``,
    written by ``xinit export-code --model spec.json --framework flax``: its attention is
    ``nnx.MultiHeadAttention`` (packed law on the q, k, v kernels, out_proj's own), its
    dropouts nnx.Dropout with their RNG streams at the build's paths."""
    import real_models as real

    from xinit.cli import main

    torch = pytest.importorskip("torch")
    require_backend("flax")
    torch.manual_seed(0)
    model = real.vision("torchvision").models.VisionTransformer(32, 8, 2, 2, 32, 64, num_classes=10)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3, 32, 32))).float()
    path = xinit.save_spec(xinit.trace(model.eval(), x), tmp_path / "vit.json")
    out = tmp_path / "traced_vit.py"
    args = ["export-code", "--model", str(path), "--framework", "flax", "-o", str(out)]
    assert main([*args, "--class-name", "Model"]) == 0
    text = out.read_text()
    assert "nnx.MultiHeadAttention(" in text and "out_kernel_init=" in text
    spec = xinit.load_spec(path)
    case = SpecCase("traced_vit", spec, (2, 3, 32, 32), stats=True)
    want, noise = _save_build(case, tmp_path)
    got = _run([case], tmp_path)["traced_vit"]
    assert compare(want, got, atol=None, noise=2 * noise).passed
    check_flax_init(case, *_draws(tmp_path, "traced_vit"))
    assert ruff_problems(tmp_path, ["traced_vit.py"]) == ""
