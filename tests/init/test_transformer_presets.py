"""The transformer presets reproduce the loops they are named after (the pattern of
``test_presets.py``):

* ``R``: a hand-written PyTorch model initialised by the recipe's own loop, written out here
  or in ``reference_models`` (timm's ``init_weights``, MAE's ``initialize_weights``, HF
  BERT's and GPT-2's ``_init_weights``, torchtitan's Llama ``init_weights``);
* ``P``: the same model with the layers' own defaults, the parameters the preset selects
  overwritten with a sentinel, then ``xinit.apply(preset, model)``;
* ``X``: ``xinit.build(spec, backend, policy=preset)`` of the zoo spec with the same names,
  in every installed framework.

Every parameter a rule sets must follow the preset's law in R, P and X (constants exactly;
random laws: mean/std |z| <= 5 with standard errors from n, one-sample KS p > 1e-4); R and P
agree parameter by parameter (two-sample KS, or exactly for constants), untouched ones
included; X agrees with R wherever they share a path and shape. The recipes are PyTorch
code, so R and P are PyTorch models.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import installed, require_backend
from stats_helpers import case_seed
from test_presets import assert_follows, assert_same_laws, laws, scramble

import xinit
from xinit import presets
from xinit.blocks import param_specs
from xinit.models.gpt2 import gpt2
from xinit.models.vit import vision_transformer
from xinit.native import native_param_specs, neutral_values

VIT = dict(embed_dim=96, depth=2, num_heads=3, img_size=32, patch_size=8, num_classes=10)
GPT = dict(n_layer=2, n_head=4, n_embd=64, vocab_size=97, n_positions=32)


# ---- hand-written models and the recipes' loops -------------------------------------------
def timm_vit(mode: str):
    from reference_models import torch_vit

    def make(init: bool):
        args = dict(VIT)
        e, depth, heads = args.pop("embed_dim"), args.pop("depth"), args.pop("num_heads")
        return torch_vit(e, depth, heads, weight_init=mode if init else "skip", **args)

    return make


def mae_vit(init: bool):
    """timm's ViT as MAE's encoder, with MAE's ``initialize_weights`` (its learned
    ``pos_embed`` drawn like its tokens: MAE's own is a fixed sin-cos table)."""
    import torch
    from torch import nn

    model = timm_vit("skip")(False)
    if init:
        w = model.patch_embed.proj.weight.data
        torch.nn.init.xavier_uniform_(w.view([w.shape[0], -1]))
        torch.nn.init.normal_(model.cls_token, std=0.02)
        torch.nn.init.normal_(model.pos_embed, std=0.02)

        def _init_weights(m):
            if isinstance(m, nn.Linear):
                torch.nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.LayerNorm):
                nn.init.constant_(m.bias, 0)
                nn.init.constant_(m.weight, 1.0)

        model.apply(_init_weights)
    return model


def torch_gpt_linear():
    """GPT-2's layout with ``nn.Linear`` projections and an ``lm_head`` (the names of
    ``xinit.models.gpt2(lm_head=True)``); modules only, no forward is needed here."""
    from torch import nn

    e = GPT["n_embd"]

    def block():
        b = nn.Module()
        b.ln_1, b.ln_2 = nn.LayerNorm(e), nn.LayerNorm(e)
        b.attn, b.mlp = nn.Module(), nn.Module()
        b.attn.c_attn, b.attn.c_proj = nn.Linear(e, 3 * e), nn.Linear(e, e)
        b.mlp.c_fc, b.mlp.c_proj = nn.Linear(e, 4 * e), nn.Linear(4 * e, e)
        return b

    m = nn.Module()
    m.wte = nn.Embedding(GPT["vocab_size"], e)
    m.wpe = nn.Embedding(GPT["n_positions"], e)
    m.h = nn.ModuleList([block() for _ in range(GPT["n_layer"])])
    m.ln_f = nn.LayerNorm(e)
    m.lm_head = nn.Linear(e, GPT["vocab_size"], bias=False)
    return m


