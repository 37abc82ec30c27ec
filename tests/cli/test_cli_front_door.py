"""The ``xinit`` command as a newcomer meets it: hints that name the right fix,
options for what the suffixes cannot say, outputs that are what their names say, no
framework chatter, whole tables in a pipe. Real files, real frameworks, the real ``main``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import require_backend, require_backends

from xinit import PortError, models, port
from xinit.blocks import Sequential, param_specs
from xinit.checkpoints import load_checkpoint, save_checkpoint
from xinit.cli import main
from xinit.layers import AdaptiveAvgPool, BatchNorm, Conv, Flatten, Linear, ReLU

ROOT = Path(__file__).resolve().parents[2]
SUFFIX = {"torch": ".pt", "paddle": ".pdparams", "flax": ".msgpack", "neutral": ".safetensors"}

NET_PY = """
from xinit.blocks import Sequential
from xinit.layers import AdaptiveAvgPool, BatchNorm, Conv, Flatten, Linear, ReLU


def net():
    return Sequential(
        ("conv", Conv(3, 8, 3)), ("bn", BatchNorm(8)), ("relu", ReLU()),
        ("pool", AdaptiveAvgPool(1)), ("flatten", Flatten()), ("fc", Linear(8, 4)),
    )
"""


def small_net() -> Sequential:
    """A conv, a BatchNorm (the layer whose names differ most between the frameworks), a fc."""
    return Sequential(
        ("conv", Conv(3, 8, 3)),
        ("bn", BatchNorm(8)),
        ("relu", ReLU()),
        ("pool", AdaptiveAvgPool(1)),
        ("flatten", Flatten()),
        ("fc", Linear(8, 4)),
    )


def neutral_state(spec, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        path: rng.standard_normal(ps.shape).astype(ps.dtype)
        if ps.dtype == "float32"
        # integer buffers (num_batches_tracked)
        else np.zeros(ps.shape, ps.dtype)
        for path, ps in param_specs(spec).items()
    }


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def net_file(tmp_path: Path) -> str:
    (tmp_path / "net.py").write_text(NET_PY)
    return f"{tmp_path / 'net.py'}:net"


def written(tmp_path: Path, convention: str, name: str = "in") -> Path:
    """The small net's weights in ``convention``'s names and layout, as that file format."""
    path = tmp_path / f"{name}{SUFFIX[convention]}"
    state = port(neutral_state(small_net()), small_net(), src="neutral", dst=convention)
    save_checkpoint(state, path)
    return path


# ---- 1. convention hints -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("convention", "read_as", "shown"),
    [
        ("paddle", "torch", "bn._mean"),
        ("torch", "paddle", "bn.running_mean"),
        ("flax", "torch", "bn.scale"),
        ("torch", "flax", "bn.running_mean"),
    ],
)
def test_keys_of_another_framework_ask_did_you_mean_its_from(convention, read_as, shown):
    spec = small_net()
    state = port(neutral_state(spec), spec, src="neutral", dst=convention)
    with pytest.raises(PortError) as info:
        port(state, spec, src=read_as, dst="neutral")
    hint = str(info.value).splitlines()[-1]
    assert hint.startswith("hint: ") and f"did you mean --from {convention}" in hint, hint
    assert shown in hint


def test_another_models_keys_in_another_convention_are_named_by_their_leaves():
    """resnet45's Paddle keys read as PyTorch for resnet18: most keys are no key of resnet18
    in any convention, but their leaves (``_mean``, ``_variance``) are Paddle's alone."""
    spec = models.resnet45()
    state = {k: np.zeros((1,), np.float32) for k in port_keys(spec, "paddle")}
    with pytest.raises(PortError) as info:
        port(state, models.resnet18(), src="torch", dst="neutral")
    assert "did you mean --from paddle (src='paddle')?" in str(info.value)


def port_keys(spec, convention: str) -> list[str]:
    return list(port(neutral_state(spec), spec, src="neutral", dst=convention))


def test_the_right_convention_for_another_model_gets_no_convention_hint():
    spec = small_net()
    state = neutral_state(models.lenet())  # torch names, but lenet's
    with pytest.raises(PortError) as info:
        port(state, spec, src="torch", dst="neutral")
    assert "did you mean" not in str(info.value)


