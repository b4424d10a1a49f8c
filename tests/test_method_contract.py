"""The generic method contract (benchopt-style): every registered method on every suite it declares.

Parametrized over ``methods.discover()`` x ``benchmark.suites.suites()``; a new method
file or suite is picked up with no edit here.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
import torch

import methods
from benchmark.runner import _jsonable
from benchmark.suites import SuiteOptions, suites
from methods.base import Method, RunContext

REGISTRY = methods.discover()
SUITES = suites()
PROFILES = ("tiny", "quick", "paper")
KNOWN_BUGS: dict[tuple[str, str], str] = {}
CELLS = [
    pytest.param(
        name, suite, id=f"{name}-{suite}",
        marks=[pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[name, suite])] if (name, suite) in KNOWN_BUGS else [],
    )
    for name, cls in REGISTRY.items()
    for suite in cls.suites
    if suite in SUITES
]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """``prepared(suite_name)`` -> the suite's tiny-profile data handle, prepared once per module."""
    cache = tmp_path_factory.mktemp("contract_cache")
    handles = {}

    def get(suite_name: str):
        if suite_name not in handles:
            handles[suite_name] = SUITES[suite_name].prepare("tiny", SuiteOptions(cache_dir=cache, progress=False))
        return handles[suite_name]

    return get


def _nan_reason(row: dict, details: dict) -> str | None:
    """Why a score may legitimately be NaN: an explicit reason, an empty count, or no
    candidate assigned to the target."""
    for key in ("reason", "note", "why"):
        if row.get(key):
            return str(row[key])
    if row.get("n") == 0:
        return "nothing to score (n=0)"
    by_source = (details.get("assignment") or {}).get("by_source") or {}
    if by_source.get(row.get("target")) == -1:
        return f"no candidate was assigned to {row.get('target')}"
    return None


def test_registry_and_suites_are_not_empty():
    assert {"meae", "supervised_ae", "mixture"} <= set(REGISTRY)
    assert "triangles" in SUITES
    assert CELLS


@pytest.mark.parametrize("name,suite_name", CELLS)
def test_method_runs_on_suite(name, suite_name, prepared):
    cls = REGISTRY[name]
    suite = SUITES[suite_name]
    params = {**cls.default_params(), **cls.profile_params(suite_name, "tiny")}
    if "seed" in params:
        params["seed"] = 0
    fitted: list[tuple[Method, object]] = []

    def factory() -> Method:
        method = cls(**params).with_context(RunContext(device="cpu"))
        original_fit = method.fit

        def fit(train, valid=None):
            if not cls.supervised:
                assert train.targets is None, f"{name} is unsupervised but saw train.targets"
                assert valid is None or valid.targets is None, f"{name} is unsupervised but saw valid.targets"
            result = original_fit(train, valid)
            fitted.append((method, train))
            return result

        method.fit = fit
        return method

    outcome = suite.run_cell(factory, prepared(suite_name), None)

    assert fitted, "run_cell never fitted a method"
    for _, train in fitted:
        if cls.supervised:
            assert train.targets is not None and train.targets.shape[0] == len(train)

    # scores: non-empty, well-formed, finite or NaN with a reason
    assert outcome.scores, "no scores"
    for row in outcome.scores:
        assert {"input", "target", "metric", "value"} <= set(row), row
        value = float(row["value"])
        if math.isnan(value):
            assert _nan_reason(row, outcome.details), f"NaN score without a reason: {row}"
        else:
            assert math.isfinite(value), row
    identities = [tuple(sorted((k, str(v)) for k, v in r.items() if k not in ("value", "n"))) for r in outcome.scores]
    assert len(identities) == len(set(identities)), "duplicate score rows"
    json.dumps(_jsonable(outcome.details), default=str)  # details must be JSON-friendly
    assert all(v >= 0 for v in outcome.timings.values())
    if suite_name == "mesa":
        # The synthetic cohort always has a respiration to find: a run whose every rate is NaN
        # ("coverage 0.0" is finite) must not pass.
        coverage = [r["value"] for r in outcome.scores if r["metric"] == "coverage"]
        maes = [r["value"] for r in outcome.scores if r["metric"] == "mae_bpm"]
        assert coverage and max(coverage) > 0, f"{name}: no test segment got a rate"
        assert any(math.isfinite(v) for v in maes), f"{name}: no finite rate MAE"

    # candidates: (n, K, *signal_shape), K >= 1, float32, finite
    for method, train in fitted:
        n = min(3, len(train))
        mixtures = np.asarray(train.mixtures[:n], dtype=np.float32)
        candidates = method.separate(mixtures)
        assert candidates.ndim == mixtures.ndim + 1
        assert candidates.shape[0] == n and candidates.shape[1] >= 1
        assert candidates.shape[2:] == train.signal_shape
        assert candidates.dtype == np.float32
        # A candidate row is either fully finite or fully NaN ("no estimate for this segment").
        finite = np.isfinite(candidates.reshape(*candidates.shape[:2], -1))
        assert np.all(finite.all(axis=-1) | (~finite).all(axis=-1))
        assert finite.any()


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_class_attributes(name):
    cls = REGISTRY[name]
    assert cls.name == name
    assert isinstance(cls.description, str) and cls.description.strip()
    assert isinstance(cls.suites, tuple) and cls.suites and all(isinstance(s, str) and s for s in cls.suites)
    assert isinstance(cls.supervised, bool)
    assert cls.modalities and set(cls.modalities) <= {"1d", "2d"}
    assert cls.device_support in ("none", "optional", "required")
    inputs = getattr(cls, "inputs", None)
    assert inputs is None or (isinstance(inputs, tuple) and inputs and all(isinstance(i, str) for i in inputs))


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_init_does_no_work(name):
    cls = REGISTRY[name]
    param_names = cls.param_names()
    defaults = cls.default_params()
    assert set(defaults) == set(param_names), "every parameter needs a default (the runner builds from defaults)"
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        method = cls()
        best = min(best, time.perf_counter() - start)
    assert best < 0.05, f"{name}() took {best * 1000:.1f} ms"
    assert set(vars(method)) == set(param_names), "__init__ must only store its parameters"
    for key, value in defaults.items():
        assert getattr(method, key) == value


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_params_round_trip(name):
    cls = REGISTRY[name]
    method = cls()
    params = method.get_params()
    assert list(params) == cls.param_names()
    rebuilt = cls(**params)
    assert rebuilt.get_params() == params
    assert type(rebuilt) is cls
    json.dumps(_jsonable(params))  # parameters enter cell fingerprints and config.json
    assert repr(method).startswith(f"{cls.__name__}(")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_profile_params_are_parameters(name):
    cls = REGISTRY[name]
    allowed = set(cls.param_names())
    for suite_name in cls.suites:
        for profile in PROFILES:
            extra = cls.profile_params(suite_name, profile)
            assert set(extra) <= allowed, (suite_name, profile, set(extra) - allowed)
            method = cls(**{**cls.default_params(), **extra})
            assert method.get_params() == {**cls.default_params(), **extra}
