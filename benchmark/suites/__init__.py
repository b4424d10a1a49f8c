"""Suites, found by location: one module per suite in this package.

Every module here whose name does not start with ``_`` (and is not ``base``) is imported
by :func:`discover`; each :class:`~benchmark.suites.base.Suite` subclass it defines with a
non-empty ``name`` becomes a suite. A module that fails to import is listed by
:func:`unavailable` with the reason (``run_benchmark.py --list`` shows it), never dropped
silently. Adding a suite is adding one file.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from benchmark.suites.base import (
    BenchmarkError,
    CellOutcome,
    DataHandle,
    DataVariant,
    Suite,
    SuiteOptions,
)

__all__ = [
    "BenchmarkError", "CellOutcome", "DataHandle", "DataVariant", "Suite", "SuiteOptions",
    "discover", "suites", "get_suite", "unavailable", "register_suite",
]

_INTERNAL_MODULES = {"base"}
_SUITES: dict[str, Suite] = {}
_FAILED: dict[str, str] = {}
_DISCOVERED = False


def register_suite(suite: Suite) -> Suite:
    """Add a suite instance by hand (suites in this package need no call)."""
    if not suite.name:
        raise TypeError(f"{type(suite).__qualname__} must set a non-empty `name`")
    existing = _SUITES.get(suite.name)
    if existing is not None and type(existing).__qualname__ != type(suite).__qualname__:
        raise TypeError(f"suite name '{suite.name}' is used by {type(existing)} and {type(suite)}")
    _SUITES[suite.name] = suite
    return suite


def discover() -> dict[str, Suite]:
    """Import every suite module once; return the suites by name."""
    global _DISCOVERED
    if not _DISCOVERED:
        for info in pkgutil.iter_modules(__path__):
            if info.name in _INTERNAL_MODULES or info.name.startswith("_"):
                continue
            try:
                module = importlib.import_module(f"{__name__}.{info.name}")
            except ImportError as error:
                _FAILED[info.name] = f"{type(error).__name__}: {error}"
                continue
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if issubclass(cls, Suite) and cls.__module__ == module.__name__ and cls.name and not inspect.isabstract(cls):
                    if cls.name not in _SUITES:
                        register_suite(cls())
        _DISCOVERED = True
    return dict(_SUITES)


def suites() -> dict[str, Suite]:
    """The available suites by name (see :func:`discover`)."""
    return discover()


def unavailable() -> dict[str, str]:
    """Suite modules that could not be imported, with the reason."""
    discover()
    return dict(_FAILED)


def get_suite(name: str) -> Suite:
    """The suite called ``name``; ``KeyError`` naming the available (and unavailable) suites otherwise."""
    known = discover()
    if name not in known:
        missing = unavailable()
        hint = f"; unavailable: {', '.join(f'{k} ({v})' for k, v in missing.items())}" if missing else ""
        raise KeyError(f"unknown suite '{name}' (available: {', '.join(known)}){hint}")
    return known[name]
