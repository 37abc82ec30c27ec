"""The functional ops every framework's arrays compute alike: the arithmetic merges (Python
operators, which broadcast as numpy's) and the ops a spec computes with operators and
indexing alone (a number, a split, a slice). Each framework's table of functional ops
(``lowerings.FUNCTIONS``) starts from :data:`ARRAY_FUNCTIONS`."""

from __future__ import annotations

import operator

# the arithmetic merges: kind -> the binary operator (arrays broadcast it as numpy)
ARITHMETIC = {
    "add": operator.add,
    "mul": operator.mul,
    "sub": operator.sub,
    "div": operator.truediv,
}

# kind -> (spec, *inputs) -> output, with operators and basic indexing only
ARRAY_FUNCTIONS = {
    "scalar_op": lambda s, x: s.apply(x),
    "split": lambda s, x: s.parts(x),
    "slice": lambda s, x: x[s.index(x.ndim)],
}
