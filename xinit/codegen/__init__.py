"""Code export: a spec as one standalone source file for PyTorch, Paddle or Flax.

The neutral part lives here (which containers become classes and with which arguments,
the forward statements' order, the init plan's rows, the layout of the lines); each
framework's ``backends/<fw>/codegen.py`` says how its layers are written (one emitter per
layer kind) and how its initialisers are called.
"""

from __future__ import annotations

from .structure import ExportError, camel


def export_code(
    spec,
    framework: str,
    *,
    class_name: str | None = None,
    policy=None,
    source: str | None = None,
) -> str:
    """The source of one Python module defining ``class_name`` (default ``Model``) for
    ``framework``, with the state-dict keys of ``xinit.build(spec, framework)`` and an
    ``init_weights()`` that draws the ``policy``'s laws (the spec's own initializers when
    None) with the framework's own initialisers. ``source`` names what the spec came from
    in the file's header. The same spec always gives the same text."""
    from xinit import backends

    from .writer import ModelWriter

    if isinstance(spec, str):
        from xinit import models

        source = source or spec
        spec = models.get(spec)
    if not hasattr(spec, "kind"):
        raise ExportError(f"export_code: pass a spec or a zoo model's name; got {spec!r}")
    name = class_name or (camel(source) if source and camel(source) else "Model")
    if not name.isidentifier():
        raise ExportError(f"export_code: class_name {name!r} is no Python name")
    code = backends.part(framework, "codegen").CODEGEN
    return ModelWriter(spec, code, name, policy).write(source or "a spec", _layout(spec))


def _layout(spec) -> str:
    """The input the model takes, in words."""
    from xinit.blocks import input_channels

    channels = input_channels(spec)
    if channels is None:
        return "the neutral layout of its first layer"
    return f"{channels} channels first, (N, {channels}, ...)"


__all__ = ["export_code", "ExportError"]
