"""Bad input: each mistake raises a clear error naming the argument and what is
accepted. Frameworks are real; the only patch is of ``importlib.util.find_spec`` as seen by
``xinit.backends``, to play an uninstalled framework without uninstalling one."""

from __future__ import annotations

import importlib.util

import pytest
from helpers import installed

import xinit
from xinit import init as I
from xinit.fans import compute_fans


def _raises(exc, fn, *needles):
    """``fn()`` raises ``exc`` whose message contains every one of ``needles``."""
    with pytest.raises(exc) as info:
        fn()
    msg = str(info.value)
    for needle in needles:
        assert needle in msg, f"{needle!r} missing from the message: {msg!r}"
    return msg


# ---- std, bounds ----------------------------------------------------------------------------


@pytest.mark.parametrize("std", [0.0, -0.5, float("nan"), float("inf"), "1", True])
def test_normal_std_must_be_positive(std):
    _raises(ValueError, lambda: I.Normal(0.0, std), "Normal.std", "positive, finite", repr(std))


@pytest.mark.parametrize("std", [0.0, -1.0])
def test_truncated_normal_std_must_be_positive(std):
    _raises(ValueError, lambda: I.TruncatedNormal(std=std), "TruncatedNormal.std", "positive")
    _raises(ValueError, lambda: I.TruncatedNormal.in_stds(0.0, std), "TruncatedNormal.std")


@pytest.mark.parametrize("low, high", [(1.0, 1.0), (2.0, -2.0)])
def test_uniform_low_must_be_below_high(low, high):
    _raises(ValueError, lambda: I.Uniform(low, high), "Uniform", "low < high", f"low={low}")


@pytest.mark.parametrize("low, high", [(0.5, 0.5), (3.0, -3.0)])
def test_truncated_normal_low_must_be_below_high(low, high):
    _raises(ValueError, lambda: I.TruncatedNormal(0.0, 1.0, low, high), "low < high")
    _raises(ValueError, lambda: I.TruncatedNormal.in_stds(0.0, 1.0, low, high), "lower < upper")


def test_truncated_normal_interval_without_mass():
    """Bounds far out in the tail (or std-unit bounds given as absolute ones) are refused, not
    left to divide by zero in the analytic mean."""
    _raises(ValueError, lambda: I.TruncatedNormal(0.0, 1.0, 50.0, 60.0), "[50.0, 60.0]", "in_stds")
    _raises(ValueError, lambda: I.TruncatedNormal(5.0, 0.01, -2.0, 2.0), "probability")
    assert I.TruncatedNormal(0.0, 1.0, 5.0, 6.0).resolve((4,), "vector").mean > 5.0  # 3e-7: fine


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: I.Constant(float("nan")), "Constant.value"),
        (lambda: I.Normal(mean=float("inf")), "Normal.mean"),
        (lambda: I.XavierUniform(gain=0.0), "XavierUniform.gain"),
        (lambda: I.XavierNormal(gain=-1.0), "XavierNormal.gain"),
        (lambda: I.Orthogonal(gain=0.0), "Orthogonal.gain"),
        (lambda: I.VarianceScaling(scale=0.0), "VarianceScaling.scale"),
        (lambda: I.KaimingNormal(a="x"), "KaimingNormal.a"),
        (lambda: I.BiasPrior(1.0), "BiasPrior.prob"),
        (lambda: I.BiasPrior(0.0), "BiasPrior.prob"),
        (lambda: I.Dirac(groups=0), "Dirac.groups"),
        (lambda: I.Dirac(groups=1.5), "Dirac.groups"),
    ],
)
def test_other_arguments_are_validated(make, name):
    _raises(ValueError, make, name)


# ---- nonlinearity and mode ------------------------------------------------------------------


@pytest.mark.parametrize("cls", [I.KaimingNormal, I.KaimingUniform])
def test_unknown_nonlinearity(cls):
    _raises(
        ValueError,
        lambda: cls(nonlinearity="swish"),
        f"{cls.__name__}.nonlinearity",
        "'swish'",
        "'relu'",
        "'leaky_relu'",
    )


def test_gain_unknown_nonlinearity_and_bad_slope():
    _raises(ValueError, lambda: xinit.gain("gelu"), "nonlinearity", "'gelu'", "'tanh'")
    _raises(ValueError, lambda: xinit.gain("leaky_relu", "steep"), "negative_slope", "'steep'")


