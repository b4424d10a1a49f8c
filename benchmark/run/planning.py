"""Planning a run: method selection, parameter resolution and cell identities.

A cell is one (suite, method, seed, profile) combination with its resolved parameters;
its fingerprint changes whenever anything that determines its result changes.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import methods
from benchmark.core.errors import BenchmarkError
from benchmark.core.keys import digest as _digest
from benchmark.core.keys import jsonable as _jsonable
from benchmark.run.parameter_checks import param_problems
from benchmark.suites import get_suite

CELL_FORMAT_VERSION = 1


def parse_overrides(items: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``["meae.epochs=5", "meae.lambda_mix=0.1"]`` -> ``{"meae": {"epochs": 5, "lambda_mix": 0.1}}``.

    Values are read as Python literals (numbers, tuples, booleans) and fall
    back to strings. Unknown methods or parameters raise :class:`BenchmarkError`.
    """
    registry = methods.discover()
    overrides: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        method_name, dot, param = key.strip().partition(".")
        if not sep or not dot or not param:
            raise BenchmarkError(f"--set expects METHOD.PARAM=VALUE, got '{item}'")
        if method_name not in registry:
            raise BenchmarkError(f"--set names unknown method '{method_name}' (registered: {', '.join(registry)})")
        allowed = registry[method_name].param_names()
        if param not in allowed:
            raise BenchmarkError(
                f"--set: method '{method_name}' has no parameter '{param}' (parameters: {', '.join(allowed)})"
            )
        try:
            value = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            value = raw.strip()
        overrides.setdefault(method_name, {})[param] = value
    return overrides


@dataclass(frozen=True)
class CellSpec:
    """A planned cell with its resolved parameters."""

    suite: str
    profile: str
    method: str
    seed: int
    params: dict[str, Any]
    overrides: dict[str, Any] = field(default_factory=dict)
    time_limit: float | None = None
    code_versions: dict[str, int] = field(default_factory=dict)
    model_of: CellSpec | None = None
    """The cell of another suite whose fitted model this cell also evaluates on its own data
    (sim-to-real: the same method, seed and parameters on the suite this one is a data variant
    of, :class:`benchmark.suites.base.DataVariant`); the runner fits or reloads that model on
    that suite's default data. Not part of the fingerprint: that data's key is part of this
    cell's data key."""

    @property
    def label(self) -> str:
        """Leaderboard name: the method, plus its overrides if any."""
        if not self.overrides:
            return self.method
        tags = ",".join(f"{k}={v}" for k, v in sorted(self.overrides.items()))
        return f"{self.method}[{tags}]"

    @property
    def cell_id(self) -> str:
        """File name of the cell (stable across reruns with the same overrides)."""
        suffix = f"__{_digest(self.overrides, 8)}" if self.overrides else ""
        return f"{self.method}__seed{self.seed}{suffix}"

    def fingerprint(self, data_key: str, with_time_limit: bool = True) -> str:
        """Changes whenever anything that determines the result changes (a time limit included).

        ``with_time_limit=False`` gives the *training key*: equal for the cells of one training
        run cut at different time limits (see :mod:`benchmark.run.resume`).
        """
        neutral = methods.get(self.method).neutral_params
        params = {k: v for k, v in self.params.items() if not (k in neutral and neutral[k] == v)}
        identity = {
            "suite": self.suite, "profile": self.profile, "method": self.method, "seed": self.seed,
            "params": params, "data": data_key, "format": CELL_FORMAT_VERSION,
        }
        if self.time_limit is not None and with_time_limit:
            identity["time_limit"] = self.time_limit
        if any(v != 1 for v in self.code_versions.values()):  # version 1: the code before versions existed
            identity["code"] = self.code_versions
        return _digest(identity, 24)


def resolve_methods(suite: str, names: list[str] | None, device: str) -> tuple[list[str], list[dict]]:
    """Method names to run on ``suite`` and the skipped ones with a reason.

    A method runs where what it declares (modality, inputs, supervision, GPU need) fits what
    the suite offers (:meth:`benchmark.suites.base.Suite.method_fits`); every other method is
    listed as skipped with the reason. ``names=None`` (or ``["all"]``) means every registered
    method. Unknown names raise :class:`BenchmarkError`.
    """
    registry = methods.discover()
    explicit = names is not None and names != ["all"]
    chosen = names if explicit else list(registry)
    unknown = [n for n in chosen if n not in registry]
    if unknown:
        missing = methods.unavailable()
        hints = [f"{n} (failed to import: {missing[n]})" for n in unknown if n in missing]
        raise BenchmarkError(
            f"unknown method '{unknown[0]}' (registered: {', '.join(registry)})"
            + (f"; unavailable: {'; '.join(hints)}" if hints else "")
        )
    target = get_suite(suite)
    run, skipped = [], []
    for name in chosen:
        reason = target.method_fits(registry[name], device)
        if reason is None:
            run.append(name)
        else:
            skipped.append({"method": name, "reason": reason})
    return run, skipped


