"""Shared steps of the code export tests: write exported files, run them in a fresh Python
in which xinit cannot be imported, check ruff and the init statistics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from stats_helpers import N_MIN, assert_has_power, assert_ks_one, assert_moments

import xinit
from xinit import export_code
from xinit.plan import init_plan

REPO = Path(__file__).resolve().parents[1]
RUFF = Path(sys.executable).with_name("ruff")
# First lines of every isolated run: ``import xinit`` fails there, whatever the path holds.
BLOCKER = "import sys\nsys.modules['xinit'] = None\n"


@dataclass
class Case:
    """One export: a zoo model (with arguments), its class, input shape and policy."""

    name: str
    model: str
    input_shape: tuple[int, ...]
    kwargs: dict = field(default_factory=dict)
    policy: str | None = None
    stats: bool = False  # check init_weights' statistics too
    vocab: int = 0  # the input is token ids below this (a language model), else N(0, 1)

    def input(self):
        """The input the isolated run and the build take (seeded)."""
        rng = np.random.default_rng(0)
        if self.vocab:
            return rng.integers(0, self.vocab, self.input_shape).astype(np.int64)
        return rng.standard_normal(self.input_shape).astype(np.float32)

    @property
    def spec(self):
        return xinit.models.get(self.model, **self.kwargs)

    def policy_object(self):
        return None if self.policy is None else xinit.presets.get(self.policy)


def export(case: Case, framework: str, folder: Path) -> str:
    """Write ``folder/<case>.py`` and return its text."""
    text = export_code(
        case.spec, framework, class_name="Model", policy=case.policy_object(), source=case.model
    )
    (folder / f"{case.name}.py").write_text(text)
    return text


def run_isolated(folder: Path, script: str, timeout: int = 600) -> str:
    """Run ``script`` in a fresh interpreter, in ``folder``, with only ``folder`` on the path
    and xinit blocked; its stdout (AssertionError with stderr when it fails)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(folder)
    env.setdefault("OMP_NUM_THREADS", "1")
    done = subprocess.run(
        [sys.executable, "-c", BLOCKER + script],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"isolated run failed:\n{done.stderr[-4000:]}"
    return done.stdout


def write_cases(folder: Path, cases: list[Case]) -> None:
    """``cases.json``: [name, whether init_weights is sampled] for the isolated run."""
    (folder / "cases.json").write_text(json.dumps([[c.name, c.stats] for c in cases]))


# The isolated run, per framework: load each case's file, its xinit-built state (every key
# used: strict), run the input in eval mode; for cases with ``stats``, a fresh model under
# seeds 0 and 1 with ``init_weights()`` called, its state saved. THREADS: the test process's.
SCRIPTS = {
    "torch": """
import importlib, json
import numpy as np
import torch
torch.set_num_threads(THREADS)  # as the test process: a conv's sums in the same order
for name, stats in json.load(open("cases.json")):
    model_class = importlib.import_module(name).Model
    model = model_class()
    model.load_state_dict(torch.load(name + ".state"), strict=True)
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(np.load(name + "_x.npy")))
    np.save(name + "_out.npy", out.numpy())
    for seed in (0, 1) if stats else ():
        torch.manual_seed(seed)
        fresh = model_class()
        fresh.init_weights()
        state = {k: v.detach().numpy() for k, v in fresh.state_dict().items()}
        np.savez(f"{name}_init{seed}.npz", **state)
""",
    "paddle": """
import importlib, json
import numpy as np
import paddle
paddle.set_device("cpu")
for name, stats in json.load(open("cases.json")):
    model_class = importlib.import_module(name).Model
    model = model_class()
    state = paddle.load(name + ".state")
    missing, unexpected = model.set_state_dict(state)
    assert not missing and not unexpected, (name, missing, unexpected)
    assert set(model.state_dict()) == set(state), name
    model.eval()
    with paddle.no_grad():
        out = model(paddle.to_tensor(np.load(name + "_x.npy")))
    np.save(name + "_out.npy", out.numpy())
    for seed in (0, 1) if stats else ():
        paddle.seed(seed)
        fresh = model_class()
        fresh.init_weights()
        state = {k: v.numpy() for k, v in fresh.state_dict().items()}
        np.savez(f"{name}_init{seed}.npz", **state)
""",
    "flax": """
import importlib, json
import numpy as np
import jax
import jax.numpy as jnp
from flax import nnx


def flat(model):
    return {".".join(map(str, k)): v for k, v in nnx.to_flat_state(nnx.state(model))}


for name, stats in json.load(open("cases.json")):
    model_class = importlib.import_module(name).Model
    model = model_class()
    saved = dict(np.load(name + ".state.npz"))
    state = nnx.state(model)
    assert set(flat(model)) == set(saved), (name, sorted(set(flat(model)) ^ set(saved)))
    for key, var in nnx.to_flat_state(state):
        var.set_value(jnp.asarray(saved[".".join(map(str, key))]))
    nnx.update(model, state)
    model.eval()
    x = np.load(name + "_x.npy")
    out = np.asarray(model(jnp.asarray(np.moveaxis(x, 1, -1))))  # Flax takes NHWC
    np.save(name + "_out.npy", np.moveaxis(out, -1, 1) if out.ndim == 4 else out)
    for seed in (0, 1) if stats else ():
        fresh = model_class(rngs=nnx.Rngs(seed))
        fresh.init_weights(nnx.Rngs(seed + 10))
        state = {k: np.asarray(v.get_value()) for k, v in flat(fresh).items()}
        np.savez(f"{name}_init{seed}.npz", **state)
""",
}


def threads(framework: str) -> int:
    """The test process's intra-op thread count (torch), for the isolated run."""
    if framework != "torch":
        return 1
    import torch

    return torch.get_num_threads()


def save_state(module, framework: str, path: Path) -> None:
    """The xinit-built module's state in the framework's own file."""
    if framework == "torch":
        import torch

        torch.save(module.state_dict(), path)
    elif framework == "paddle":
        import paddle

        paddle.save(module.state_dict(), str(path))
    elif framework == "flax":
        from flax import nnx

        flat = {
            ".".join(map(str, k)): np.asarray(v.get_value())
            for k, v in nnx.to_flat_state(nnx.state(module))
        }
        np.savez(f"{path}.npz", **flat)
    else:
        raise ValueError(framework)


# Where a neutral parameter lives in Flax's state (names only: the laws are element-wise).
FLAX_LEAVES = {"conv": {"weight": "kernel"}, "linear": {"weight": "kernel"}}
FLAX_LEAVES |= {kind: {"weight": "scale"} for kind in ("batchnorm", "layernorm", "groupnorm")}


def native_key(framework: str, item) -> str:
    """The state key of the plan item's parameter in ``framework``'s exported model."""
    if framework != "flax":
        return item.path
    leaf = FLAX_LEAVES.get(item.param.kind, {}).get(item.param.name, item.param.name)
    return f"{item.layer}.{leaf}" if item.layer else leaf


def ruff_problems(folder: Path, files: list[str]) -> str:
    """What ``ruff check`` and ``ruff format --check`` say with the project's settings."""
    config = str(REPO / "pyproject.toml")
    out = []
    for args in (["check", "--no-cache"], ["format", "--check", "--no-cache", "--diff"]):
        done = subprocess.run(
            [str(RUFF), *args, "--config", config, *files],
            cwd=folder,
            capture_output=True,
            text=True,
        )
        if done.returncode:
            out.append(done.stdout + done.stderr)
    return "\n".join(out)


def check_init_statistics(case: Case, first: dict, second: dict, framework: str) -> None:
    """Each parameter that ``init_weights`` drew (``first``; ``second`` from another seed
    confirms a KS rejection) follows the law of the spec's plan: constants exactly, random
    laws by moments and a one-sample KS, with power against a 3% std error where the
    sample is large enough (``framework`` says where each parameter is)."""
    for item in init_plan(case.spec, case.policy_object()):
        key = native_key(framework, item)
        x = first[key].astype(np.float64).ravel()
        what = f"{case.name} {item.path} ({item.dist.describe()})"
        if not item.dist.random:
            want = np.float32(item.dist.mean)  # the constant as a float32 tensor holds it
            np.testing.assert_array_equal(x, np.full_like(x, want), err_msg=what)
            continue
        if x.size >= 2:  # a one-number parameter (a learned scale): its KS test alone
            assert_moments(x, item.dist, what)
        if x.size >= N_MIN:
            assert_has_power(x, item.dist, what)
        redraw = lambda k=key: second[k].astype(np.float64).ravel()  # noqa: E731
        assert_ks_one(x, item.dist, what, redraw=redraw)


# The isolated run of one-layer models (tests/export/test_export_kinds.py): each case's inputs
# from ``<name>_x.npz`` (x0, x1, ...), its output saved to ``<name>_out.npz`` (``out``, or a
# dict's parts by key), then ``init_weights()`` on a fresh model, its state saved.
KIND_SCRIPTS = {
    "torch": """
import importlib, json
import numpy as np
import torch
torch.set_num_threads(THREADS)
for name, _ in json.load(open("cases.json")):
    model = importlib.import_module(name).Model()
    model.load_state_dict(torch.load(name + ".state"), strict=True)
    model.eval()
    xs = np.load(name + "_x.npz")
    with torch.no_grad():
        out = model(*[torch.from_numpy(xs[f"x{i}"]) for i in range(len(xs.files))])
    out = out if isinstance(out, dict) else {"out": out}  # a learned tensor: the parameter
    np.savez(name + "_out.npz", **{k: v.detach().numpy() for k, v in out.items()})
    torch.manual_seed(0)
    fresh = importlib.import_module(name).Model()
    if hasattr(fresh, "init_weights"):  # a model without parameters has none
        fresh.init_weights()
    np.savez(name + "_init.npz", **{k: v.detach().numpy() for k, v in fresh.state_dict().items()})
""",
    "paddle": """
import importlib, json
import numpy as np
import paddle
paddle.set_device("cpu")
for name, _ in json.load(open("cases.json")):
    model = importlib.import_module(name).Model()
    state = paddle.load(name + ".state")
    missing, unexpected = model.set_state_dict(state)
    assert not missing and not unexpected, (name, missing, unexpected)
    assert set(model.state_dict()) == set(state), name
    model.eval()
    xs = np.load(name + "_x.npz")
    with paddle.no_grad():
        out = model(*[paddle.to_tensor(xs[f"x{i}"]) for i in range(len(xs.files))])
    out = {k: v.numpy() for k, v in out.items()} if isinstance(out, dict) else {"out": out.numpy()}
    np.savez(name + "_out.npz", **out)
    paddle.seed(0)
    fresh = importlib.import_module(name).Model()
    if hasattr(fresh, "init_weights"):  # a model without parameters has none
        fresh.init_weights()
    np.savez(name + "_init.npz", **{k: v.numpy() for k, v in fresh.state_dict().items()})
""",
}


# The Flax file runners' shared step, prepended to their scripts (they run where xinit cannot
# be imported): the model holds exactly the build's state paths and takes every saved value.
FLAX_LOAD_BUILD_STATE = """
import importlib, json
import numpy as np
import jax.numpy as jnp
from flax import nnx


def flat(model):
    return {".".join(map(str, k)): v for k, v in nnx.to_flat_state(nnx.state(model))}


def load_build_state(model, name):
    paths = json.load(open(name + "_paths.json"))
    assert sorted(flat(model)) == paths, (name, sorted(set(flat(model)) ^ set(paths)))
    saved = dict(np.load(name + "_state.npz"))
    state, used = nnx.state(model), set()
    for key, var in nnx.to_flat_state(state):
        key = ".".join(map(str, key))
        if isinstance(var, (nnx.Param, nnx.BatchStat)):
            assert var.get_value().shape == saved[key].shape, (name, key)
            var.set_value(jnp.asarray(saved[key]))
            used.add(key)
    assert used == set(saved), (name, sorted(set(saved) - used))
    nnx.update(model, state)
    model.eval()
    return saved
"""
