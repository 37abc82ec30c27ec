"""Line layout of the exported code as ``ruff format`` writes it (line length 100): a call
that does not fit is opened after its bracket, its arguments on one indented line if they
fit there, else one per line with a trailing comma."""

from __future__ import annotations

WIDTH = 100
_PAIRS = {"(": ")", "[": "]", "{": "}"}


def split_top(text: str) -> list[str]:
    """``text`` split at the commas outside brackets and strings."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in _PAIRS:
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    tail = text[start:].strip()
    if tail:
        parts.append(tail)
    return parts


def _outer_call(expr: str) -> tuple[str, str, str] | None:
    """(head, inside, closing) when ``expr`` ends with a bracket opened after its head at
    depth 0: ``f(a, b)`` -> ("f(", "a, b", ")")."""
    if not expr or expr[-1] not in ")]}":
        return None
    depth, quote = 0, ""
    for i in range(len(expr) - 1, -1, -1):
        ch = expr[i]
        if quote:
            if ch == quote:
                quote = ""
            continue
        if ch in "\"'":
            quote = ch
        elif ch in ")]}":
            depth += 1
        elif ch in "([{":
            depth -= 1
            if depth == 0:
                return expr[: i + 1], expr[i + 1 : -1], expr[-1]
    return None


def call_lines(prefix: str, expr: str, indent: int, tail: str = "") -> list[str]:
    """``prefix + expr + tail`` as lines indented by ``indent`` spaces, wrapped as ruff
    does (``tail``: what follows the closing bracket, as a def's colon)."""
    pad = " " * indent
    line = pad + prefix + expr + tail
    if len(line) <= WIDTH:
        return [line]
    if expr.startswith("*[") and expr.endswith("]") and " for " in expr:
        return _starred_lines(prefix, expr[2:-1], indent, tail)
    parts = _outer_call(expr)
    if parts is None:
        return [line]
    head, inside, close = parts
    callee = head[:-1]
    chained = callee.endswith(")") and _outer_call(callee) is not None
    if chained and len(pad + prefix + head) > WIDTH:  # f(a)(b), f(a)( too long: split f's call
        return call_lines(prefix, callee, indent, tail=head[-1] + inside + close + tail)
    args = split_top(inside)
    inner = " " * (indent + 4)
    joined = inner + ", ".join(args)
    if len(joined) <= WIDTH and not (len(args) == 1 and args[0].startswith("*[")):
        return [pad + prefix + head, joined, pad + close + tail]
    out = [pad + prefix + head]
    for arg in args:
        out += call_lines("", arg, indent + 4, tail=",")
    return [*out, pad + close + tail]


def _starred_lines(prefix: str, inner: str, indent: int, tail: str) -> list[str]:
    """``*[item for _ in range(n)]`` too long for its line, as ruff writes it: the body on a
    line of its own if it fits there, else the item (wrapped) and its ``for`` on their own."""
    pad, inner_pad = " " * indent, " " * (indent + 4)
    if len(inner_pad) + len(inner) <= WIDTH:
        return [f"{pad}{prefix}*[", inner_pad + inner, f"{pad}]{tail}"]
    item, _, loop = inner.rpartition(" for ")
    body = [*call_lines("", item, indent + 4), f"{inner_pad}for {loop}"]
    return [f"{pad}{prefix}*[", *body, f"{pad}]{tail}"]


def statement(text: str, indent: int) -> list[str]:
    """One statement (``target = call(...)`` or a bare call) laid out."""
    return call_lines("", text, indent)


__all__ = ["call_lines", "statement", "split_top", "WIDTH"]
