"""Nova's extra-spec operators: ``s==``, ``<in>``, ``<or>``, ``>=``, ``==`` ..."""

from __future__ import annotations

import operator


def _num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _numeric(op):
    def check(value, want):
        a, b = _num(value), _num(want)
        return a is not None and b is not None and op(a, b)
    return check


OPS = {
    "=": _numeric(operator.ge),  # "= 4" means "at least 4" in Nova
    "==": _numeric(operator.eq),
    "!=": _numeric(operator.ne),
    ">=": _numeric(operator.ge),
    "<=": _numeric(operator.le),
    "s==": lambda v, w: str(v) == w,
    "s!=": lambda v, w: str(v) != w,
    "s<": lambda v, w: str(v) < w,
    "s<=": lambda v, w: str(v) <= w,
    "s>": lambda v, w: str(v) > w,
    "s>=": lambda v, w: str(v) >= w,
    "<in>": lambda v, w: w in str(v),
    "<all-in>": lambda v, w: all(x in (v if isinstance(v, (list, set)) else str(v))
                                 for x in w.split()),
}


def match(value, req: str) -> bool:
    words = req.split()
    if not words:
        return str(value) == req
    op = words[0]
    if op == "<or>":
        return any(str(value) == w for w in words[1::2])
    if op in OPS and len(words) >= 2:
        return OPS[op](value, " ".join(words[1:]))
    return str(value) == req