def _shown(value: Any) -> str:
    """A value as it is typed after ``--set NAME=`` (strings unquoted)."""
    return value if isinstance(value, str) else repr(value)


def checked_params(cls: type[methods.Method], suite: str, profile: str, own: dict[str, Any]) -> dict[str, Any]:
    """A method's parameters on a suite and profile, defaults < profile < ``own`` overrides, checked.

    Every value is checked (:mod:`benchmark.run.parameter_checks`: type from the default, range
    from the constraints); the first bad one raises :class:`BenchmarkError` saying where it
    came from, e.g. ``--set meae.epochs=-1: epochs must be >= 1``.
    """
    target = get_suite(suite)
    from_profile = cls.profile_params(target.method_settings_suite, profile, target.modality)
    params = {**cls.default_params(), **from_profile, **own}
    for param, problem in param_problems(cls, params).items():
        if param in own:
            raise BenchmarkError(f"--set {cls.name}.{param}={_shown(own[param])}: {problem}")
        source = f"{suite}/{profile} profile" if param in from_profile else "default"
        raise BenchmarkError(f"{cls.name}'s {source} sets {param}={_shown(params[param])}: {problem} (a bug in {cls.__module__})")
    return params


def check_planned_params(
    suite_names: Iterable[str], profile: str, method_names: list[str] | None, overrides: dict[str, dict[str, Any]],
) -> None:
    """Check the parameters of every method on every suite before anything runs.

    ``method_names=None`` (or ``["all"]``) means every registered method; unknown names are
    left to :func:`resolve_methods` to report. Raises :class:`BenchmarkError` (see
    :func:`checked_params`).
    """
    registry = methods.discover()
    names = registry if method_names in (None, ["all"]) else [n for n in method_names if n in registry]
    for suite in suite_names:
        for name in names:
            checked_params(registry[name], suite, profile, overrides.get(name, {}))


#: The seed under which a deterministic method's single cell is recorded.
DETERMINISTIC_SEED = 0


def plan_cells(
    suite: str, profile: str, method_names: list[str], seeds: list[int], overrides: dict[str, dict[str, Any]],
    time_limit: float | None = None,
) -> list[CellSpec]:
    """Every (method, seed) cell with parameters = defaults < profile < overrides < seed.

    A method without a ``seed`` parameter is deterministic: it gets one cell, recorded as
    seed 0 whatever seeds are asked for, since every seed would give the same numbers (a run
    of ``--seeds 1,2`` then reuses the cell of a run of ``--seeds 0``). ``time_limit``
    (seconds of training per cell) becomes part of every cell's identity. A bad parameter value
    raises :class:`BenchmarkError` (see :func:`checked_params`).
    """
    registry = methods.discover()
    target = get_suite(suite)
    scoring_version = getattr(target, "scoring_version", 1)
    cells = []
    for name in method_names:
        cls = registry[name]
        code = {"method": getattr(cls, "version", 1), "suite_scoring": scoring_version}
        own = overrides.get(name, {})
        base = checked_params(cls, suite, profile, own)
        for seed in seeds if "seed" in base else [DETERMINISTIC_SEED]:
            params = {**base, "seed": seed} if "seed" in base else base
            cells.append(with_model_of(CellSpec(suite, profile, name, seed, _jsonable(params), dict(own), time_limit, code)))
    return cells


def with_model_of(spec: CellSpec) -> CellSpec:
    """``spec`` with its planning dependency: on a suite that evaluates the models of the suite it
    is a data variant of (``DataVariant.shares_models``), a method that learns also gets that
    suite's cell of the same method, seed and parameters (:attr:`CellSpec.model_of`)."""
    variant = get_suite(spec.suite).variant
    if variant is None or not variant.shares_models or not methods.get(spec.method).learns:
        return spec
    model_suite = get_suite(variant.of)
    code = {**spec.code_versions, "suite_scoring": getattr(model_suite, "scoring_version", 1)}
    return replace(spec, model_of=replace(spec, suite=model_suite.name, code_versions=code, model_of=None))
