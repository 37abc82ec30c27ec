"""xinit: one framework-neutral spec of network blocks and their initialisation.

``import xinit`` is nearly free: the public names below load their module on first use
(the core itself needs numpy only), and each backend imports its framework when first asked.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Public names served lazily from their modules, so the core import stays light. ``__init__.pyi``
# lists the same names for IDEs and type checkers (a stub, not an ``if TYPE_CHECKING:`` block,
# whose imports would count as import circles); tests/core/test_public_api.py keeps both in step. A
# module that defines a public function of the same name is private (``_build``, ``_port``, ...):
# importing ``xinit.port`` as a module would otherwise replace the function ``xinit.port``.
_LAZY = {
    "init": ("xinit.init", None),
    "gain": ("xinit.initializers", "gain"),
    "sample": ("xinit.sampling", "sample"),
    "models": ("xinit.models", None),
    "layers": ("xinit.layers", None),
    "blocks": ("xinit.blocks", None),
    "transformer": ("xinit.transformer", None),
    "build": ("xinit._build", "build"),
    "run": ("xinit._build", "run"),
    "summary": ("xinit._summary", "summary"),
    "Sequential": ("xinit.blocks", "Sequential"),
    "Residual": ("xinit.blocks", "Residual"),
    "Graph": ("xinit.graph", "Graph"),
    "Reuse": ("xinit.graph", "Reuse"),
    "feature_extractor": ("xinit.graph", "feature_extractor"),
    "truncate": ("xinit.graph", "truncate"),
    "sub_spec": ("xinit.graph", "sub_spec"),
    "convert": ("xinit._convert", "convert"),
    "save_spec": ("xinit.spec_json", "save_spec"),
    "load_spec": ("xinit.spec_json", "load_spec"),
    "spec_to_json": ("xinit.spec_json", "spec_to_json"),
    "spec_from_json": ("xinit.spec_json", "spec_from_json"),
    "state_dict": ("xinit.state", "state_dict"),
    "load_state_dict": ("xinit.state", "load_state_dict"),
    "transfer": ("xinit.state", "transfer"),
    "port": ("xinit._port", "port"),
    "PortError": ("xinit._port", "PortError"),
    "StateError": ("xinit.state", "StateError"),
    "parity": ("xinit._parity", "parity"),
    "bn_parity": ("xinit._parity", "bn_parity"),
    "randomize_batchnorm": ("xinit._parity", "randomize_batchnorm"),
    "calibrate_batchnorm": ("xinit._parity", "calibrate_batchnorm"),
    "port_parity": ("xinit._port_parity", "port_parity"),
    "apply": ("xinit._apply", "apply"),
    "Policy": ("xinit.policy", "Policy"),
    "Rule": ("xinit.policy", "Rule"),
    "presets": ("xinit.presets", None),
    "diagnose": ("xinit._diagnose", "diagnose"),
    "lsuv": ("xinit._lsuv", "lsuv"),
    "stats": ("xinit._stats", "stats"),
    "export_code": ("xinit._export_code", "export_code"),
    "trace": ("xinit._trace", "trace"),
    "reparameterize": ("xinit.reparam", "reparameterize"),
    # every error xinit raises on purpose: XinitError and its subclasses
    "XinitError": ("xinit.errors", "XinitError"),
    "ArgumentError": ("xinit.errors", "ArgumentError"),
    "UnknownArgumentError": ("xinit.errors", "UnknownArgumentError"),
    "UnknownNameError": ("xinit.errors", "UnknownNameError"),
    "FrameworkError": ("xinit.errors", "FrameworkError"),
    "FrameworkNotInstalledError": ("xinit.errors", "FrameworkNotInstalledError"),
    "InitializerError": ("xinit.errors", "InitializerError"),
    "DefaultsError": ("xinit.errors", "DefaultsError"),
    "SpecError": ("xinit.layers", "SpecError"),
    "PolicyError": ("xinit.policy", "PolicyError"),
    "NameMapError": ("xinit.namemap", "NameMapError"),
    "NativeModelError": ("xinit.native", "NativeModelError"),
    "CheckpointError": ("xinit.checkpoints.errors", "CheckpointError"),
    "UnsafeCheckpointError": ("xinit.checkpoints.errors", "UnsafeCheckpointError"),
    "CheckpointWriteError": ("xinit.checkpoints.errors", "CheckpointWriteError"),
    "InsufficientMemoryError": ("xinit.memory", "InsufficientMemoryError"),
    "DiagnoseError": ("xinit._diagnose", "DiagnoseError"),
    "LSUVError": ("xinit._lsuv", "LSUVError"),
    "ShardingError": ("xinit.backends.common.sharding", "ShardingError"),
    "SpecFormatError": ("xinit.spec_json", "SpecFormatError"),
    "ExportError": ("xinit.codegen", "ExportError"),
    "TraceError": ("xinit.tracing", "TraceError"),
}


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        mod = importlib.import_module(module)
        value = mod if attr is None else getattr(mod, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'xinit' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])


__all__ = ["__version__", *_LAZY]