def bert_model(init: bool):
    """HF ``BertPreTrainedModel._init_weights``, module by module."""
    from torch import nn

    model = torch_gpt_linear()
    if init:

        def _init_weights(module):
            if isinstance(module, nn.Linear):
                module.weight.data.normal_(mean=0.0, std=0.02)
                if module.bias is not None:
                    module.bias.data.zero_()
            elif isinstance(module, nn.Embedding):
                module.weight.data.normal_(mean=0.0, std=0.02)
            elif isinstance(module, nn.LayerNorm):
                module.bias.data.zero_()
                module.weight.data.fill_(1.0)

        model.apply(_init_weights)
    return model


def hf_gpt2(init: bool):
    from reference_models import torch_gpt2

    return torch_gpt2(**GPT, init=init)  # HF's Conv1D projections and _init_weights


def titan_model(init: bool, depth_init: bool = True):
    """torchtitan's Llama ``init_weights`` (``Transformer``, ``TransformerBlock``,
    ``Attention``, ``FeedForward``) transcribed to GPT-2's names: tok_embeddings -> wte,
    wq/wk/wv -> the packed c_attn, wo -> attn.c_proj, w1 -> mlp.c_fc, w2 -> mlp.c_proj,
    attention_norm/ffn_norm -> ln_1/ln_2, norm -> ln_f, output -> lm_head; GPT-2's biases,
    which torchtitan's Linears do not have, zeroed."""
    from torch import nn

    model = torch_gpt_linear()
    if init:
        n_layers, dim = GPT["n_layer"], GPT["n_embd"]
        nn.init.normal_(model.wte.weight)
        for layer_id, block in enumerate(model.h):
            if depth_init:
                weight_init_std = 0.02 / (2 * (layer_id + 1)) ** 0.5
            else:
                weight_init_std = 0.02 / (2 * n_layers) ** 0.5
            for norm in (block.ln_1, block.ln_2):
                norm.reset_parameters()
            nn.init.trunc_normal_(block.attn.c_attn.weight, mean=0.0, std=0.02)
            nn.init.trunc_normal_(block.attn.c_proj.weight, mean=0.0, std=weight_init_std)
            nn.init.trunc_normal_(block.mlp.c_fc.weight, mean=0.0, std=0.02)
            nn.init.trunc_normal_(block.mlp.c_proj.weight, mean=0.0, std=weight_init_std)
            for linear in (block.attn.c_attn, block.attn.c_proj, block.mlp.c_fc, block.mlp.c_proj):
                nn.init.zeros_(linear.bias)
        model.ln_f.reset_parameters()
        final_out_std = dim**-0.5
        cutoff_factor = 3
        nn.init.trunc_normal_(
            model.lm_head.weight,
            mean=0.0,
            std=final_out_std,
            a=-cutoff_factor * final_out_std,
            b=cutoff_factor * final_out_std,
        )
    return model


