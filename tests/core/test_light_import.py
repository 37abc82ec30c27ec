"""``import xinit`` stays light: numpy only, no framework and no scipy (DESIGN.md).

Each check runs in a fresh interpreter, since this test process has long imported them all.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "paddle", "jax", "jaxlib", "flax", "scipy", "tensorflow", "matplotlib")


def _loaded_after(code: str) -> list[str]:
    probe = (
        f"{code}\n"
        "import json, sys\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "code",
    [
        "import xinit",
        "import xinit, xinit.backends; xinit.backends.available()",
        # specs and their resolution are pure numpy
        "import xinit; xinit.init.KaimingNormal(mode='fan_out').resolve((64, 3, 7, 7), 'conv')",
        "import xinit; xinit.gain('leaky_relu', 0.2); xinit.init.BiasPrior(0.01).value",
        # the command line parser (``xinit --help``) imports no framework either
        "import xinit.cli; xinit.cli._parser()",
        # the checkpoint formats table reads every backend's checkpoint module
        "import xinit.checkpoints as c; c.detect_format('w.pt'); c.detect_format('w.msgpack')",
        # a spec document is written and read without a framework (Default's catalogue too)
        "import xinit; s = xinit.models.vit_tiny_patch16_224(); "
        "d = xinit.layers.Linear(2, 2, weight_init=xinit.init.Default('flax')); "
        "assert xinit.spec_from_json(xinit.spec_to_json(s)) == s; "
        "assert xinit.spec_from_json(xinit.spec_to_json(d)) == d",
    ],
    ids=[
        "import",
        "backends.available",
        "resolve",
        "gain",
        "cli-parser",
        "checkpoints",
        "spec-json",
    ],
)
def test_import_loads_no_framework(code):
    assert _loaded_after(code) == []


def test_the_probe_does_see_a_framework_when_one_is_imported():
    """The check above is not vacuous: asking for a backend does import its framework."""
    from helpers import installed

    name = installed()[0]
    top = {"flax": "jax"}.get(name, name)
    loaded = _loaded_after(f"import xinit.backends as b; b.get_backend({name!r})")
    assert top in loaded
