"""Checks of a method's parameter values: type from the default, range from declared constraints.

A value must have the type of the parameter's default: ``int`` (not ``bool``), ``float`` (an
``int`` is fine), ``bool``, ``str``, or a tuple/list whose elements have the type of the
default's elements. A parameter whose default is ``None`` takes ``None`` or a value of the
type its annotation names (``int | None``: an ``int``). Finite numbers only.

Ranges and options come from constraints, short strings keyed by parameter name:

* ``">=1"``, ``">0"``, ``">=0, <=1"``: comparisons that must all hold (on every element of a
  tuple or list);
* ``"odd"``: an odd integer (with comparisons: ``">=1, odd"``);
* ``"relu|linear"``: the allowed values of a string parameter.

:data:`GENERIC_CONSTRAINTS` apply to every method that has a parameter of that name;
:attr:`methods.base.Method.param_constraints` adds to and overrides them, a subclass's
entries adding to those of its bases.
"""

from __future__ import annotations

import math
import operator
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Constraints of parameter names common to many methods (applied where a method has them).
GENERIC_CONSTRAINTS: dict[str, str] = {
    "epochs": ">=1", "batch_size": ">=1", "lr": ">0", "patience": ">=1", "n_components": ">=1",
    "n_sources": ">=1", "n_encoders": ">=1", "hidden": ">=1", "latent": ">=1", "channels": ">=1",
    "kernel_size": ">=1", "max_rows": ">=1", "max_iter": ">=1", "weight_decay": ">=0",
    "grad_clip": ">=0", "seed": ">=0",
}

_COMPARE = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
_BOUND = re.compile(r"(>=|<=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)")
_KIND_NAMES = {bool: "True or False", int: "an integer", float: "a number", str: "a string", tuple: "a list or tuple"}


@dataclass(frozen=True)
class Constraint:
    """A parsed constraint string (see the module docstring)."""

    options: tuple[str, ...] = ()
    bounds: tuple[tuple[str, str], ...] = ()
    odd: bool = False

    def problem(self, value: Any) -> str | None:
        """What ``value`` (one number or string) must be and is not, e.g. ``"must be >= 1"``; ``None`` if it fits."""
        if self.options:
            return None if value in self.options else f"must be one of {', '.join(self.options)}"
        for op, bound in self.bounds:
            if not _COMPARE[op](value, float(bound)):
                return f"must be {op} {bound}"
        if self.odd and value % 2 != 1:
            return "must be odd"
        return None


def parse_constraint(spec: str) -> Constraint:
    """Parse ``">=1"``, ``">0, <=1"``, ``">=1, odd"`` or ``"a|b|c"``.

    Raises
    ------
    ValueError
        If a clause of a range constraint is neither a comparison with a number nor ``odd``.
    """
    clauses = [c.strip() for c in spec.split(",")]
    if not clauses[0].startswith(("<", ">", "odd")):
        return Constraint(options=tuple(o.strip() for o in spec.split("|")))
    bounds = []
    for clause in clauses:
        match = _BOUND.fullmatch(clause)
        if clause != "odd" and not match:
            raise ValueError(f"cannot read parameter constraint {spec!r} (write e.g. '>=1', '>0, <=1', '>=1, odd' or 'a|b')")
        if match:
            bounds.append((match[1], match[2]))
    return Constraint(bounds=tuple(bounds), odd="odd" in clauses)


def constraints_for(method: type) -> dict[str, Constraint]:
    """The constraints of a method class's parameters: generic ones, then its classes' own (base first)."""
    names = set(method.param_names())
    specs = {name: spec for name, spec in GENERIC_CONSTRAINTS.items() if name in names}
    for klass in reversed(method.__mro__):
        specs.update(vars(klass).get("param_constraints", {}))
    return {name: parse_constraint(spec) for name, spec in specs.items()}


def _kind(example: Any) -> type | None:
    """``bool``, ``int``, ``float``, ``str`` or ``tuple`` (for lists too), or ``None`` (unchecked)."""
    if isinstance(example, (tuple, list)):
        return tuple
    return type(example) if type(example) in (bool, int, float, str) else None


def _annotated_kind(method: type, param: str) -> type | None:
    """The kind an annotation such as ``int | None`` names, or ``None`` when it names no single one."""
    try:
        hint = typing.get_type_hints(method.__init__).get(param)
    except (NameError, TypeError):
        return None
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    hint = args[0] if len(args) == 1 else hint
    origin = typing.get_origin(hint) or hint
    return tuple if origin in (tuple, list) else origin if origin in (bool, int, float, str) else None


def _fits(value: Any, kind: type | None) -> bool:
    """Whether ``value`` is of ``kind`` (an int is a float; a bool is no number)."""
    if kind is None:
        return True
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return _kind(value) is kind


def _type_problem(param: str, value: Any, kind: type | None) -> str | None:
    """``"lr must be a number, got 'abc' (str)"`` or ``None``."""
    if not _fits(value, kind):
        return f"{param} must be {_KIND_NAMES[kind]}, got {value!r} ({type(value).__name__})"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{param} must be a finite number, got {value!r}"
    return None


def check_value(method: type, param: str, value: Any) -> str | None:
    """What is wrong with ``value`` for parameter ``param`` of ``method``, or ``None``.

    Parameters
    ----------
    method : type
        A :class:`methods.base.Method` subclass.
    param : str
        One of its ``__init__`` parameters.
    value : Any
        The value to check (as parsed from ``--set`` or set by a profile).

    Returns
    -------
    str or None
        One phrase naming the parameter, e.g. ``"epochs must be >= 1"``.
    """
    default = method.default_params().get(param)
    if default is None and value is None:
        return None
    kind = _kind(default) if default is not None else _annotated_kind(method, param)
    problem = _type_problem(param, value, kind)
    if problem or kind is None:
        return problem
    items = list(value) if kind is tuple else [value]
    if kind is tuple:
        if default and not items:
            return f"{param} must not be empty"
        element_kind = _kind(default[0]) if default and len({_kind(d) for d in default}) == 1 else None
        problem = next(filter(None, (_type_problem(f"every element of {param}", v, element_kind) for v in items)), None)
        if problem:
            return problem
    constraint = constraints_for(method).get(param)
    if constraint is None or kind is bool:
        return None
    for item in items:
        problem = constraint.problem(item)
        if problem:
            return f"{param} {problem}" if kind is not tuple else f"every element of {param} {problem}, got {item!r}"
    return None


def param_problems(method: type, params: Mapping[str, Any]) -> dict[str, str]:
    """Every bad value of ``params``: parameter name -> what is wrong (see :func:`check_value`)."""
    problems = {name: check_value(method, name, value) for name, value in params.items()}
    return {name: problem for name, problem in problems.items() if problem}
