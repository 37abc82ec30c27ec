"""The public names of ``xinit``: the lazy table and its type stub (``__init__.pyi``) agree, every
name resolves, and ``framework`` is the one word for the framework axis (the old keywords
still work for one release, with a DeprecationWarning)."""

from __future__ import annotations

import ast
import pathlib
import warnings

import numpy as np
import pytest
from helpers import installed, require_backend

import xinit
from xinit import init

STUB = pathlib.Path(xinit.__file__).with_suffix(".pyi")


def _stub_names() -> dict[str, tuple[str, str | None]]:
    """name -> (module, attribute or None for a module) that ``xinit/__init__.pyi`` imports."""
    stub = {}
    for node in ast.parse(STUB.read_text()).body:
        if isinstance(node, (ast.Expr, ast.AnnAssign)):
            continue  # the docstring, __version__
        assert isinstance(node, ast.ImportFrom) and node.level == 1, ast.unparse(node)
        for alias in node.names:
            assert alias.asname == alias.name, f"{ast.unparse(node)}: re-export it as itself"
            if node.module is None:  # from . import models as models
                stub[alias.name] = (f"xinit.{alias.name}", None)
            else:
                stub[alias.name] = (f"xinit.{node.module}", alias.name)
    return stub


def test_the_type_stub_and_the_lazy_table_agree():
    assert _stub_names() == xinit._LAZY
    assert set(xinit.__all__) == {"__version__", *xinit._LAZY}


def test_every_public_name_resolves():
    for name, (module, attr) in xinit._LAZY.items():
        value = getattr(xinit, name)
        if attr is None:
            assert value.__name__ == module
        else:
            assert getattr(value, "__name__", attr) == attr, name


def test_the_legacy_backends_alias_is_gone():
    import xinit.backends as backends

    assert not hasattr(backends, "BACKENDS") and "BACKENDS" not in backends.__all__


# ---- framework= is the word; backend(s)= warns --------------------------------------------


def test_build_takes_framework_and_warns_on_backend():
    require_backend("torch")
    new = xinit.build("lenet", framework="torch", seed=1, rng="xinit")
    with pytest.warns(DeprecationWarning, match=r"build\(backend=...\) is deprecated.*framework="):
        old = xinit.build("lenet", backend="torch", seed=1, rng="xinit")
    a, b = xinit.state_dict(new), xinit.state_dict(old)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # positional and framework= do not warn
        xinit.build(xinit.layers.Linear(3, 2), "torch")
    with pytest.raises(TypeError, match="both framework= and its deprecated name backend="):
        xinit.build("lenet", framework="torch", backend="torch")
    with pytest.raises(TypeError, match="missing its framework"):
        xinit.build("lenet")


def test_sample_takes_framework_and_warns_on_backend():
    name = installed()[0]
    args = (init.Normal(0.0, 0.5), (16, 8))
    new = xinit.sample(*args, role="linear", framework=name, seed=4, rng="xinit")
    with pytest.warns(DeprecationWarning, match=r"sample\(backend=...\)") as record:
        old = xinit.sample(*args, role="linear", backend=name, seed=4, rng="xinit")
    assert record[0].filename == __file__  # the warning points at the caller's line
    assert np.array_equal(new, old)
    with pytest.raises(TypeError, match="missing its framework"):
        xinit.sample(*args, role="linear")


def test_diagnose_takes_frameworks_and_warns_on_backends():
    require_backend("torch")
    spec = xinit.Sequential(xinit.layers.Linear(8, 8), xinit.layers.ReLU())
    new = xinit.diagnose(spec, (4, 8), frameworks=["torch"], seed=1)
    with pytest.warns(DeprecationWarning, match=r"diagnose\(backends=...\)"):
        old = xinit.diagnose(spec, (4, 8), backends=["torch"], seed=1)
    assert new.rows == old.rows


def test_cli_takes_frameworks_and_warns_on_backends(capsys):
    from xinit.cli import main

    name = installed()[0]
    argv = ["stats", "--shape", "64,32", "--role", "linear", "--format", "json"]
    assert main([*argv, "--frameworks", name]) == 0
    new = capsys.readouterr()
    assert main([*argv, "--backends", name]) == 0
    old = capsys.readouterr()
    assert old.out == new.out and new.err == ""
    assert "--backends is deprecated" in old.err and "use --frameworks" in old.err
