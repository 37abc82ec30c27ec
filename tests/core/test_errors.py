"""The error root: every error class xinit defines subclasses ``XinitError``, keeps its builtin
base, and is exported from ``xinit``; the CLI prints one line for an ``XinitError`` and lets
any other exception (a bug) through with its traceback."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

import xinit
from xinit.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[2]

# the builtin bases users caught before the root existed; each class must keep them
BUILTIN_BASES = {
    "ArgumentError": (ValueError,),
    "UnknownArgumentError": (ValueError, TypeError),
    "UnknownNameError": (KeyError,),
    "FrameworkError": (ValueError,),
    "FrameworkNotInstalledError": (ImportError,),
    "InitializerError": (ValueError,),
    "DefaultsError": (ValueError,),
    "SpecError": (ValueError,),
    "NativeModelError": (TypeError,),
    "DiagnoseError": (ValueError,),
    "NameMapError": (ValueError,),
    "PortError": (ValueError,),
    "StateError": (ValueError,),
    "CheckpointError": (ValueError,),
    "UnsafeCheckpointError": (ValueError,),
    "CheckpointWriteError": (ValueError,),
    "PolicyError": (ValueError,),
    "InsufficientMemoryError": (MemoryError, ValueError),
    "LSUVError": (RuntimeError,),
    "ShardingError": (ValueError,),
    "SpecFormatError": (ValueError,),
    "ExportError": (ValueError,),
    "TraceError": (TypeError,),
}


def _defined_errors() -> set[str]:
    """Every class named ``...Error`` in the source of xinit/ and backends/, read from the
    files themselves (not from what xinit exports)."""
    names = set()
    for folder in ("xinit", "backends"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.is_relative_to(ROOT / "xinit" / "backends"):
                continue  # the link to backends/, walked once
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
                    names.add(node.name)
    return names


def test_every_error_class_is_exported_rooted_and_keeps_its_builtin_base():
    defined = _defined_errors()
    assert defined == {"XinitError", *BUILTIN_BASES}, defined ^ {"XinitError", *BUILTIN_BASES}
    for name, bases in BUILTIN_BASES.items():
        cls = getattr(xinit, name)
        assert cls.__name__ == name and name in xinit.__all__
        assert issubclass(cls, xinit.XinitError), name
        for base in bases:
            assert issubclass(cls, base), (name, base)


def test_library_errors_the_cli_used_to_catch_as_builtins_are_xinit_errors():
    """The cases the CLI once caught as ValueError/KeyError/ImportError: each is now an
    XinitError of the right class, and still the builtin it was."""
    cases = [
        (xinit.UnknownNameError, KeyError, lambda: xinit.models.get("resnet19")),
        (xinit.UnknownNameError, KeyError, lambda: xinit.presets.get("kaiming_everything")),
        (xinit.FrameworkError, ValueError, lambda: xinit.build("lenet", "mxnet")),
        (xinit.InitializerError, ValueError, lambda: xinit.init.Normal(std=-1.0)),
        (
            xinit.InitializerError,
            ValueError,
            lambda: xinit.init.KaimingNormal().resolve((4, 4, 3), "linear"),
        ),
        (
            xinit.DefaultsError,
            ValueError,
            lambda: xinit.init.Default("torch").resolve((8,), "vector"),
        ),
    ]
    for cls, builtin, call in cases:
        with pytest.raises(cls) as info:
            call()
        assert isinstance(info.value, builtin) and str(info.value)
    with pytest.raises(xinit.UnknownNameError) as info:
        xinit.models.get("resnet19")
    assert str(info.value).startswith("unknown zoo model 'resnet19'")  # not KeyError's quotes


def _cli(*argv: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "xinit.cli", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )


def test_cli_prints_one_line_and_exits_2_for_an_xinit_error():
    out = _cli("summary", "resnet19")
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("xinit summary: error: unknown zoo model 'resnet19'; known: ")


_BUGGY_FACTORY = """
def make():
    raise {error}("a bug in the model code")
"""


@pytest.mark.parametrize("error", [ValueError, KeyError, TypeError, RuntimeError])
def test_cli_lets_a_bug_through_with_its_traceback(tmp_path, error):
    """A ValueError/KeyError/TypeError that xinit did not raise on purpose (here from a model
    factory's own code) is a bug: the traceback is printed, not a one-line user error."""
    (tmp_path / "model.py").write_text(_BUGGY_FACTORY.format(error=error.__name__))
    model = f"{tmp_path / 'model.py'}:make"
    argv = ["port", str(tmp_path / "in.pt"), str(tmp_path / "out.pt"), "--model", model]
    argv += ["--to", "torch"]
    out = _cli(*argv)
    assert out.returncode == 1
    assert "Traceback (most recent call last)" in out.stderr
    assert f"{error.__name__}: " in out.stderr and "a bug in the model code" in out.stderr
    assert "xinit port: error" not in out.stderr
    with pytest.raises(error, match="a bug in the model code"):  # main() in-process too
        main(argv)
