"""Separation methods, one file per method family.

Every module in this package is imported by :func:`discover`; classes decorated
with :func:`methods.base.register` become available by name. Subpackages are toolkits the
methods are built from (:mod:`methods.nn` for torch networks, :mod:`methods.decomposition_tools`
for scikit-learn decompositions) and are not searched for methods. A module that
fails to import (a missing optional dependency, say) is reported by
:func:`unavailable` instead of stopping the benchmark.
"""

from __future__ import annotations

import importlib
import pkgutil

from methods.base import Method, RunContext, Split, register, registry

__all__ = ["Method", "RunContext", "Split", "register", "registry", "discover", "get", "unavailable"]

_INTERNAL_MODULES = {"base"}
_FAILED: dict[str, str] = {}
_DISCOVERED = False


def discover() -> dict[str, type[Method]]:
    """Import every method module once; return the registry by name."""
    global _DISCOVERED
    if not _DISCOVERED:
        for info in pkgutil.iter_modules(__path__):
            if info.ispkg or info.name in _INTERNAL_MODULES or info.name.startswith("_"):
                continue
            try:
                importlib.import_module(f"{__name__}.{info.name}")
            except ImportError as error:
                _FAILED[info.name] = f"{type(error).__name__}: {error}"
        _DISCOVERED = True
    return registry()


def unavailable() -> dict[str, str]:
    """Method modules that could not be imported, with the reason."""
    discover()
    return dict(_FAILED)


def get(name: str) -> type[Method]:
    """The registered method called ``name``; ``KeyError`` with the known names otherwise."""
    methods = discover()
    if name not in methods:
        known = ", ".join(methods) or "none"
        raise KeyError(f"unknown method '{name}' (registered: {known})")
    return methods[name]