def test_the_cli_passes_the_convention_hint_on(tmp_path, capsys):
    src = written(tmp_path, "paddle")
    code, _, err = cli(
        capsys, "port", src, tmp_path / "out.pt", "--model", net_file(tmp_path),
        "--from", "torch", "--to", "torch", "--no-parity",
    )  # fmt: skip
    assert code == 2 and "xinit port: error: port: the torch checkpoint does not fit" in err
    assert err.rstrip().endswith("did you mean --from paddle (src='paddle')?"), err
    assert not (tmp_path / "out.pt").exists()


# ---- 2. prefix hints only when they explain most keys ---------------------------------------
def test_a_prefix_that_explains_a_few_keys_is_not_suggested():
    """resnet45's keys for resnet18: ``layer1.2.conv1.weight`` ends in resnet18's
    ``conv1.weight``, but stripping ``layer1.2.`` explains a handful of 100+ keys."""
    state = {k: np.zeros((1,), np.float32) for k in port_keys(models.resnet45(), "paddle")}
    with pytest.raises(PortError) as info:
        port(state, models.resnet18(), src="paddle", dst="neutral")
    assert "strip_prefix" not in str(info.value)
    assert "unexpected" in str(info.value)


def test_a_prefix_that_explains_most_keys_is_suggested():
    state = {f"backbone.{k}": v for k, v in neutral_state(small_net()).items()}
    state["head.fc.weight"] = np.zeros((2, 2), np.float32)  # one key it does not explain
    with pytest.raises(PortError) as info:
        port(state, small_net(), src="neutral", dst="torch")
    assert "strip_prefix='backbone.'" in str(info.value)


# ---- 3. --in-format --------------------------------------------------------------------------
def test_an_unknown_input_suffix_names_in_format_and_in_format_reads_it(tmp_path, capsys):
    require_backend("torch")
    import torch

    src = written(tmp_path, "paddle").rename(tmp_path / "weights.bin.orig")
    out = tmp_path / "out.pt"
    argv = ["port", src, out, "--model", net_file(tmp_path), "--to", "torch", "--no-parity"]
    code, _, err = cli(capsys, *argv)
    assert code == 2 and "--in-format {torch,paddle,flax,safetensors}" in err, err
    assert "'.orig'" in err and not out.exists()
    code, _, err = cli(capsys, *argv, "--in-format", "paddle")
    assert code == 0, err
    got = torch.load(out, weights_only=True)
    want = port(load_checkpoint(src, format="paddle"), small_net(), src="paddle", dst="torch")
    assert set(got) == set(want)
    for key, value in want.items():
        np.testing.assert_array_equal(got[key].numpy(), value, err_msg=key)


# ---- 4. missing output folders ------------------------------------------------------------
def test_port_into_a_missing_folder_needs_parents(tmp_path, capsys):
    src = written(tmp_path, "paddle")
    out = tmp_path / "missing" / "deeper" / "out.pdparams"
    argv = ["port", src, out, "--model", net_file(tmp_path), "--to", "paddle", "--no-parity"]
    code, _, err = cli(capsys, *argv)
    assert code == 2, err
    assert f"the folder {out.parent} does not exist (pass --parents to make it)" in err
    assert not (tmp_path / "missing").exists()
    code, _, err = cli(capsys, *argv, "--parents")
    assert code == 0, err
    assert load_checkpoint(out).keys() == load_checkpoint(src).keys()


def test_init_into_a_missing_folder_needs_parents(tmp_path, capsys):
    out = tmp_path / "runs" / "lenet.safetensors"
    code, _, err = cli(capsys, "init", "lenet", "--out", out, "--format", "json")
    assert code == 2 and "pass --parents" in err and not out.parent.exists()
    code, _, err = cli(capsys, "init", "lenet", "--out", out, "--format", "json", "--parents")
    assert code == 0 and out.is_file(), err


# ---- 5. init writes the format its --out names -------------------------------------------
@pytest.mark.parametrize("framework", ["torch", "paddle", "flax"])
def test_init_writes_the_format_the_suffix_names(tmp_path, capsys, framework):
    """``--out x.pt`` is a file torch.load reads, with PyTorch's names and layout; likewise
    Paddle's and Flax's own files: the same weights as the safetensors file, moved."""
    require_backend("torch")  # the weights are built in torch, init's default
    if framework == "flax":
        require_backend("flax")  # Flax's msgpack file is written by flax.serialization
    neutral = tmp_path / "w.safetensors"
    native = tmp_path / f"w{SUFFIX[framework]}"
    for out in (neutral, native):
        code, _, err = cli(capsys, "init", "lenet", "--seed", "3", "--out", out, "--format", "json")
        assert code == 0, err
    want = port(load_checkpoint(neutral), "lenet", src="neutral", dst=framework)
    got = own_loader(framework, native)
    assert set(got) == set(want)
    for key, value in want.items():
        np.testing.assert_array_equal(np.asarray(got[key]), value, err_msg=key)


