"""``xinit.export_code``: a spec as one standalone source file for a framework (the neutral
part in :mod:`xinit.codegen`, the framework's in ``backends/<fw>/codegen.py``)."""

from __future__ import annotations

from .codegen import ExportError, input_layout, model_class_name


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

    from .codegen.writer import ModelWriter

    if isinstance(spec, str):
        from xinit import models

        source = source or spec
        spec = models.get(spec)
    if not hasattr(spec, "kind"):
        raise ExportError(f"export_code: pass a spec or a zoo model's name; got {spec!r}")
    name = class_name or (model_class_name(source) if source else "Model")
    if not name.isidentifier():
        raise ExportError(f"export_code: class_name {name!r} is no Python name")
    code = backends.part(framework, "codegen").CODEGEN
    return ModelWriter(spec, code, name, policy).write(source or "a spec", input_layout(spec))


__all__ = ["export_code"]
