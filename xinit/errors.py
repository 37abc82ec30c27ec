"""``XinitError``, the root of every error xinit raises on purpose, and the errors of no one module.

Each error class also keeps the builtin base users caught before the root existed (a
``SpecError`` is still a ``ValueError``), so ``except ValueError`` keeps working. The CLI
catches ``XinitError`` (and ``OSError``) and prints one line; anything else is a bug and keeps
its traceback. This module imports nothing, so every other module may import it.
"""

from __future__ import annotations


class XinitError(Exception):
    """Something xinit cannot do as asked; the message says what, where and why."""


class ArgumentError(XinitError, ValueError):
    """An argument xinit cannot use: a value out of range, of the wrong form or unknown."""


class UnknownArgumentError(ArgumentError, TypeError):
    """A keyword a function does not take (a zoo model's, say); a ``TypeError`` as Python's own."""


class UnknownNameError(XinitError, KeyError):
    """A name that is no zoo model, preset or layer kind; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class FrameworkError(XinitError, ValueError):
    """A framework name that is not one of ``xinit.backends.FRAMEWORKS``."""


class FrameworkNotInstalledError(XinitError, ImportError):
    """A framework xinit needs for the request is not installed (the message names the extra)."""


class InitializerError(XinitError, ValueError):
    """An initializer that cannot be made or resolved: a bad argument, shape, role or
    expression (``xinit.init.get``)."""


class DefaultsError(XinitError, ValueError):
    """A question the defaults catalogue cannot answer: an unknown layer, dims the layer does
    not have, or a parameter a framework's layer lacks."""


__all__ = [
    "XinitError",
    "ArgumentError",
    "UnknownArgumentError",
    "UnknownNameError",
    "FrameworkError",
    "FrameworkNotInstalledError",
    "InitializerError",
    "DefaultsError",
]
