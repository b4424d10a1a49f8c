"""Parameter checks: type from the default, range from the constraints, before any cell runs."""

from __future__ import annotations

import numpy as np
import pytest

import methods
from benchmark import cli
from benchmark.core.errors import BenchmarkError
from benchmark.core.profiles import PROFILES
from benchmark.run.parameter_checks import (
    GENERIC_CONSTRAINTS,
    check_value,
    constraints_for,
    param_problems,
    parse_constraint,
)
from benchmark.run.planning import check_planned_params, parse_overrides, plan_cells
from benchmark.suites import suites
from methods.base import Method, Split


class Toy(Method):
    """Not registered: one parameter of every kind, two declared constraints."""

    name = "toy"
    param_constraints = {"mode": "a|b", "share": ">0, <=1"}

    def __init__(self, epochs: int = 3, lr: float = 0.1, amp: bool = True, mode: str = "a",
                 channels: tuple[int, ...] = (4, 8), max_iter: int | None = None, share: float = 0.5,
                 seed: int = 0) -> None:
        self.epochs, self.lr, self.amp, self.mode = epochs, lr, amp, mode
        self.channels, self.max_iter, self.share, self.seed = channels, max_iter, share, seed

    def fit(self, train: Split, valid: Split | None = None) -> Toy:
        return self

    def separate(self, mixtures: np.ndarray) -> np.ndarray:
        return np.asarray(mixtures)[:, None]


# ------------------------------------------------------------------------------------ types


@pytest.mark.parametrize("param,value,needle", [
    ("epochs", 2.5, "epochs must be an integer, got 2.5 (float)"),
    ("epochs", True, "epochs must be an integer, got True (bool)"),
    ("epochs", "5", "epochs must be an integer, got '5' (str)"),
    ("lr", "abc", "lr must be a number, got 'abc' (str)"),
    ("lr", float("nan"), "lr must be a finite number, got nan"),
    ("amp", "true", "amp must be True or False, got 'true' (str)"),
    ("amp", 1, "amp must be True or False, got 1 (int)"),
    ("mode", 3, "mode must be a string, got 3 (int)"),
    ("channels", 16, "channels must be a list or tuple, got 16 (int)"),
    ("channels", [16, "a"], "every element of channels must be an integer, got 'a' (str)"),
    ("channels", [], "channels must not be empty"),
    ("max_iter", "many", "max_iter must be an integer, got 'many' (str)"),  # from `int | None`
])
def test_wrong_type_is_named(param, value, needle):
    assert check_value(Toy, param, value) == needle


@pytest.mark.parametrize("param,value", [
    ("lr", 3), ("lr", 0.5), ("epochs", 7), ("amp", False), ("mode", "b"), ("channels", [2, 3]),
    ("channels", (2,)), ("max_iter", None), ("max_iter", 100), ("share", 1),
])
def test_right_type_passes(param, value):
    assert check_value(Toy, param, value) is None


# ----------------------------------------------------------------------------------- ranges


@pytest.mark.parametrize("param,bad,needle", [
    ("epochs", 0, "epochs must be >= 1"),  # generic rule, not declared by Toy
    ("epochs", -1, "epochs must be >= 1"),
    ("lr", 0, "lr must be > 0"),
    ("lr", -1e-3, "lr must be > 0"),
    ("seed", -1, "seed must be >= 0"),
    ("max_iter", 0, "max_iter must be >= 1"),
    ("channels", (4, 0), "every element of channels must be >= 1, got 0"),
    ("share", 0.0, "share must be > 0"),  # declared: ">0, <=1"
    ("share", 1.5, "share must be <= 1"),
    ("mode", "c", "mode must be one of a, b"),
])
def test_out_of_range_is_named(param, bad, needle):
    assert check_value(Toy, param, bad) == needle


@pytest.mark.parametrize("param,edge", [
    ("epochs", 1), ("lr", 1e-12), ("seed", 0), ("max_iter", 1), ("channels", (1, 1)), ("share", 1.0),
    ("share", 1e-9),
])
def test_boundary_values_pass(param, edge):
    assert check_value(Toy, param, edge) is None


def test_real_method_boundaries():
    meae = methods.get("meae")
    assert check_value(meae, "grad_clip", 0.0) is None  # 0 disables clipping
    assert check_value(meae, "grad_clip", -0.1) == "grad_clip must be >= 0"
    assert check_value(meae, "lr_step_epochs", 0) is None  # 0 disables the schedule
    assert check_value(meae, "batch_norm_momentum", 1.0) is None
    assert check_value(meae, "batch_norm_momentum", 1.01) == "batch_norm_momentum must be <= 1"
    assert check_value(meae, "kernel_size", 1) is None
    assert check_value(meae, "kernel_size", 4) == "kernel_size must be odd"
    assert check_value(meae, "encoding_activation", "tanh") == "encoding_activation must be one of linear, relu"
    assert check_value(methods.get("ppg_riav"), "interpolation", "spline") == "interpolation must be one of linear, cubic"
    assert check_value(methods.get("ppg_riav"), "low", 0.0) == "low must be > 0"


def test_param_problems_lists_every_bad_value():
    assert param_problems(Toy, {"epochs": 0, "lr": 0.1, "mode": "z"}) == {
        "epochs": "epochs must be >= 1", "mode": "mode must be one of a, b",
    }
    assert param_problems(Toy, Toy.default_params()) == {}


