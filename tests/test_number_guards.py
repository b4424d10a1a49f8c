"""Tests that guard the numbers on the path to the leaderboards, not only their shapes.

Each test here was checked to fail when the behaviour it guards is broken on purpose (the
mapping solved on the test split, a mapping applied backwards, std with ddof=0, a paper row
merged with a measured one, a choice rule turned into argmax/argmin the wrong way, keep_best
ignored).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.evaluation.metrics import mse
from benchmark.evaluation.source_choice import (
    band_power_share,
    choose_by_reference,
    choose_by_spectrum,
)
from benchmark.report import leaderboard as lb
from benchmark.run.fitting import Fitter
from benchmark.suites import SuiteOptions
from benchmark.suites.triangles import TrianglesSuite
from methods.base import Method, Split
from methods.meae import MEAE


class _OracleWithSwaps(Method):
    """Test-only 'method' that looks the true sources up and returns them in a chosen order.

    Candidates are ``(source 0, source 1, zeros)`` for mixtures in ``straight`` and
    ``(source 1, source 0, zeros)`` for all others, so the assignment found on the
    validation split (straight) is the wrong one on the test split (swapped).
    """

    name = "oracle_with_swaps"
    modalities = ("2d",)
    supervised = True

    def __init__(self, lookup: dict[bytes, np.ndarray] | None = None, straight: frozenset = frozenset()) -> None:
        self.lookup = lookup
        self.straight = straight

    def fit(self, train: Split, valid: Split | None = None) -> _OracleWithSwaps:
        return self

    def separate(self, mixtures: np.ndarray) -> np.ndarray:
        out = []
        for mixture in np.asarray(mixtures, dtype=np.float32):
            key = mixture.tobytes()
            sources = self.lookup[key]
            order = (0, 1) if key in self.straight else (1, 0)
            out.append(np.stack([sources[order[0]], sources[order[1]], np.zeros_like(mixture)]))
        return np.stack(out)


@pytest.fixture(scope="module")
def tiny_triangles(tmp_path_factory):
    suite = TrianglesSuite()
    handle = suite.prepare("tiny", SuiteOptions(cache_dir=tmp_path_factory.mktemp("cache"), progress=False))
    return suite, handle, suite.load_splits(handle)


def test_triangles_mapping_is_solved_on_validation_and_applied_to_test(tiny_triangles):
    suite, handle, splits = tiny_triangles
    lookup = {m.tobytes(): t for name in ("valid", "test") for m, t in zip(splits[name].mixtures, splits[name].targets, strict=True)}
    straight = frozenset(m.tobytes() for m in splits["valid"].mixtures)
    outcome = suite.run_cell(Fitter(lambda: _OracleWithSwaps(lookup, straight)), handle)

    assert list(outcome.details["assignment"]["mapping"]) == [0, 1]  # found on validation
    scores = {(s["target"], s["metric"]): s["value"] for s in outcome.scores if not s.get("variant")}
    oracle = {(s["target"], s["metric"]): s["value"] for s in outcome.scores if s.get("variant") == "PIT oracle"}
    # The per-item best permutation undoes every swap: the oracle rows are exact, the honest ones not.
    assert oracle[("triangle", "mse")] == 0.0 and oracle[("circle", "mse")] == 0.0
    assert oracle[("triangle", "ssim")] == pytest.approx(1.0)
    test = splits["test"]
    # Validation says candidate 0 = triangle; on test candidate 0 is the circle, so the honest
    # score is that of the swapped pairing, not 0.
    triangle_vs_circle = float(mse(np.clip(test.targets[:, 1], 0, 1), test.targets[:, 0]).mean())
    circle_vs_triangle = float(mse(np.clip(test.targets[:, 0], 0, 1), test.targets[:, 1]).mean())
    assert scores[("triangle", "mse")] == pytest.approx(triangle_vs_circle, rel=1e-6)
    assert scores[("circle", "mse")] == pytest.approx(circle_vs_triangle, rel=1e-6)
    assert triangle_vs_circle > 0.01


def test_triangles_mapping_is_applied_in_the_right_direction(tiny_triangles):
    suite, handle, splits = tiny_triangles
    lookup = {m.tobytes(): t for name in ("valid", "test") for m, t in zip(splits[name].mixtures, splits[name].targets, strict=True)}
    outcome = suite.run_cell(Fitter(lambda: _OracleWithSwaps(lookup, frozenset())), handle)  # swapped everywhere
    scores = {(s["target"], s["metric"]): s["value"] for s in outcome.scores if not s.get("variant")}
    assert scores[("triangle", "mse")] == pytest.approx(0.0, abs=1e-10)
    assert scores[("circle", "mse")] == pytest.approx(0.0, abs=1e-10)
    assert scores[("triangle", "ssim")] == pytest.approx(1.0, abs=1e-9)
    assert list(outcome.details["assignment"]["mapping"]) == [1, 0]
    assert list(outcome.details["assignment"]["unused"]) == [2]


def _runs(rows):
    columns = {c: np.nan for c in lb.RUN_FRAME_COLUMNS}
    return pd.DataFrame([{**columns, "suite": "s", "profile": "p", "input": "mixture", "metric": "mse",
                          "time_limited": False, "kind": "method", **row} for row in rows], columns=lb.RUN_FRAME_COLUMNS)


def test_aggregation_over_seeds_uses_the_sample_std_and_keeps_paper_rows_apart():
    runs = _runs([
        {"method": "meae", "label": "meae", "seed": s, "target": "circle", "value": v, "cell_id": f"meae__seed{s}"}
        for s, v in enumerate((0.1, 0.2, 0.6))
    ] + [{"method": "mixture", "label": "mixture", "seed": 0, "target": "circle", "value": 0.05, "cell_id": "mixture__seed0"}])
    paper = [{"suite": "s", "method": "meae", "input": "mixture", "target": "circle", "metric": "mse",
              "mean": 0.00478, "std": np.nan, "n_seeds": np.nan, "source": "paper"}]
    board = lb.aggregate(runs, paper)
    measured = board[(board.method == "meae") & (board.source == "measured")].iloc[0]
    assert measured["mean"] == pytest.approx(0.3)
    assert measured["std"] == pytest.approx(np.std([0.1, 0.2, 0.6], ddof=1))
    assert measured["n_seeds"] == 3
    reference = board[(board.method == "meae") & (board.source == "paper")]
    assert len(reference) == 1 and reference.iloc[0]["mean"] == 0.00478
    single = board[board.method == "mixture"].iloc[0]
    assert single["n_seeds"] == 1 and np.isnan(single["std"])


def test_choose_by_reference_picks_the_lowest_mae_on_shared_segments_only():
    reference = np.array([12.0, 15.0, np.nan, 18.0])
    candidates = np.array([
        [12.5, 30.0, 11.0],
        [15.5, 14.0, np.nan],
        [99.0, 99.0, np.nan],  # no reference rate: ignored
        [17.0, 18.0, np.nan],
    ])
    index, maes = choose_by_reference(candidates, reference)
    assert maes == pytest.approx([(0.5 + 0.5 + 1.0) / 3, (18.0 + 1.0 + 0.0) / 3, 1.0])
    assert index == 0
    index, maes = choose_by_reference(np.array([[np.nan, 12.0]]), np.array([12.0]))
    assert (index, maes[0]) == (1, float("inf"))


def test_band_power_share_and_spectral_choice_find_the_respiratory_output():
    rate = 100.0
    t = np.arange(int(120 * rate)) / rate
    respiration = np.sin(2 * np.pi * 0.25 * t)
    cardiac = np.sin(2 * np.pi * 1.2 * t)
    candidates = np.stack([cardiac, respiration + 0.1 * cardiac, np.full_like(t, np.nan)])
    shares = band_power_share(candidates, rate, crop=0)
    assert shares[0] < 0.01 and shares[1] > 0.95 and np.isnan(shares[2])
    index, means = choose_by_spectrum(shares[None, :])
    assert index == 1 and means[2] == -1.0


def test_keep_best_restores_an_earlier_epoch_than_the_last():
    rng = np.random.default_rng(0)
    train = Split(rng.random((32, 16, 16), dtype=np.float32), ("a", "b"))
    valid = Split(rng.random((8, 16, 16), dtype=np.float32), ("a", "b"))
    method = MEAE(n_encoders=2, channels=(4, 4), hidden=4, kernel_size=3, epochs=4, batch_size=8,
                  lr=0.05, keep_best=True, seed=0)
    scores = iter([0.5, 0.1, 0.3, 0.4])  # best validation after epoch 1 of 0..3
    snapshots = []

    def score(_valid):
        snapshots.append({k: v.detach().clone() for k, v in method.network_.state_dict().items()})
        return next(scores)

    method._validation_score = score
    method.fit(train, valid)
    final = method.network_.state_dict()
    assert all(np.array_equal(final[k].numpy(), snapshots[1][k].numpy()) for k in final)
    assert not all(np.array_equal(final[k].numpy(), snapshots[3][k].numpy()) for k in final)
    assert [round(h["valid"], 2) for h in method.history_] == [0.5, 0.1, 0.3, 0.4]