@pytest.mark.parametrize("cls", [I.KaimingNormal, I.KaimingUniform])
def test_unknown_kaiming_mode(cls):
    # fan_avg is a VarianceScaling mode, not a Kaiming one (as in torch)
    _raises(
        ValueError, lambda: cls(mode="fan_avg"), f"{cls.__name__}.mode", "'fan_in'", "'fan_out'"
    )


def test_unknown_variance_scaling_mode_and_distribution():
    _raises(
        ValueError, lambda: I.VarianceScaling(mode="fanin"), "VarianceScaling.mode", "'fan_avg'"
    )
    _raises(
        ValueError,
        lambda: I.VarianceScaling(distribution="gaussian"),
        "VarianceScaling.distribution",
        "'gaussian'",
        "'truncated_normal'",
        "'uniform'",
    )


# ---- shapes -----------------------------------------------------------------------------------

FAN_BASED = [
    I.KaimingNormal(),
    I.KaimingUniform(),
    I.XavierNormal(),
    I.XavierUniform(),
    I.LecunNormal(),
    I.LecunUniform(),
    I.VarianceScaling(),
]


@pytest.mark.parametrize("init", FAN_BASED, ids=lambda i: type(i).__name__)
def test_fan_based_initializer_on_a_vector(init):
    name = type(init).__name__
    msg = _raises(ValueError, lambda: init.resolve((64,), "vector"), name, "(64,)", "fans")
    assert "Constant" in msg  # it says what to use instead


def test_fan_based_initializer_on_a_vector_through_sample():
    b = installed()[0]
    _raises(
        ValueError,
        lambda: xinit.sample(I.KaimingNormal(), (64,), role="vector", framework=b),
        "KaimingNormal",
        "1-d",
    )
    _raises(ValueError, lambda: compute_fans((64,), "vector"), "fans are undefined")


def test_orthogonal_needs_two_dims():
    _raises(ValueError, lambda: I.Orthogonal().resolve((64,), "vector"), "Orthogonal", "2 dims")


@pytest.mark.parametrize(
    "shape, role", [((8, 8), "linear"), ((8,), "vector"), ((10, 4), "embedding")]
)
def test_dirac_needs_a_conv_shape(shape, role):
    _raises(ValueError, lambda: I.Dirac().resolve(shape, role), "Dirac", "conv", str(shape))


def test_eye_needs_two_dims():
    _raises(ValueError, lambda: I.Eye().resolve((4, 4, 3), "conv"), "Eye", "2-d")


@pytest.mark.parametrize("groups, out", [(3, 64), (5, 16)])
def test_dirac_groups_must_divide_channels(groups, out):
    _raises(
        ValueError,
        lambda: I.Dirac(groups).resolve((out, 4, 3, 3), "conv"),
        f"groups={groups}",
        f"{out} output channels",
    )


@pytest.mark.parametrize(
    "shape, role, needle",
    [
        ((4, 4, 3), "linear", "'linear' needs a 2-d shape"),
        ((4,), "conv", "1 to 3 spatial dims"),
        ((4, 4, 3, 3, 3, 3), "conv", "1 to 3 spatial dims"),
        ((4, -1), "linear", "non-negative ints"),
    ],
)
def test_shape_must_fit_the_role(shape, role, needle):
    _raises(ValueError, lambda: I.Normal().resolve(shape, role), needle)


def test_shape_entries_must_be_integers():
    b = installed()[0]
    _raises(
        (TypeError, ValueError),
        lambda: xinit.sample(I.Normal(), (4.5, 3), role="linear", framework=b),
        "shape",
        "4.5",
    )


# ---- role, rng, device, backend -----------------------------------------------------------


def test_unknown_role():
    _raises(ValueError, lambda: I.Normal().resolve((4, 4), "dense"), "role", "'dense'", "'linear'")
    b = installed()[0]
    _raises(
        ValueError,
        lambda: xinit.sample(I.Normal(), (4, 4), role="dense", framework=b),
        "role",
        "'conv_transpose'",
    )


