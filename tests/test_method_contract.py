"""The generic method contract (benchopt-style): every registered method on every suite it fits.

Parametrized over ``methods.discover()`` x ``benchmark.suites.suites()``, the pairs chosen by
what each method declares (:meth:`benchmark.suites.base.Suite.method_fits`); a new method
file or suite is picked up with no edit here. Besides a scored run, each pair checks the
scikit-learn-style contract of the fitted method: save then load gives the same
``separate()``, the same seed gives the same output, ``separate`` on chunks equals
``separate`` on the whole, and ``fit`` leaves the constructor parameters unchanged.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
import torch

import methods
from benchmark.run.fitting import Fitter, ModelOf
from benchmark.run.planning import _jsonable
from benchmark.run.runner import prepare_data
from benchmark.suites import SuiteOptions, get_suite, suites
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
    for suite in SUITES
    if SUITES[suite].method_fits(cls) is None
]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """``prepared(suite_name)`` -> the suite's tiny-profile data handle and the data of the models it
    evaluates (``None`` for most suites), prepared once per module."""
    cache = tmp_path_factory.mktemp("contract_cache")
    handles = {}

    def get(suite_name: str):
        if suite_name not in handles:
            handles[suite_name] = prepare_data(SUITES[suite_name], "tiny", SuiteOptions(cache_dir=cache, progress=False))
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
def test_method_runs_on_suite(name, suite_name, prepared, tmp_path):
    cls = REGISTRY[name]
    suite = SUITES[suite_name]
    params = {**cls.default_params(), **cls.profile_params(suite.method_settings_suite, "tiny", suite.modality)}
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

    handle, model_data = prepared(suite_name)
    # As the runner plans it: a method that learns also has the model of the suite's sim-to-real dependency.
    model_of = ModelOf(Fitter(factory), model_data) if model_data is not None and cls.learns else None
    outcome = suite.run_cell(Fitter(factory, None, model_of), handle)

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
        if not len(train):
            continue  # a method that learns nothing, fitted where there is no training segment
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
        if not finite.any():  # an abstaining estimator (smart fusion) may skip these few segments on a
            # rate suite, as long as the run rated some test segment (coverage > 0, checked above)
            assert get_suite(suite_name).target_kind == "rate" and "rate" in cls.target_kinds, f"{name}: no finite candidate"

    with_rows = [(m, t) for m, t in fitted if len(t)]  # a method that learns nothing may see no rows
    method, train = (with_rows or fitted)[0]
    assert _params_equal(method.get_params(), params), "fit changed the constructor parameters"
    if with_rows:
        _check_fitted_contract(cls, params, method, train, tmp_path)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_class_attributes(name):
    cls = REGISTRY[name]
    assert cls.name == name
    assert isinstance(cls.description, str) and cls.description.strip()
    assert not hasattr(cls, "suites"), "methods declare what they take (modalities, inputs), not suite names"
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
    for suite_name, suite in SUITES.items():
        for profile in PROFILES:
            extra = cls.profile_params(suite_name, profile, suite.modality)
            assert set(extra) <= allowed, (suite_name, profile, set(extra) - allowed)
            method = cls(**{**cls.default_params(), **extra})
            assert method.get_params() == {**cls.default_params(), **extra}


# --------------------------------------------------------------- fitted-method contract
def _params_equal(a: dict, b: dict) -> bool:
    return json.dumps(_jsonable(a), sort_keys=True, default=str) == json.dumps(_jsonable(b), sort_keys=True, default=str)


def _check_fitted_contract(cls, params: dict, method: Method, train, tmp_path) -> None:
    """Save/load, chunked separation and same-seed refits of one fitted method."""
    n = min(8, len(train))
    mixtures = np.asarray(train.mixtures[:n], dtype=np.float32)
    whole = method.separate(mixtures)

    chunked = np.concatenate([method.separate(mixtures[i : i + 3]) for i in range(0, n, 3)])
    # Iterative per-batch solvers (scikit-learn's NMF.transform) stop at a tolerance over the
    # batch, so chunks agree to ~3e-5 there; a batch-dependent method (batch statistics, say)
    # differs by orders of magnitude more.
    np.testing.assert_allclose(chunked, whole, rtol=1e-3, atol=2e-4, err_msg="separate on chunks != on the whole")

    if cls.can_checkpoint():
        method.save(tmp_path / "saved")
        loaded = cls.load(tmp_path / "saved", context=method.context)
        assert _params_equal(loaded.get_params(), method.get_params())
        np.testing.assert_array_equal(loaded.separate(mixtures), whole, err_msg="save then load changed separate()")

    # Same parameters (and seed) on the same data: the same output. A small subset keeps it quick.
    subset = train if len(train) <= 48 else type(train)(
        np.asarray(train.mixtures[:48], dtype=np.float32), train.source_names,
        None if train.targets is None else np.asarray(train.targets[:48], dtype=np.float32),
        train.input_name, train.sampling_rate,
    )
    outputs = []
    for _ in range(2):
        again = cls(**params).with_context(RunContext(device="cpu"))
        again.fit(subset, None)
        outputs.append(again.separate(mixtures))
    np.testing.assert_array_equal(outputs[0], outputs[1], err_msg="the same seed gave different outputs")
