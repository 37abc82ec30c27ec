"""``xinit defaults``: the catalogue's tables (Markdown, rich, JSON), one layer side by side,
blocks, names, errors, the conventions and the plot."""

from __future__ import annotations

import json
import math
import re
import warnings

import pytest
from helpers import require_backend

from xinit import defaults as D
from xinit import kinds
from xinit.errors import DefaultsError

warnings.filterwarnings("ignore", category=DeprecationWarning)


def _cli(capsys, *argv):
    from xinit.cli import main

    rc = main(["defaults", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_json(capsys):
    rc, out, _ = _cli(
        capsys,
        "--layer",
        "conv2d,linear",
        "--in",
        "64",
        "--out",
        "128",
        "--kernel",
        "3",
        "--format",
        "json",
    )
    assert rc == 0
    recs = json.loads(out)
    assert {(r["layer"], r["param"], r["framework"]) for r in recs} >= {
        ("conv2d", "weight", "paddle"),
        ("linear", "bias", "torch"),
    }
    for r in recs:
        assert {"framework", "layer", "param", "distribution", "std", "ratio"} <= set(r)
    w = {r["framework"]: r for r in recs if r["layer"] == "conv2d" and r["param"] == "weight"}
    assert w["paddle"]["std"] == pytest.approx(math.sqrt(2 / 576))
    assert w["torch"]["ratio"] == 1.0
    assert w["flax"]["ratio"] == pytest.approx(math.sqrt(3))
    dims = {"in": 64, "out": 128, "kernel": [3, 3], "groups": 1, "heads": 1}  # the spec's fields
    assert all(r["dims"] == dims for r in recs if r["layer"] == "conv2d")


def test_cli_md_and_table(capsys):
    rc, out, _ = _cli(
        capsys,
        "--layer",
        "conv2d",
        "--in",
        "64",
        "--out",
        "128",
        "--groups",
        "4",
        "--format",
        "md",
        "--reference",
        "paddle",
    )
    assert rc == 0
    assert "| conv2d (groups=4) | weight |" in out and "| conv2d (groups=4) | bias |" in out
    assert "U(±0.08333)" in out and "N(0, 0.05893²)" in out
    rc, out, _ = _cli(capsys, "--layer", "batchnorm,embedding", "--in", "1000", "--out", "64")
    assert rc == 0
    assert "running_var" in out and "paddle" in out and "N(0, 1²)" in out


def test_cli_conventions_and_errors(capsys):
    rc, out, _ = _cli(capsys, "--conventions")
    assert rc == 0 and "momentum" in out and "exclusive" in out
    rc, out, _ = _cli(capsys, "--conventions", "--format", "json")
    assert rc == 0 and json.loads(out)[0]["key"] == "layout.linear"
    rc, out, _ = _cli(capsys, "--conventions", "--format", "md")
    assert rc == 0 and out.startswith("| topic |")
    fans = D.convention_record("attention.fans")  # the attention row, each framework's text
    row = next(line for line in out.splitlines() if line.startswith(f"| {fans.topic} |"))
    assert all(fans.text(fw) in row for fw in D.FRAMEWORKS), row
    rc, out, _ = _cli(capsys, "--conventions", "--format", "json")
    assert next(r for r in json.loads(out) if r["key"] == "attention.fans")["values"] == {
        fw: list(v) for fw, v in fans.values
    }
    rc, _, err = _cli(capsys, "--layer", "atention")
    assert rc == 2 and "unknown layer kind 'atention'; did you mean 'attention'" in err
    rc, _, err = _cli(capsys, "--layer", "conv2d", "--reference", "keras")
    assert rc == 2 and "keras" in err


def _md_table(out: str) -> tuple[list[str], dict[str, list[str]]]:
    """The header and the rows (by param) of ``xinit defaults --format md``'s table."""

    def cells(line):
        return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]

    lines = [line for line in out.splitlines() if line.startswith("| ")]
    return cells(lines[0]), {row[1]: row for row in map(cells, lines[1:])}


@pytest.mark.parametrize("layer", D.LAYERS)
def test_cli_one_layer_side_by_side(capsys, layer):
    """``xinit defaults --layer NAME``: one row per parameter, one column per framework, each
    cell the catalogue's law, rule and native tensors, for every layer the catalogue has."""
    rc, out, _ = _cli(capsys, "--layer", layer, "--in", "96", "--heads", "4", "--format", "md")
    assert rc == 0
    one = D.one_feature_count(layer)  # norms, attention: --in is their count without --out
    d = D.layer_spec(layer, 96, None if one else 128, 3, 1, heads=4)
    assert D.describe(d) in out.splitlines()[0]
    header, rows = _md_table(out)
    assert header == ["layer", "param", *D.FRAMEWORKS]
    params = [
        p for p in kinds.get(d.kind).params if any(p in D.params_of(f, d) for f in D.FRAMEWORKS)
    ]
    assert list(rows) == params
    for param, row in rows.items():
        for fw, cell in zip(D.FRAMEWORKS, row[2:]):
            if param not in D.params_of(fw, d):
                assert cell == "-", (fw, param, cell)
                continue
            e = D.default_entry(fw, d, param)
            if not e.supported:
                assert cell == f"n/a ({e.note})", (fw, param, cell)
                continue
            lines = cell.split("<br>")
            assert lines[0].startswith(D.short(e.distribution)), (fw, param, cell)
            also = f" = {D.native_label(e.aliases)}" if e.aliases else ""
            assert lines[1:] == [
                e.rule,
                f"{e.native_name}{also} {e.native_shape}" + (" each" if len(e.leaves) > 1 else ""),
            ], (fw, param, cell)


def test_cli_attention_side_by_side(capsys):
    """The attention table states each framework's own law: torch's Xavier over the packed
    (3E, E), paddle's per (E, E) projection (std ×√2), flax's LeCun normal (std 1/√E)."""
    e, h = 512, 8
    rc, out, _ = _cli(capsys, "--layer", "mha", "--in", str(e), "--heads", str(h), "--format", "md")
    assert rc == 0
    _, rows = _md_table(out)
    torch_q, paddle_q, flax_q = rows["in_proj_weight"][2:]
    assert torch_q.startswith(f"U(±{math.sqrt(6 / (e + 3 * e)):.4g})")
    assert paddle_q.startswith(f"U(±{math.sqrt(6 / (e + e)):.4g})")
    assert f"×{math.sqrt(2):.3g}" in paddle_q
    assert f"std {1 / math.sqrt(e):.4g}" in flax_q and flax_q.startswith("TN(0,")
    assert f"{{query,key,value}}.kernel ({e}, {h}, {e // h}) each" in flax_q
    assert f"{{q_proj,k_proj,v_proj}}.weight ({e}, {e}) each" in paddle_q
    assert rows["out_proj.weight"][2].startswith(f"U(±{1 / math.sqrt(e):.4g})")
    assert f"out.kernel ({h}, {e // h}, {e})" in rows["out_proj.weight"][4]
    for name in ("attention", "multihead_attention", "MultiHeadAttention"):
        rc, again, _ = _cli(capsys, "--layer", name, "--in", str(e), "--format", "md")
        assert rc == 0 and again == out, name
    rc, out, _ = _cli(capsys, "--layer", "mha", "--out", "64", "--heads", "4")  # rich table
    assert rc == 0
    assert "multihead_attention(E=64, heads=4)" in out and "{query,key,value}.kernel" in out
    assert all(fw in out for fw in D.FRAMEWORKS)


def test_cli_layer_names_and_errors(capsys):
    rc, ln, _ = _cli(capsys, "--layer", "ln", "--in", "32", "--format", "md")
    rc2, layernorm, _ = _cli(capsys, "--layer", "LayerNorm", "--in", "32", "--format", "md")
    assert rc == rc2 == 0 and ln == layernorm and "layernorm(32)" in ln
    rc, _, err = _cli(capsys, "--layer", "layernrom")
    assert rc == 2 and "did you mean 'layernorm'?" in err
    assert all(name in err for name in D.LAYERS)  # the accepted names, listed
    rc, _, err = _cli(capsys, "--layer", "mha", "--in", "100", "--heads", "8")
    assert rc == 2 and "embed_dim 100 is not divisible by num_heads 8" in err


def test_cli_plot(capsys, tmp_path):
    for fw in ("torch", "paddle", "flax"):
        require_backend(fw)
    png = tmp_path / "conv.png"
    argv = ["--layer", "linear", "--in", "64", "--out", "4096", "--format", "json", "--plot"]
    rc, out, _ = _cli(capsys, *argv, str(png))
    assert rc == 0
    json.loads(out)  # the plot note goes to stderr, stdout stays JSON
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


@pytest.mark.parametrize("block", D.BLOCKS)
def test_cli_block_side_by_side(capsys, block):
    """``xinit defaults --layer BLOCK``: a row per parameter of the block, each cell the
    catalogue's entry (law, rule, native tensors), then each framework's note; d_model is
    --in, nhead --heads, dim_feedforward --out or 4·d_model."""
    rc, out, _ = _cli(capsys, "--layer", block, "--in", "64", "--heads", "4", "--format", "md")
    assert rc == 0
    d = D.layer_spec(block, 64, 256, heads=4)
    assert D.describe(d) in out.splitlines()[0]
    header, rows = _md_table(out)
    assert header == ["layer", "param", *D.FRAMEWORKS]
    assert list(rows) == list(D.params_of("torch", d))
    for param, row in rows.items():
        assert row[0] == block
        for fw, cell in zip(D.FRAMEWORKS, row[2:]):
            e = D.default_entry(fw, d, param)
            lines = cell.split("<br>")
            assert lines[0].startswith(D.short(e.distribution)), (fw, param, cell)
            each = " each" if len(e.leaves) > 1 else ""
            assert lines[1:] == [e.rule, f"{e.native_name} {e.native_shape}{each}"], (fw, cell)
    first = next(iter(rows))
    notes = [line for line in out.splitlines() if line.startswith("- ")]
    assert notes == [f"- {fw}: {D.default_entry(fw, d, first).note}" for fw in D.FRAMEWORKS]
    argv = ("--layer", block, "--in", "64", "--heads", "4")
    rc, again, _ = _cli(capsys, *argv, "--out", "256", "--format", "md")
    assert rc == 0 and again == out
    rc, text, _ = _cli(capsys, *argv, "--out", "96", "--format", "json")
    recs = json.loads(text)
    assert rc == 0 and len(recs) == 3 * len(rows)
    assert {r["dims"]["out"] for r in recs} == {96}
    assert {r["note"] for r in recs} == {
        D.default_entry(fw, D.layer_spec(block, 64, 96, heads=4), first).note for fw in D.FRAMEWORKS
    }


def test_cli_transformer_layer_names_and_the_torch_model(capsys):
    """The aliases print the same table; nn.Transformer's table shows torch's Xavier where the
    layer alone has kaiming_uniform_; --plot refuses a block before printing anything."""
    argv = ("--in", "512", "--heads", "8", "--format", "md")
    rc, out, _ = _cli(capsys, "--layer", "transformer_encoder_layer", *argv)
    assert rc == 0
    for name in ("transformer_encoder", "encoder_layer", "TransformerEncoderLayer"):
        rc, again, _ = _cli(capsys, "--layer", name, *argv)
        assert rc == 0 and again == out, name
    _, rows = _md_table(out)
    e = 512
    assert rows["linear1.weight"][2].startswith(f"U(±{1 / math.sqrt(e):.4g})")  # kaiming, a=√5
    assert rows["linear1.weight"][3].startswith(f"U(±{math.sqrt(6 / (e + 4 * e)):.4g})")
    rc, model, _ = _cli(capsys, "--layer", "transformer", *argv)
    _, rows = _md_table(model)
    cell = rows["encoder.layers.0.linear1.weight"][2]
    assert cell.startswith(f"U(±{math.sqrt(6 / (e + 4 * e)):.4g})") and "xavier_uniform_" in cell
    assert rows["decoder.layers.0.multihead_attn.in_proj_weight"][3].split("<br>")[2] == (
        f"decoder.layers.0.cross_attn.{{q_proj,k_proj,v_proj}}.weight ({e}, {e}) each"
    )
    rc, out, err = _cli(capsys, "--layer", "decoder_layer", "--plot", "unused.png")
    assert rc == 2 and out == "" and "transformer_decoder_layer is a block" in err


def test_cli_recurrent_layers(capsys):
    rc, out, _ = _cli(capsys, "--layer", "lstm", "--in", "64", "--out", "256", "--format", "md")
    assert rc == 0
    assert "| lstm | weight_hh_l0 |" in out and "| lstm | bias_ih_l0 |" in out
    assert "Orthogonal(gain=1, each of 4 row blocks)" in out and "U(±0.0625)" in out
    assert (
        "{hi,hf,hg,ho}.kernel (256, 256) each" in out
        and "0.cell.weight_ih = weight_ih_l0 (1024, 64)" in out
    )
    rc, out, _ = _cli(capsys, "--layer", "gru", "--in", "64", "--out", "256", "--format", "md")
    assert rc == 0 and "dense_h.kernel (256, 768)" in out


@pytest.mark.parametrize("layer", ["lstm", "gru"])
def test_paddle_recurrent_rows_list_both_names_paddle_saves(layer):
    """Paddle's LSTM/GRU save each tensor twice, as ``0.cell.weight_ih`` and ``weight_ih_l0``:
    the catalogue lists both, and both are keys of the native layer's state dict holding the
    same values, of the shape the row gives."""
    require_backend("paddle")
    import numpy as np
    import paddle

    spec = D.layer_spec(layer, 16, 32)
    native = getattr(paddle.nn, layer.upper())(16, 32).state_dict()
    for param in D.params_of("paddle", spec):
        e = D.default_entry("paddle", spec, param)
        ((name, shape),) = e.leaves
        assert e.aliases == (f"{param}",) and e.record()["native_aliases"] == [param]
        assert tuple(native[name].shape) == shape == tuple(native[param].shape)
        np.testing.assert_array_equal(native[name].numpy(), native[param].numpy())
    assert all(not D.default_entry("torch", spec, p).aliases for p in D.params_of("torch", spec))


def test_cli_depthwise_out_channels_are_layer_specs(capsys):
    """``--layer depthwise_conv2d --in 64`` without ``--out`` is ``layer_spec("depthwise_conv2d",
    64)``: 64 out channels, groups 64, the shape torch's own depthwise Conv2d holds."""
    from xinit.cli import main

    spec = D.layer_spec("depthwise_conv2d", 64)
    assert (spec.out_channels, spec.groups) == (64, 64)
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert (
            main(["defaults", "--layer", "depthwise_conv2d", "--in", "64", "--format", "json"]) == 0
        )
    recs = json.loads(buf.getvalue())
    assert {json.dumps(r["dims"]) for r in recs} == {json.dumps(D.layer_numbers(spec))}
    torch = pytest.importorskip("torch")
    own = torch.nn.Conv2d(64, 64, 3, groups=64)
    weight = next(r for r in recs if r["framework"] == "torch" and r["param"] == "weight")
    assert weight["native_shape"] == list(own.weight.shape)


def test_cli_kdim_vdim_are_the_catalogue_of_that_attention(capsys):
    """``--kdim``/``--vdim`` give the rows of ``MultiheadAttention(E, heads, kdim=, vdim=)``:
    its separate projections, each with the shape torch's own layer holds; a layer without
    them refuses the numbers."""
    rc, out, _ = _cli(
        capsys,
        "--layer",
        "mha",
        "--in",
        "64",
        "--heads",
        "4",
        "--kdim",
        "32",
        "--vdim",
        "48",
        "--format",
        "json",
    )
    assert rc == 0
    recs = json.loads(out)
    spec = D.layer_spec("mha", 64, heads=4, kdim=32, vdim=48)
    want = D.records(D.catalogue(spec), "torch")
    assert recs == json.loads(json.dumps(want, ensure_ascii=False))
    assert all(r["dims"]["kdim"] == 32 and r["dims"]["vdim"] == 48 for r in recs)
    torch = pytest.importorskip("torch")
    own = dict(torch.nn.MultiheadAttention(64, 4, kdim=32, vdim=48).named_parameters())
    for r in recs:
        if r["framework"] == "torch":
            assert r["native_shape"] == list(own[r["native_name"]].shape), r["param"]
    assert {r["param"] for r in recs} >= {"q_proj_weight", "k_proj_weight", "v_proj_weight"}
    with pytest.raises(DefaultsError, match="linear has no kdim"):
        D.layer_spec("linear", 64, 32, kdim=16)
