"""Every layer kind in the torch and Paddle code export, driven by the kind registry: each
kind's small example (``kinds.Example``, the conformance suite's) and a few variants are
exported as one-layer models and run in a Python where xinit cannot be imported: the state
of ``xinit.build(..., rng="xinit")`` loads with every key used, the outputs equal the
build's bit for bit (CPU), ``init_weights()`` runs and gives each constant law its value,
the files are ruff-clean and byte-identical on a second export. A kind registered without
an emitter fails here unless it is excluded below with its reason."""

from __future__ import annotations

import numpy as np
import pytest
from export_code_helpers import (
    KIND_SCRIPTS,
    Case,
    ruff_problems,
    run_isolated,
    save_state,
    threads,
    write_cases,
)
from helpers import require_backend

import xinit
from xinit import backends, kinds
from xinit import layers as L
from xinit.codegen import ExportError
from xinit.graph import Graph
from xinit.plan import init_plan
from xinit.state import state_dict

FRAMEWORKS = ("torch", "paddle")
# kind -> (frameworks, why): kinds the export does not write there, with the reason; a kind
# added without emitters goes here until it has them. Entries may name kinds another branch
# registers (not registered here: no effect until both are merged).
NOT_WRITTEN: dict[str, tuple[tuple[str, ...], str]] = {}

# Variants of the examples that take the emitters' other branches: name -> (spec, input
# shapes, frameworks).
VARIANTS = {
    "clip_min": (L.Clip(0.0, None), ((2, 3, 4, 4),), FRAMEWORKS),
    "clip_max_step": (
        xinit.Sequential(L.Conv(3, 3, 1), L.Clip(None, 0.5)),
        ((2, 3, 4, 4),),
        FRAMEWORKS,
    ),
    "prelu_shared": (L.PReLU(1, init=0.1), ((2, 3, 5),), FRAMEWORKS),
    "instancenorm_plain": (L.InstanceNorm(4, eps=1e-3, dims=1), ((2, 4, 7),), FRAMEWORKS),
    "instancenorm_running": (
        L.InstanceNorm(4, momentum=0.2, affine=True, track_running_stats=True),
        ((2, 4, 3, 3),),
        FRAMEWORKS,
    ),
    "rmsnorm_2d": (L.RMSNorm((3, 6), eps=1e-6, elementwise_affine=False), ((2, 3, 6),), FRAMEWORKS),
    "layer_scale_image": (L.LayerScale(4, 0.1, spatial=2), ((2, 4, 3, 3),), FRAMEWORKS),
    "adaptive_max_pool_1d": (L.AdaptiveMaxPool(3, dims=1), ((2, 3, 7),), FRAMEWORKS),
    "conv_transpose_strided": (
        L.ConvTranspose(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2, bias=False),
        ((2, 4, 5, 5),),
        FRAMEWORKS,
    ),
    "groupnorm_plain": (L.GroupNorm(2, 4, eps=1e-3, affine=False), ((2, 4, 3, 3),), FRAMEWORKS),
    "upsample_bilinear": (
        L.Upsample(scale_factor=1.5, mode="bilinear"),
        ((2, 3, 4, 6),),
        FRAMEWORKS,
    ),
    "upsample_corners": (
        L.Upsample(size=(5, 9), mode="bilinear", align_corners=True),
        ((2, 3, 4, 6),),
        FRAMEWORKS,
    ),
    "upsample_nearest_1d": (L.Upsample(scale_factor=3.0), ((2, 3, 5),), FRAMEWORKS),
    "sdpa_causal": (L.ScaledDotProductAttention(2, causal=True), ((2, 5, 12),), FRAMEWORKS),
    "sdpa_additive_mask": (  # a float mask added to the scores (ABINet's language model)
        L.ScaledDotProductAttention(2, attn_mask=True),
        ((2, 5, 12), (2, 1, 5, 5)),
        FRAMEWORKS,
    ),
    "length_mask_plain": (L.LengthMask(4), ((3,),), FRAMEWORKS),
    "window_attention_plain": (  # no shift, no biases, no padding
        L.WindowAttention(8, (3, 3), (0, 0), 2, qkv_bias=False, proj_bias=False),
        ((2, 6, 6, 8),),
        FRAMEWORKS,
    ),
    "window_attention_v2_plain": (  # a window covering the map: its shift dropped
        L.WindowAttentionV2(8, (4, 4), (2, 2), 4, qkv_bias=False, proj_bias=False),
        ((2, 3, 4, 8),),
        FRAMEWORKS,
    ),
    "dropout_downscale": (L.Dropout(0.25, mode="downscale_in_infer"), ((2, 3, 4),), FRAMEWORKS),
    "names_of_the_file": (  # nodes named as the file's helper and import: renamed variables
        Graph(
            [
                ("qkv", L.Linear(8, 24)),
                ("attention", L.ScaledDotProductAttention(2)),
                ("torch", L.Linear(8, 8)),
            ]
        ),
        ((2, 5, 8),),
        FRAMEWORKS,
    ),
    "layer_list": (  # numbered layers summed (PaddleOCR's conv_kxk): a ModuleList/LayerList
        Graph(
            [
                ("0", L.Conv(3, 4, 3, padding=1), "x"),
                ("1", L.Conv(3, 4, 3, padding=1), "x"),
                ("sum", L.Add(), ("0", "1")),
            ]
        ),
        ((2, 3, 5, 5),),
        FRAMEWORKS,
    ),
}