def test_unknown_rng(backend):
    _raises(
        ValueError,
        lambda: xinit.sample(I.Normal(), (4, 4), role="linear", framework=backend, rng="philox"),
        "rng",
        "'philox'",
        "'native'",
        "'xinit'",
    )


def test_unknown_device(backend):
    _raises(
        ValueError,
        lambda: xinit.sample(I.Normal(), (4, 4), role="linear", framework=backend, device="tpu"),
        "device",
        "'tpu'",
        "'gpu'",
    )


def test_unknown_framework():
    _raises(
        xinit.FrameworkError,
        lambda: xinit.sample(I.Normal(), (4, 4), role="linear", framework="mxnet"),
        "framework",
        "'mxnet'",
        "'torch'",
        "'paddle'",
        "'flax'",
    )


def test_not_an_initializer():
    b = installed()[0]
    _raises(
        TypeError,
        lambda: xinit.sample("KaimingNormal", (4, 4), role="linear", framework=b),
        "initializer",
        "'KaimingNormal'",
    )


@pytest.mark.parametrize(
    "name, extra", [("torch", "torch"), ("paddle", "paddle"), ("flax", "flax")]
)
def test_uninstalled_framework_names_the_extra(monkeypatch, name, extra):
    """With the framework's module hidden from ``find_spec``, the error says what to install."""
    import xinit.backends as backends

    real = importlib.util.find_spec

    def find_spec(mod, *args, **kwargs):
        return None if mod.split(".")[0] == name else real(mod, *args, **kwargs)

    monkeypatch.setattr(backends.importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(backends, "_CACHE", {})  # forget adapters loaded by earlier tests
    assert name not in backends.available()
    msg = _raises(
        ImportError,
        lambda: xinit.sample(I.Normal(), (4, 4), role="linear", framework=name),
        f"'{name}'",
        f"xinit[{extra}]",
        "pip install",
    )
    assert "not installed" in msg


# ---- `xinit stats --init` is parsed, never evaluated ------------------------------------------


@pytest.mark.parametrize(
    "text, needle",
    [
        ("__import__('os').system('echo pwned')", "expected one of"),
        ("KaimingNormal(mode=open('/etc/passwd').read())", "literals"),
        ("KaimingNormal(**{'mode': 'fan_out'})", "* and ** arguments"),
        ("Initializer()", "expected one of"),
        ("gain('relu')", "expected one of"),
        ("TruncatedNormal.__init__(1)", "expected one of"),
        ("KaimingNormal(mode='fan_out'", "not an initializer expression"),
        ("KaimingNormal(modes='fan_out')", "modes"),
        ("KaimingNormal(mode='fan_avg')", "KaimingNormal.mode"),
    ],
)
def test_cli_stats_init_is_parsed_safely(text, needle, capfd):
    from xinit.cli import main

    assert main(["stats", "--init", text, "--backends", installed()[0]]) == 2
    captured = capfd.readouterr()  # file-descriptor level: a shell `echo` would land here
    assert needle in captured.err, captured.err
    assert "pwned" not in captured.out


def test_cli_stats_unknown_backend_and_device(capsys):
    from xinit.cli import main

    assert main(["stats", "--backends", "torch,mxnet"]) == 2
    assert "'mxnet'" in capsys.readouterr().err
    assert main(["stats", "--backends", installed()[0], "--device", "tpu"]) == 2
    assert "'tpu'" in capsys.readouterr().err


def test_cli_stats_skips_an_uninstalled_framework_with_a_note(monkeypatch, capsys):
    import xinit.backends as backends
    from xinit.cli import main

    if len(installed()) < 2:
        pytest.skip("hides one framework of two: pip install 'xinit[paddle]' or 'xinit[flax]'")
    real = importlib.util.find_spec
    hidden = installed()[-1]
    monkeypatch.setattr(
        backends.importlib.util,
        "find_spec",
        lambda mod, *a, **k: None if mod.split(".")[0] == hidden else real(mod, *a, **k),
    )
    monkeypatch.setattr(backends, "_CACHE", {})
    argv = ["stats", "--shape", "64,32", "--role", "linear", "--format", "md"]
    assert main([*argv, "--backends", ",".join(installed())]) == 0
    out = capsys.readouterr().out
    assert f"{hidden}: skipped, not installed (pip install 'xinit[{hidden}]')" in out
    assert f"| {hidden} |" not in out
