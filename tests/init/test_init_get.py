"""``xinit.init.get``: initializer text is parsed, never evaluated; an instance or a class is
accepted as it is; anything else is an ``InitializerError`` saying what is accepted."""

from __future__ import annotations

import pytest

from xinit import init
from xinit.errors import InitializerError


@pytest.mark.parametrize(
    "text, expected",
    [
        ("KaimingNormal(mode='fan_out')", init.KaimingNormal(mode="fan_out")),
        ("KaimingNormal", init.KaimingNormal()),
        ("  xinit.init.Zeros  ", init.Zeros()),
        ("init.Normal(0, 0.02)", init.Normal(0.0, 0.02)),
        ("Uniform(low=-1e-3, high=2e-3)", init.Uniform(-1e-3, 2e-3)),
        ("TruncatedNormal.in_stds(0, 0.02)", init.TruncatedNormal.in_stds(0.0, 0.02)),
        ("AsLinear(KaimingUniform(a=5 ** 0.5))", None),  # an expression is no literal
        ("AsLinear(XavierNormal(gain=2.0))", init.AsLinear(init.XavierNormal(gain=2.0))),
        ("AsLinear(init=Zeros)", init.AsLinear(init.Zeros())),
        ("Orthogonal(gain=1.4, blocks=3)", init.Orthogonal(gain=1.4, blocks=3)),
        ("Default('paddle')", init.Default("paddle")),
    ],
)
def test_text_gives_the_initializer_it_names(text, expected):
    if expected is None:
        with pytest.raises(InitializerError, match="literals"):
            init.get(text)
        return
    got = init.get(text)
    assert type(got) is type(expected) and got == expected


def test_instances_and_classes_are_accepted():
    made = init.XavierUniform(gain=3.0)
    assert init.get(made) is made
    assert init.get(init.LecunNormal) == init.LecunNormal()
    with pytest.raises(InitializerError, match="abstract"):
        init.get(init.Initializer)


@pytest.mark.parametrize(
    "bad, needle",
    [
        ("__import__('os').system('echo pwned')", "expected one of"),
        ("KaimingNormal(mode=open('/etc/passwd').read())", "literals"),
        ("KaimingNormal(**{'mode': 'fan_out'})", "* and ** arguments"),
        ("Normal(*[0, 1])", "* and ** arguments"),
        ("Initializer()", "expected one of"),
        ("gain('relu')", "expected one of"),
        ("TruncatedNormal.__init__(1)", "expected one of"),
        ("TruncatedNormal.in_stds", "expected one of"),  # a method must be called
        ("os.path", "expected one of"),
        ("[KaimingNormal()]", "expected one of"),
        ("Normal(0, 0.02) + Normal()", "expected one of"),
        ("KaimingNormal(mode='fan_out'", "not an initializer expression"),
        ("", "not an initializer expression"),
        ("(" * 100_000, "not an initializer expression"),
        ("KaimingNormal(modes='fan_out')", "modes"),
        ("Normal(0, 1, 2)", "positional"),
        ("KaimingNormal(mode='fan_avg')", "KaimingNormal.mode"),
        ("Normal(std=-1.0)", "Normal.std"),
        ("AsLinear(3)", "AsLinear wraps an initializer"),
        ("Default('keras')", "unknown framework 'keras'"),
    ],
)
def test_bad_text_is_a_clear_error(bad, needle):
    from xinit.errors import XinitError

    with pytest.raises(XinitError) as info:
        init.get(bad)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert needle in message, message
    assert len(message) < 400  # a long input is cut in the message, not echoed whole


@pytest.mark.parametrize("bad", [3, None, b"KaimingNormal", init.KaimingNormal().resolve])
def test_other_types_are_refused(bad):
    with pytest.raises(InitializerError, match="expected an initializer"):
        init.get(bad)


def test_text_runs_nothing(tmp_path, monkeypatch):
    """A call hidden in an argument never runs: no file appears."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InitializerError):
        init.get("Normal(std=open('made.txt', 'w').write('x'))")
    assert list(tmp_path.iterdir()) == []