def shipped_kinds() -> list[str]:
    """The kinds xinit registers: a toy kind a test module registers (test_registry's
    ``scale``) lives in that test's lowerings only, so no emitter is owed for it."""
    return [k for k in kinds.names() if kinds.get(k).spec.__module__.startswith("xinit.")]


def emitters(framework: str):
    return backends.part(framework, "codegen").EMITTERS


def test_every_layer_kind_has_a_torch_and_a_paddle_emitter():
    """Walks the registry now (kinds registered by any module count): a kind without an
    emitter in torch or Paddle is named, unless NOT_WRITTEN says why; an exclusion that has
    an emitter by now is stale and named too."""
    missing, stale = [], []
    for kind in shipped_kinds():
        excluded = NOT_WRITTEN.get(kind, ((), ""))[0]
        for framework in FRAMEWORKS:
            has = kind in emitters(framework)
            if not has and framework not in excluded:
                missing.append(f"{kind} ({framework})")
            if has and framework in excluded:
                stale.append(f"{kind} ({framework})")
    assert not missing, f"layer kinds without a code export emitter: {', '.join(missing)}"
    assert not stale, f"NOT_WRITTEN lists kinds that have an emitter: {', '.join(stale)}"


def test_the_registry_walk_names_a_kind_without_an_emitter(monkeypatch):
    """A planted fault: Paddle's RMSNorm emitter taken out is named."""
    monkeypatch.delitem(emitters("paddle"), "rmsnorm")
    with pytest.raises(AssertionError, match=r"without a code export emitter: rmsnorm \(paddle\)"):
        test_every_layer_kind_has_a_torch_and_a_paddle_emitter()


def _one_layer(spec, shapes) -> Graph:
    """A graph whose single node ``layer`` takes the inputs (the conformance suite's form);
    a container is the model itself."""
    if not isinstance(spec, L.Layer):
        return spec
    names = tuple(f"x{i}" for i in range(len(shapes)))
    return Graph({"layer": (spec, names)}, inputs=names)


def _cases(framework: str) -> dict:
    """file name -> (model spec, inputs): every kind's example and the variants for
    ``framework`` (prefixed: a file ``select.py`` would hide the standard library's)."""
    out = {}
    for kind in shipped_kinds():
        if framework in NOT_WRITTEN.get(kind, ((), ""))[0]:
            continue
        example = kinds.example(kind)
        rng = np.random.default_rng(sum(map(ord, kind)))
        if example.ids:
            xs = [rng.integers(0, example.ids, s).astype(np.int64) for s in example.inputs]
        else:
            xs = [rng.standard_normal(s).astype(np.float32) for s in example.inputs]
        out[f"kind_{kind}"] = (_one_layer(example.spec, example.inputs), xs)
    for name, (spec, shapes, frameworks) in VARIANTS.items():
        if framework in frameworks:
            rng = np.random.default_rng(sum(map(ord, name)))
            xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
            out[f"variant_{name}"] = (_one_layer(spec, shapes), xs)
    return out


@pytest.fixture(scope="module", params=FRAMEWORKS)
def exported(request, tmp_path_factory):
    """Every case exported, its build's state, inputs and outputs saved, one isolated run."""
    framework = request.param
    require_backend(framework)
    folder = tmp_path_factory.mktemp(f"kinds_{framework}")
    cases, texts, expected = _cases(framework), {}, {}
    for name, (spec, xs) in cases.items():
        texts[name] = xinit.export_code(spec, framework, class_name="Model")
        (folder / f"{name}.py").write_text(texts[name])
        module = xinit.build(spec, framework, rng="xinit")
        save_state(module, framework, folder / f"{name}.state")
        np.savez(folder / f"{name}_x.npz", **{f"x{i}": x for i, x in enumerate(xs)})
        out = xinit.run(module, xs[0] if len(xs) == 1 else tuple(xs))
        expected[name] = out if isinstance(out, dict) else {"out": out}
    write_cases(folder, [Case(name, name, ()) for name in cases])
    run_isolated(folder, KIND_SCRIPTS[framework].replace("THREADS", str(threads(framework))))
    return framework, folder, cases, texts, expected