CASES = {
    "vit_timm": lambda: (presets.vit_timm(), vision_transformer(**VIT), timm_vit("")),
    "vit_jax": lambda: (presets.vit_jax(), vision_transformer(**VIT), timm_vit("jax")),
    "mae": lambda: (presets.mae(), vision_transformer(**VIT), mae_vit),
    "bert": lambda: (presets.bert(), gpt2(**GPT, lm_head=True), bert_model),
    "gpt2": lambda: (presets.gpt2(n_layer=GPT["n_layer"]), gpt2(**GPT), hf_gpt2),
    "torchtitan_llama": lambda: (
        presets.torchtitan_llama(n_layers=GPT["n_layer"], dim=GPT["n_embd"]),
        gpt2(**GPT, lm_head=True),
        titan_model,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_preset_matches_the_recipes_loop(name):
    torch = require_backend("torch") and __import__("torch")
    policy, spec, hand = CASES[name]()
    torch.manual_seed(case_seed(name, "R"))
    ref = hand(True)
    torch.manual_seed(case_seed(name, "P"))
    model = hand(False)
    params = {p: s for p, (s, _) in native_param_specs(model).items()}
    expected = laws(policy, params, spec_defaults=False)
    chosen = {p for p, d in expected.items() if d is not None}
    scramble(model, chosen)
    report = xinit.apply(policy, model, seed=case_seed(name, "apply"))
    assert set(report.initialized) == chosen
    R, P = neutral_values(ref), neutral_values(model)
    assert set(R) == set(P) == set(params)
    assert assert_follows(R, expected, f"{name} the recipe's loop") == len(chosen) > 0
    assert_follows(P, expected, f"{name} preset on the hand-written model")
    assert_same_laws(R, P, f"{name} loop vs preset")
    xparams = {p: s for p, s in param_specs(spec).items() if s.trainable}
    for backend in installed():
        built = xinit.build(spec, backend, seed=case_seed(name, backend, "X"), policy=policy)
        X = neutral_values(built)
        assert_follows(X, laws(policy, xparams, spec_defaults=True), f"{name} {backend} build")
        common = [p for p in X if p in R and np.shape(X[p]) == np.shape(R[p]) and expected[p]]
        assert len(common) >= len(chosen) // 2, "the build shares few parameters with R"
        assert_same_laws(R, X, f"{name} {backend} loop vs xinit build", common)


def test_what_each_preset_gives_the_tokens_and_packed_matrices():
    """The learned parameters are selected by name, the packed qkv is one (3E, E) matrix
    (Xavier's fan_out 3E), MAE's patch conv uses its Linear view's fans, GPT-2's and
    torchtitan's output projections shrink with depth."""
    e = VIT["embed_dim"]
    vit = {p: s for p, s in param_specs(vision_transformer(**VIT)).items()}

    def law(policy, path, params=vit):
        return policy.plan(params).dists[path]

    assert law(presets.vit_timm(), "cls_token").sigma == 1e-6
    pos = law(presets.vit_timm(), "pos_embed")
    assert (pos.sigma, pos.low, pos.high) == (0.02, -2.0, 2.0)
    qkv = law(presets.vit_jax(), "blocks.0.attn.qkv.weight")
    assert qkv.high == pytest.approx(math.sqrt(6.0 / (e + 3 * e)), rel=1e-12)
    assert law(presets.vit_jax(), "blocks.0.mlp.fc1.bias").sigma == 1e-6
    assert law(presets.vit_jax(), "blocks.0.attn.qkv.bias").value == 0.0
    assert law(presets.vit_jax(head_bias=-2.0), "head.bias").value == -2.0
    k = VIT["patch_size"] ** 2 * 3
    patch = law(presets.mae(), "patch_embed.proj.weight")
    assert patch.high == pytest.approx(math.sqrt(6.0 / (k + e)), rel=1e-12)
    assert law(presets.mae(), "cls_token").sigma == 0.02
    g = {p: s for p, s in param_specs(gpt2(**GPT, lm_head=True)).items()}
    proj = law(presets.gpt2(n_layer=2), "h.1.mlp.c_proj.weight", g)
    assert proj.sigma == pytest.approx(0.02 / math.sqrt(4), rel=1e-12)
    assert law(presets.gpt2(n_layer=2), "h.1.mlp.c_fc.weight", g).sigma == 0.02
    titan = presets.torchtitan_llama(n_layers=2, dim=64)
    assert law(titan, "h.0.attn.c_proj.weight", g).sigma == pytest.approx(0.02 / math.sqrt(2))
    assert law(titan, "h.1.attn.c_proj.weight", g).sigma == pytest.approx(0.02 / math.sqrt(4))
    flat = presets.torchtitan_llama(n_layers=2, dim=64, depth_init=False)
    assert law(flat, "h.0.mlp.c_proj.weight", g).sigma == pytest.approx(0.02 / math.sqrt(4))
    head = law(titan, "lm_head.weight", g)
    assert (head.sigma, head.high) == pytest.approx((1 / 8, 3 / 8))
    assert law(titan, "wte.weight", g).sigma == 1.0


@pytest.mark.parametrize(
    "preset,spec",
    [
        (presets.vit_timm(), xinit.models.vit_tiny_patch16_224()),
        (presets.gpt2(n_layer=12), xinit.models.gpt2(lm_head=True)),
    ],
    ids=["vit_timm", "gpt2"],
)
def test_the_zoo_specs_carry_their_presets(preset, spec):
    """Built without a policy the zoo's ViT is timm's init and its GPT-2 HF's: the preset
    sets every parameter to the initializer the spec already has."""
    params = param_specs(spec)
    report = preset.report(spec)
    for entry in report:
        if entry.path == "patch_embed.proj.weight" or entry.path == "patch_embed.proj.bias":
            assert entry.status == "default"  # timm leaves the conv at PyTorch's default
            continue
        assert entry.status == "initialized", entry.path
        assert entry.initializer == str(params[entry.path].init), entry.path
