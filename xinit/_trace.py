"""``xinit.trace``: a native model's forward computation as a spec (see :mod:`xinit.tracing`).

The framework's tracer lives in ``backends/<fw>/tracing.py`` (``trace(model, inputs,
**options) -> spec``); this module only finds it from the model's class.
"""

from __future__ import annotations

from typing import Any


def trace(model: Any, example_input: Any, **options: Any) -> Any:
    """The spec of ``model`` (a torch ``nn.Module``, a ``paddle.nn.Layer`` or a Flax NNX
    module) as it runs on ``example_input`` (an array or a tuple of arrays, batch first):
    a Graph of its layers named by their module paths, so the spec's state keys are the
    model's own. Python control flow is followed for this input, as ``torch.jit.trace``
    does; the batch size stays free. Raises :class:`~xinit.tracing.TraceError` listing every
    unknown layer class and operation with its path and source line."""
    from xinit.backends import backend_of, part

    adapter = backend_of(model)
    return part(adapter.name, "tracing").trace(model, example_input, **options)


__all__ = ["trace"]