def test_constraint_syntax():
    assert parse_constraint(">=1, odd").problem(3) is None
    assert parse_constraint(">=1, odd").problem(-1) == "must be >= 1"
    assert parse_constraint(">-0.5,<2.5e1").problem(25) == "must be < 2.5e1"
    assert parse_constraint("relu|linear").options == ("relu", "linear")
    with pytest.raises(ValueError, match="cannot read parameter constraint"):
        parse_constraint(">= one")


def test_subclass_constraints_add_to_the_bases():
    riav = constraints_for(methods.get("ppg_riav"))  # _Banded's band + _BeatModulation's interpolation
    assert {"low", "high", "order", "interpolation"} <= set(riav)
    assert "kernel_size" in constraints_for(methods.get("supervised_ae"))  # from MultiEncoderMethod
    assert constraints_for(methods.get("meae"))["kernel_size"].odd


# ------------------------------------------------------------------- every method, every profile


@pytest.mark.parametrize("name", sorted(methods.discover()))
def test_every_declared_constraint_names_a_parameter(name):
    cls = methods.discover()[name]
    for klass in cls.__mro__:
        declared = vars(klass).get("param_constraints", {})
        assert set(declared) <= set(cls.param_names()), (klass.__name__, set(declared) - set(cls.param_names()))
        for spec in declared.values():
            parse_constraint(spec)
    assert set(constraints_for(cls)) >= set(GENERIC_CONSTRAINTS) & set(cls.param_names())


@pytest.mark.parametrize("name", sorted(methods.discover()))
def test_defaults_and_every_profile_pass(name):
    cls = methods.discover()[name]
    assert param_problems(cls, cls.default_params()) == {}
    for suite_name, suite in suites().items():
        for profile in PROFILES:
            profile_values = cls.profile_params(suite.method_settings_suite, profile, suite.modality)
            assert param_problems(cls, {**cls.default_params(), **profile_values}) == {}, (suite_name, profile)


def test_every_suite_and_profile_plans():
    check_planned_params(list(suites()), "tiny", None, {})
    for profile in PROFILES:
        check_planned_params(list(suites()), profile, ["all"], {})


# ------------------------------------------------------------------------------ planning and CLI


def test_set_values_are_parsed_as_before():
    parsed = parse_overrides(["meae.epochs=5", "meae.channels=[16,32]", "meae.amp=true", "meae.keep_best=True",
                              "meae.lr=1e-3", "meae.mixing_weighting=banded"])
    assert parsed == {"meae": {"epochs": 5, "channels": [16, 32], "amp": "true", "keep_best": True,
                               "lr": 1e-3, "mixing_weighting": "banded"}}
    assert type(parsed["meae"]["epochs"]) is int and type(parsed["meae"]["channels"]) is list


def test_plan_cells_rejects_a_bad_override():
    with pytest.raises(BenchmarkError, match=r"^--set meae\.lr=abc: lr must be a number"):
        plan_cells("triangles", "tiny", ["meae"], [0], {"meae": {"lr": "abc"}})
    cells = plan_cells("triangles", "tiny", ["meae"], [0], {"meae": {"epochs": 1, "lr": 1}})
    assert cells[0].params["epochs"] == 1 and cells[0].params["lr"] == 1


def test_a_bad_profile_is_a_clear_error(monkeypatch):
    meae = methods.get("meae")
    monkeypatch.setitem(meae.profiles, ("triangles", "tiny"), {**meae.profiles["triangles", "tiny"], "epochs": 0})
    with pytest.raises(BenchmarkError, match=r"meae's triangles/tiny profile sets epochs=0: epochs must be >= 1 \(a bug in methods\.meae\)"):
        plan_cells("triangles", "tiny", ["meae"], [0], {})
    # An override of the bad value wins, as it does for every value.
    assert plan_cells("triangles", "tiny", ["meae"], [0], {"meae": {"epochs": 2}})[0].params["epochs"] == 2


@pytest.mark.parametrize("argv,line", [
    (["--suite", "sines", "--set", "meae.epochs=-1"], "--set meae.epochs=-1: epochs must be >= 1"),
    (["--suite", "sines", "--set", "meae.lr=abc"], "--set meae.lr=abc: lr must be a number, got 'abc' (str)"),
    (["--suite", "all", "--methods", "meae,pca", "--set", "pca.n_components=0"],
     "--set pca.n_components=0: n_components must be >= 1"),
    (["--suite", "sines", "--set", "meae.amp=true"], "--set meae.amp=true: amp must be True or False, got 'true' (str)"),
])
def test_cli_exits_2_with_one_line_before_any_work(argv, line, capsys, tmp_path, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("a suite ran despite a bad parameter")

    monkeypatch.setattr(cli, "run_suite", no_work)
    code = cli.main([*argv, "--results-dir", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [f"run_benchmark.py: error: {line}"]
    assert not (tmp_path / "results").exists() and not (tmp_path / "cache").exists()


def test_cli_reports_a_bad_profile(capsys, tmp_path, monkeypatch):
    meae = methods.get("meae")
    monkeypatch.setitem(meae.profiles, ("1d", "tiny"), {**meae.profiles["1d", "tiny"], "lr": -1.0})
    code = cli.main(["--suite", "sines", "--profile", "tiny", "--results-dir", str(tmp_path / "r"),
                     "--cache-dir", str(tmp_path / "c")])
    assert code == 2
    assert "meae's sines/tiny profile sets lr=-1.0: lr must be > 0" in capsys.readouterr().err
    assert not (tmp_path / "r").exists() and not (tmp_path / "c").exists()