def own_loader(framework: str, path: Path) -> dict[str, np.ndarray]:
    """The file read back by its framework's own loader, flat."""
    require_backend(framework)
    if framework == "torch":
        import torch

        return {k: v.numpy() for k, v in torch.load(path, weights_only=True).items()}
    if framework == "paddle":
        import paddle

        return {k: np.asarray(v) for k, v in paddle.load(str(path)).items()}
    from flax import serialization

    from xinit.checkpoints import flatten

    return dict(flatten(serialization.msgpack_restore(path.read_bytes())))


def test_init_refuses_a_suffix_that_names_no_format(tmp_path, capsys):
    out = tmp_path / "w.weights"
    code, _, err = cli(capsys, "init", "lenet", "--out", out)
    assert code == 2 and "--out-format" in err and not out.exists(), err
    code, _, err = cli(capsys, "init", "lenet", "--out", out, "--out-format", "safetensors")
    assert code == 0, err
    assert load_checkpoint(out, format="safetensors")["conv1.weight"].shape == (6, 3, 5, 5)


# ---- 6. prefixes that match nothing --------------------------------------------------------
def test_a_strip_prefix_that_matches_nothing_lists_the_keys_prefixes(tmp_path, capsys):
    src = written(tmp_path, "paddle")
    out = tmp_path / "out.pdparams"
    base = ["port", src, out, "--model", net_file(tmp_path), "--to", "paddle", "--no-parity"]
    code, _, err = cli(capsys, *base, "--strip-prefix", "backbone.")
    assert code == 2 and not out.exists()
    assert "--strip-prefix 'backbone.' begins none of the" in err, err
    assert "they begin with conv. (2), bn. (4), fc. (2)" in err
    code, _, err = cli(capsys, *base, "--drop-prefix", "head.")
    assert code == 2 and "--drop-prefix 'head.' begins none" in err, err


def test_a_strip_prefix_is_matched_after_the_prefix_map(tmp_path, capsys):
    state = {f"student.backbone.{k}": v for k, v in neutral_state(small_net()).items()}
    src = tmp_path / "in.safetensors"
    save_checkpoint(state, src)
    out = tmp_path / "out.safetensors"
    code, _, err = cli(
        capsys, "port", src, out, "--model", net_file(tmp_path), "--to", "neutral",
        "--prefix-map", "student.=", "--strip-prefix", "backbone.", "--no-parity",
    )  # fmt: skip
    assert code == 0, err
    assert set(load_checkpoint(out)) == set(param_specs(small_net()))


# ---- 7 and 8. no framework chatter; whole tables in a pipe ------------------------------------
def test_no_framework_start_up_noise_and_whole_tables_in_a_pipe():
    """A verb that imports Paddle and JAX prints neither Paddle's "No ccache found" nor JAX's
    "Unable to initialize backend 'tpu'"; piped, its table keeps every column whole."""
    require_backends("torch", "paddle", "flax")
    done = subprocess.run(
        [sys.executable, "-m", "xinit.cli", "parity", "lenet", "--backends",
         "paddle,torch,flax", "--rows", "3"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "ccache" not in done.stderr and "Unable to initialize backend" not in done.stderr
    assert done.stderr.strip() == "", done.stderr
    header = next(line for line in done.stdout.splitlines() if "paddle/torch" in line)
    assert "paddle/flax" in header and "torch/flax" in header
    assert "status" in done.stdout and "…" not in done.stdout


def test_stats_table_is_whole_in_a_pipe(capsys):
    require_backends("torch", "paddle", "flax")
    code, out, _ = cli(
        capsys, "stats", "--init", "KaimingNormal()", "--shape", "64,32,3,3",
        "--frameworks", "torch,paddle,flax",
    )  # fmt: skip
    assert code == 0
    assert "…" not in out and "analytic std" in out and "KS p" in out