def test_outputs_equal_the_build_without_xinit(exported):
    framework, folder, _, _, expected = exported
    for name, want in expected.items():
        got = dict(np.load(folder / f"{name}_out.npz"))
        assert sorted(got) == sorted(want), name
        for key, value in want.items():
            np.testing.assert_array_equal(got[key], value, err_msg=f"{framework} {name} {key}")


def test_init_weights_gives_each_constant_law_its_value(exported):
    """``init_weights()``'s state, read back through xinit's parameter maps (Paddle's PReLU
    slopes are ``_weight``, its InstanceNorm scale ``scale``): every parameter of a constant
    law holds the constant; every parameter is there."""
    framework, folder, cases, _, _ = exported
    for name, (spec, _) in cases.items():
        drawn = dict(np.load(folder / f"{name}_init.npz"))
        module = xinit.build(spec, framework)
        _load_native(module, framework, drawn)
        neutral = state_dict(module)
        for item in init_plan(spec):
            if not item.dist.random:
                value = np.full(item.param.shape, item.dist.mean, np.float32)
                np.testing.assert_array_equal(neutral[item.path], value, err_msg=f"{name}")


def _load_native(module, framework: str, state: dict) -> None:
    """The exported model's native state into xinit's build of the same spec (same keys)."""
    if framework == "torch":
        import torch

        module.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    else:
        missing, unexpected = module.set_state_dict(state)
        assert not missing and not unexpected


def test_files_are_ruff_clean_and_deterministic(exported):
    framework, folder, cases, texts, _ = exported
    assert ruff_problems(folder, [f"{name}.py" for name in cases]) == ""
    for name, (spec, _) in cases.items():
        assert xinit.export_code(spec, framework, class_name="Model") == texts[name], name


def test_the_outputs_catch_a_wrong_window(exported, tmp_path):
    """A planted fault: SVTR's local window written one column narrower changes the output."""
    framework, folder, _, texts, expected = exported
    text = texts["kind_sdpa"]
    assert "local_window_mask((2, 3), (3, 3)" in text
    name = "kind_sdpa"
    (tmp_path / f"{name}.py").write_text(text.replace("(2, 3), (3, 3)", "(2, 3), (3, 2)"))
    for suffix in (".state", "_x.npz"):
        (tmp_path / f"{name}{suffix}").write_bytes((folder / f"{name}{suffix}").read_bytes())
    write_cases(tmp_path, [Case(name, name, ())])
    run_isolated(tmp_path, KIND_SCRIPTS[framework].replace("THREADS", str(threads(framework))))
    got = np.load(tmp_path / f"{name}_out.npz")["out"]
    assert not np.array_equal(got, expected[name]["out"])


def test_paddle_refuses_a_transposed_conv_its_layer_cannot_hold():
    """A transposed conv whose output_padding reaches its stride (PyTorch allows it up to the
    dilation): an ExportError naming the layer path and why."""
    wide = L.ConvTranspose(4, 4, 3, stride=1, dilation=2, output_padding=1)
    with pytest.raises(ExportError, match=r"^up: .*output_padding reaching the stride"):
        xinit.export_code(Graph({"up": wide}), "paddle")


def test_paddle_running_instancenorm_trains_as_the_build():
    """The file's RunningInstanceNorm in training mode: the same output and running
    statistics as xinit's Paddle layer after two steps (bit for bit, CPU)."""
    require_backend("paddle")
    import paddle

    spec = Graph({"norm": L.InstanceNorm(4, momentum=0.2, affine=True, track_running_stats=True)})
    namespace: dict = {}
    exec(compile(xinit.export_code(spec, "paddle"), "norm.py", "exec"), namespace)  # noqa: S102
    model, built = namespace["Model"](), xinit.build(spec, "paddle", rng="xinit")
    model.set_state_dict(built.state_dict())
    model.train()
    built.train()
    rng = np.random.default_rng(3)
    for _ in range(2):
        x = paddle.to_tensor(rng.standard_normal((3, 4, 5, 2)).astype(np.float32))
        np.testing.assert_array_equal(model(x).numpy(), built(x).numpy())
    for key, value in built.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[key].numpy(), value.numpy(), key)
