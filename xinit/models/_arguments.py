"""Zoo functions refuse an unknown keyword argument, naming it and every accepted one."""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable
from typing import TypeVar

from ..errors import UnknownArgumentError

F = TypeVar("F", bound=Callable)


def _named(fn: Callable) -> list[str]:
    kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [p.name for p in inspect.signature(fn).parameters.values() if p.kind not in kinds]


def zoo_model(
    fn: F | None = None, *, forwards: Callable | None = None, fixed: tuple[str, ...] = ()
) -> F | Callable[[F], F]:
    """Decorate a zoo function: a keyword it does not take is an ``UnknownArgumentError`` (a
    ``TypeError``) naming it and the accepted ones; its ``**kw`` go to ``forwards``, which
    accepts its names less ``fixed`` (those the zoo function sets itself)."""

    def wrap(fn: F) -> F:
        own = _named(fn)
        extra = [n for n in (_named(forwards) if forwards else ()) if n not in (*own, *fixed)]
        accepted = own + extra

        @functools.wraps(fn)
        def checked(*args, **kwargs):
            unknown = [k for k in kwargs if k not in accepted]
            if unknown:
                close = difflib.get_close_matches(unknown[0], accepted, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise UnknownArgumentError(
                    f"{fn.__name__}(): unknown argument {', '.join(map(repr, unknown))}{hint} "
                    f"(it accepts: {', '.join(accepted)})"
                )
            return fn(*args, **kwargs)

        return checked  # type: ignore[return-value]

    return wrap(fn) if fn is not None else wrap
