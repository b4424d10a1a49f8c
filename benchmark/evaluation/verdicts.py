"""Does a row separate? Kinds of rows, the best trivial baseline, and a verdict per row and seed.

A leaderboard number means something only beside what doing nothing scores. Every row gets a
*kind*: ``trivial`` (an estimate that separates nothing: the mixture, an all-zero image, the
mixture / K, a constant breathing rate), ``method``, ``oracle`` (per-item best permutation,
an upper bound) or ``reference`` (published values, and measured reference-vs-reference rows).

A ``method`` row *separates* a target when it beats the best trivial baseline of that target on
the suite's verdict metric (:attr:`benchmark.suites.base.Suite.verdict_metrics`: SI-SDRi for
image and waveform suites, rate MAE for respiration):

* the best trivial baseline is chosen on the **validation** split (each trivial cell stores its
  validation scores); where some trivial row has none it is chosen on test (the stronger
  comparator) and the verdict says so;
* each seed of the row is compared with it by a one-sided Wilcoxon signed-rank test over the
  test items (or recordings' means, where items of a recording are dependent), with the
  matched-pairs rank-biserial correlation as effect size; the seed-mean of all seeds is tested
  the same way;
* all tests of one table are Holm-corrected together; a seed separates when its corrected
  p-value is below :data:`benchmark.evaluation.statistics.ALPHA` and its mean is better;
* ``separates`` is ``"k/n"``: k of the row's n seeds separate. Fewer than
  :data:`benchmark.evaluation.statistics.MIN_GROUPS` pairing units give no test (``"too few ..."``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from benchmark.evaluation.metrics import get_metric
from benchmark.evaluation.scoring import ORACLE_VARIANT
from benchmark.evaluation.statistics import (
    ALPHA,
    MIN_GROUPS,
    holm,
    n_units,
    paired_comparison,
    seed_mean,
)

RowKey = tuple[str, str, str, str]  # (leaderboard label, input, target, metric)
GroupsFor = Callable[[str], np.ndarray | None]
KINDS = ("trivial", "method", "oracle", "reference")

VERDICT_COLUMNS = [
    "suite", "method", "input", "target", "metric", "versus_method", "chosen_on", "seed", "pairing", "n_pairs",
    "mean_difference", "rank_biserial", "p_value", "p_holm", "separates",
]


def row_kind(variant: str, source: str, method_kind: str | None) -> str:
    """The kind of one leaderboard row (see the module docstring), from its fields: the score
    row's ``variant`` (``"PIT oracle"``, ``"quality-gated"``, ...), the row's ``source``
    (``"measured"`` or a publication) and the ``Method.kind`` of the method that produced it
    (``None`` for rows no method produced)."""
    if source != "measured" or method_kind is None:
        return "reference"
    if variant == ORACLE_VARIANT:
        return "oracle"
    return "trivial" if method_kind == "trivial" else "method"


def validation_scores(records: list[dict[str, Any]], row_label: Callable[[dict, dict], str]) -> dict[RowKey, float]:
    """Validation score of each trivial row, by (label, input, target, metric).

    Read from what a trivial cell stores: ``valid_scores`` (``{target: {metric: value}}``, one per
    input where a suite has several), or, for rate suites, the selection segments' MAE of its
    output against each reference (``selection_mae_by_reference``). The mean over seeds.
    """
    found: dict[RowKey, list[float]] = {}
    for record in records:
        details = record.get("details", {})
        per_input = dict(details.get("inputs", {}))
        if "valid_scores" in details:
            per_input.setdefault("mixture", {})["valid_scores"] = details["valid_scores"]
        for input_name, info in per_input.items():
            for target, by_metric in (info.get("valid_scores") or {}).items():
                for metric, value in by_metric.items():
                    found.setdefault((record["label"], input_name, target, metric), []).append(value)
            choice = (info.get("choice") or {}).get("reference")
            for target, maes in (info.get("selection_mae_by_reference") or {}).items():
                if choice is not None and choice < len(maes):
                    found.setdefault((record["label"], input_name, target, "mae_bpm"), []).append(maes[choice])
    return {key: float(np.nanmean(values)) for key, values in found.items() if np.isfinite(values).any()}


@dataclass(frozen=True)
class Verdict:
    """The verdict of one (row, input, target): on which metric, against what, how many seeds."""

    metric: str
    versus: str
    chosen_on: str
    n_seeds: int
    separating_seeds: int | None
    status: str
    mean_difference: float = float("nan")
    rank_biserial: float = float("nan")
    p_holm: float = float("nan")

    @property
    def separates(self) -> str:
        """``"k/n"``, or the reason there is no verdict."""
        return self.status if self.separating_seeds is None else f"{self.separating_seeds}/{self.n_seeds}"


def best_trivial(
    board: pd.DataFrame, items: dict[RowKey, list[np.ndarray]], valid: dict[RowKey, float],
    input_name: str, target: str, metric: str,
) -> tuple[str, str] | None:
    """The best trivial row for (input, target, metric): ``(label, "validation" | "test")``.

    Chosen on validation when every trivial row has a validation score; otherwise (a row trained
    on other data, cells from before validation scores were stored) on test, which can only make
    the comparator stronger, and the verdict says so.
    """
    higher = get_metric(metric).higher_is_better
    rows = board[(board["kind"] == "trivial") & (board["input"] == input_name) & (board["target"] == target)
                 & (board["metric"] == metric)]
    rows = rows[[(label, input_name, target, metric) in items for label in rows["method"]]]
    if rows.empty:
        return None
    on_valid = {label: valid[(label, input_name, target, metric)] for label in rows["method"]
                if (label, input_name, target, metric) in valid}
    if len(on_valid) == len(rows):  # validation only when every candidate was scored there
        pick = max(on_valid, key=on_valid.get) if higher else min(on_valid, key=on_valid.get)
        return pick, "validation"
    ranked = rows.dropna(subset=["mean"]).sort_values("mean", ascending=not higher)
    return (ranked.iloc[0]["method"], "test") if not ranked.empty else None


def verdicts(
    board: pd.DataFrame, items: dict[RowKey, list[np.ndarray]], valid: dict[RowKey, float],
    suite_name: str, verdict_metrics: tuple[str, ...], groups_for: GroupsFor, pairing: str,
) -> tuple[dict[tuple[str, str, str], Verdict], pd.DataFrame]:
    """Every method row's verdict per (input, target), and the table of the tests behind them.

    Returns ``({(label, input, target): Verdict}, tests)``; ``tests`` has one row per seed and
    one for the seed-mean (``seed = "all"``) of every tested row with two or more seeds,
    Holm-corrected over the table.
    """
    methods = board[(board["kind"] == "method").to_numpy() & (board["source"] == "measured").to_numpy()]
    pending: list[dict[str, Any]] = []
    plans: dict[tuple[str, str, str], dict[str, Any]] = {}
    for (label, input_name, target), _ in methods.groupby(["method", "input", "target"], sort=False):
        for metric in verdict_metrics:
            if (label, input_name, target, metric) not in items:
                continue
            trivial = best_trivial(board, items, valid, input_name, target, metric)
            if trivial is None:
                continue
            versus, chosen_on = trivial
            values = items[label, input_name, target, metric]
            comparator = seed_mean(items[versus, input_name, target, metric])
            if any(len(v) != len(comparator) for v in values):
                continue
            groups = groups_for(input_name)
            groups = groups if groups is not None and len(groups) == len(comparator) else None
            plan = {"metric": metric, "versus": versus, "chosen_on": chosen_on, "n_seeds": len(values), "tests": []}
            plans[label, input_name, target] = plan
            if n_units(len(comparator), groups) < MIN_GROUPS:
                plan["status"] = f"too few {pairing}"
                break
            higher = get_metric(metric).higher_is_better
            pooled = [("all", seed_mean(values))] if len(values) > 1 else []  # one seed: its own test
            for seed, seed_values in [*enumerate(values), *pooled]:
                result = paired_comparison(seed_values, comparator, groups, higher, one_sided=True)
                test = {
                    "higher": higher, "suite": suite_name, "method": label, "input": input_name, "target": target, "metric": metric,
                    "versus_method": versus, "chosen_on": chosen_on, "seed": str(seed), "pairing": pairing,
                    "n_pairs": result.n_pairs, "mean_difference": result.mean_difference,
                    "rank_biserial": result.rank_biserial, "p_value": result.p_value,
                }
                pending.append(test)
                plan["tests"].append(test)
            break
    adjusted = holm([t["p_value"] for t in pending])
    for test, p in zip(pending, adjusted, strict=True):
        gain = test["mean_difference"] if test.pop("higher") else -test["mean_difference"]
        better = bool(np.isfinite(gain) and gain > 0)
        test["p_holm"] = p
        test["separates"] = bool(better and np.isfinite(p) and p < ALPHA)
    out: dict[tuple[str, str, str], Verdict] = {}
    for key, plan in plans.items():
        if "status" in plan:
            out[key] = Verdict(plan["metric"], plan["versus"], plan["chosen_on"], plan["n_seeds"], None, plan["status"])
            continue
        per_seed = [t for t in plan["tests"] if t["seed"] != "all"]
        pooled = next((t for t in plan["tests"] if t["seed"] == "all"), per_seed[0])
        out[key] = Verdict(
            plan["metric"], plan["versus"], plan["chosen_on"], plan["n_seeds"], sum(t["separates"] for t in per_seed),
            "", pooled["mean_difference"], pooled["rank_biserial"], pooled["p_holm"],
        )
    return out, pd.DataFrame(pending, columns=VERDICT_COLUMNS)


def separates_column(board: pd.DataFrame, found: dict[tuple[str, str, str], Verdict]) -> list[str]:
    """The ``separates`` column of ``leaderboard.csv``: filled on the verdict-metric row of each verdict."""
    column = []
    rows = zip(board["method"], board["input"], board["target"], board["metric"], board["source"], strict=True)
    for label, input_name, target, metric, source in rows:
        verdict = found.get((label, input_name, target)) if source == "measured" else None
        column.append(verdict.separates if verdict is not None and verdict.metric == metric else "")
    return column


TRIVIAL_NOTES = {
    "mse": "MSE rewards a dim, average estimate: the mixture / K or an all-zero image score well on it "
           "wherever the sources are sparse or overlap little.",
    "ssim": "SSIM is dominated by the background where most target pixels are 0: an all-zero image "
            "scores a high SSIM, and a faint uniform haze lowers a good estimate's SSIM a lot.",
    "si_sdri": "SI-SDR is scale-invariant and an empty (constant) output sits at its floor "
               "(benchmark.evaluation.metrics.SI_SDR_FLOOR_DB), so trivial estimates cannot score well on SI-SDRi: "
               "the mixture scores 0 dB by definition.",
    "mae_bpm": "A constant rate at the training median is a strong baseline where breathing rates vary "
               "little between subjects: a method must track each segment's rate to beat it.",
}


def verdicts_markdown(
    found: dict[tuple[str, str, str], Verdict], blind: Callable[[str], bool], metrics_shown: tuple[str, ...],
) -> str:
    """The verdict section of a leaderboard: what was tested, and each method's result in words."""
    if not found:
        return ""
    used = sorted({(v.metric, v.versus, v.chosen_on) for v in found.values()})
    lines = [
        "",
        "## Does it separate?",
        "",
        "*Separates* = on how many of a row's seeds it beats the best trivial baseline of that target "
        "(one-sided Wilcoxon signed-rank test over the test items or recordings, Holm-corrected over "
        f"every test of this leaderboard, α = {ALPHA}); the seed-mean test, effect sizes and p-values are in "
        "`verdicts.csv`. Trivial rows are what doing no separation scores; supervised rows see the true "
        "sources (an upper reference). Compared with: "
        + "; ".join(f"`{versus}` on {get_metric(metric).label} (chosen on {chosen_on})" for metric, versus, chosen_on in used)
        + ".",
        "",
    ]
    by_label: dict[str, list[tuple[str, str, Verdict]]] = {}
    for (label, input_name, target), verdict in found.items():
        by_label.setdefault(label, []).append((input_name, target, verdict))
    any_blind = False
    for label, entries in by_label.items():
        tested = [v for _, _, v in entries if v.separating_seeds is not None]
        if not tested:
            lines.append(f"- `{label}`: no verdict ({entries[0][2].status}).")
            continue
        winners = [f"{t.replace('_', ' ')}" + (f" ({i})" if i not in ("mixture", "row") else "") + f" on {v.separates} seeds"
                   for i, t, v in entries if v.separating_seeds]
        kind = "blind" if blind(label) else "supervised"
        if winners:
            any_blind |= kind == "blind"
            lines.append(f"- `{label}` ({kind}) separates {', '.join(winners)}.")
        else:
            lines.append(f"- `{label}` ({kind}) separates no target on any seed.")
    if not any_blind:
        lines.append("")
        lines.append("**No blind method separates any target in this leaderboard**: every blind row is at or "
                     "below what a trivial estimate scores.")
    notes = [TRIVIAL_NOTES[m] for m in metrics_shown if m in TRIVIAL_NOTES]
    if notes:
        lines += ["", "Why trivial rows can score well here: " + " ".join(notes)]
    return "\n".join(lines) + "\n"
