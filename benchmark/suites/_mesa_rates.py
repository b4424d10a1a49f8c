"""The rate half of the MESA protocol: a fitted method's outputs read as respiratory rates.

:func:`choose_outputs` picks the respiratory output of a multi-output method on selection
segments (by a reference's rate, and by the label-free spectral rule); :func:`evaluate_outputs`
rates the test segments with the chosen output(s) and adds every score row to the cell's outcome.
Used by :class:`benchmark.suites.mesa.MesaSuite` for its own models and for the models of another
cell it evaluates (sim-to-real).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from benchmark.evaluation.metrics import get_metric, rate_difference
from benchmark.evaluation.respiration import rates
from benchmark.evaluation.scoring import item_key, score_metrics, score_row
from benchmark.evaluation.source_choice import (
    band_power_share,
    choose_by_reference,
    choose_by_spectrum,
    choose_gate_threshold,
)
from benchmark.evaluation.statistics import group_means
from benchmark.suites.base import CellOutcome
from datasets.rows import RowView
from methods.base import Method

__all__ = [
    "AGREEMENT", "CHOICE_REFERENCES", "EDGE_CROP", "GATED", "N_EXAMPLES", "REFERENCES", "SAMPLING_RATE", "TRUTH",
    "Selection", "choose_outputs", "evaluate_outputs", "mae_per_recording",
]

SAMPLING_RATE = 200.0
EDGE_CROP = 512
REFERENCES = ("nasal_pressure", "thoracic")
TRUTH = "true_respiration"
N_EXAMPLES = 3
CHOICE_REFERENCES = ("nasal_pressure", "thoracic")
"""References that choose a multi-output method's respiratory output, in order of preference."""
AGREEMENT = ("mae_bpm", "bias_bpm", "loa_low_bpm", "loa_high_bpm", "rmse_bpm", "within2_pct")
"""The respiratory-rate literature's agreement statistics (RRest; Charlton et al.), per reference."""
CHUNK = 128
GATED = "quality-gated"
"""Variant of the rows of a method that abstains where its output's respiratory-band power share
is under a threshold chosen on the validation recordings (``Method.quality_gate``)."""


@dataclass(frozen=True)
class Selection:
    """Segments on which a multi-output method's respiratory output is chosen."""

    data: dict[str, np.ndarray]
    rows: np.ndarray
    split: str
    reference: dict[str, np.ndarray]
    input_name: str


def mae_per_recording(estimate: np.ndarray, reference: np.ndarray, recordings: np.ndarray) -> np.ndarray:
    """``|mean estimated rate - mean reference rate|`` of each recording, in sorted recording order.

    Both means are taken over the same segments: those where the estimate and the reference
    both have a rate. A recording without such a segment gets NaN.
    """
    # The mean difference over the segments where both have a rate (NaN elsewhere): the same
    # formula reports use on the stored differences (benchmark.evaluation.scoring.derive_per_group).
    return np.abs(group_means(rate_difference(estimate, reference), recordings))


def choose_outputs(method: Method, selection: Selection) -> tuple[dict[str, int], str | None, int, dict, tuple] | None:
    """Which output each rule takes, chosen on the selection segments, and what a quality gate is
    chosen on (every output's rate and band share per selection segment, the chooser's rates)."""
    candidate_rates, band_shares = [], []
    inputs = RowView(selection.data[selection.input_name], selection.rows)
    for first in range(0, len(selection.rows), CHUNK):
        batch = method.separate(inputs[first : first + CHUNK])
        candidate_rates.append(rates(batch.reshape(-1, batch.shape[-1]), SAMPLING_RATE, EDGE_CROP).reshape(batch.shape[:2]))
        band_shares.append(band_power_share(batch, SAMPLING_RATE))
    if not candidate_rates:
        return None
    candidate_rates = np.concatenate(candidate_rates)
    k_outputs = candidate_rates.shape[1]
    n = len(selection.data[selection.input_name])
    chooser = next((name for name in CHOICE_REFERENCES if np.isfinite(
        selection.reference.get(f"{selection.split}__{name}", np.full(n, np.nan))[selection.rows]).any()), None)
    segment_shares = np.concatenate(band_shares)
    by_spectrum, band_shares = choose_by_spectrum(segment_shares)
    reference_maes = None
    if chooser is not None:
        by_reference, reference_maes = choose_by_reference(candidate_rates, selection.reference[f"{selection.split}__{chooser}"][selection.rows])
    if k_outputs == 1:
        rules = {"reference": 0}
    elif chooser is None:  # no reference rate on the selection segments: only the blind rule can choose
        rules = {"spectral": by_spectrum}
    else:
        rules = {"reference": by_reference, "spectral": by_spectrum}
    by_target = {}  # every output's MAE against every reference on the selection segments
    for name in (*CHOICE_REFERENCES, TRUTH):
        key = f"{selection.split}__{name}"
        if key in selection.reference and np.isfinite(selection.reference[key][selection.rows]).any():
            by_target[name] = choose_by_reference(candidate_rates, selection.reference[key][selection.rows])[1]
    extra = {"selection_split": selection.split, "selection_segments": len(selection.rows),
             "selection_mae_vs_reference": reference_maes, "selection_band_share": band_shares,
             "selection_mae_by_reference": by_target}
    chooser_rates = selection.reference[f"{selection.split}__{chooser}"][selection.rows] if chooser else None
    return rules, chooser, k_outputs, extra, (candidate_rates, segment_shares, chooser_rates)



def evaluate_outputs(method: Method, selection: Selection, test_data: dict[str, np.ndarray], test_rows: np.ndarray,
                     reference: dict[str, np.ndarray], input_name: str, prefix: str, outcome: CellOutcome) -> tuple | str:
    """Choose the output(s), rate the test segments and add every score row to ``outcome``.

    ``prefix`` starts every row's variant (``"sim-to-real"``: trained on other data).
    """
    start = time.perf_counter()
    chosen_rules = choose_outputs(method, selection)
    if chosen_rules is None:  # no segment to choose on: fine for a single output
        if method.separate(RowView(test_data[input_name], test_rows[:1])[:1]).shape[1] != 1:
            return "no validation or training recordings to choose its respiratory output on"
        chosen_rules = ({"reference": 0}, None, 1, {"selection_split": None, "selection_segments": 0}, None)
    rules, chooser, k_outputs, extra, gate_inputs = chosen_rules
    fill = outcome.details.get("fill_rate_bpm", {}).get(input_name)
    gates = {}  # output -> band-share threshold, for a method that may abstain on a weak output
    if method.quality_gate and gate_inputs is not None and gate_inputs[2] is not None:
        candidate_rates, segment_shares, chooser_rates = gate_inputs
        for k in sorted(set(rules.values())):
            threshold, chosen = choose_gate_threshold(segment_shares[:, k], candidate_rates[:, k], chooser_rates, fill)
            gates[k] = threshold
            extra.setdefault("quality_gate", {})[str(k)] = {"band_share_threshold": threshold, **chosen}
    select_seconds = time.perf_counter() - start

    start = time.perf_counter()
    chosen = sorted(set(rules.values()))
    estimates = {k: [] for k in chosen}
    test_shares = {k: [] for k in gates}
    correlations = {k: [] for k in chosen}
    has_truth = TRUTH in test_data
    examples = None
    test_inputs = RowView(test_data[input_name], test_rows)
    test_truth = RowView(test_data[TRUTH], test_rows) if has_truth else None
    for first in range(0, len(test_rows), CHUNK):
        batch = method.separate(test_inputs[first : first + CHUNK])
        if examples is None:
            examples = batch[:N_EXAMPLES]
        for k in chosen:
            estimates[k].append(rates(batch[:, k], SAMPLING_RATE, EDGE_CROP))
            if k in gates:
                test_shares[k].append(band_power_share(batch[:, k], SAMPLING_RATE))
            if has_truth:
                correlations[k].append(get_metric("waveform_corr").per_item(batch[:, k], test_truth[first : first + CHUNK]))
    test_rates = {k: np.concatenate(v) for k, v in estimates.items()}
    score_seconds = time.perf_counter() - start

    targets = [t for t in (*REFERENCES, *([TRUTH] if has_truth else []))
               if f"test__{t}" in reference and np.isfinite(reference[f"test__{t}"][test_rows]).any()]
    recordings = np.asarray(test_data["recording"])[test_rows]
    scored = [(rule, k, False) for rule, k in rules.items()] + [(rule, k, True) for rule, k in rules.items() if k in gates]
    for rule, k, gated in scored:
        words = [prefix] if prefix else []
        if rule == "spectral":
            words.append("blind choice")
        elif chooser is not None and chooser != CHOICE_REFERENCES[0] and k_outputs > 1:
            words.append(f"chosen on {chooser}")
        if gated:
            words.append(GATED)
        variant = ", ".join(words)
        k_rates = np.where(np.concatenate(test_shares[k]) >= gates[k], test_rates[k], np.nan) if gated else test_rates[k]
        for target in targets:
            target_rates = reference[f"test__{target}"][test_rows]
            rows, items = score_metrics(k_rates, target_rates, AGREEMENT, input_name, target, variant)
            per_recording = mae_per_recording(k_rates, target_rates, recordings)
            rows.append(score_row(input_name, target, "mae_bpm_recording", per_recording, variant))
            items[item_key(input_name, target, "mae_bpm_recording", variant)] = per_recording.astype(np.float32)
            outcome.scores += rows
            outcome.arrays.update(items)
        rows, items = score_metrics(k_rates, None, ("coverage",), input_name, "any", variant)
        outcome.scores += rows
        outcome.arrays.update(items)
        if has_truth and not gated:  # a gate abstains on rates; the waveform is the ungated row's
            corr = np.concatenate(correlations[k])
            outcome.scores.append(score_row(input_name, TRUTH, "waveform_corr", corr, variant))
            outcome.arrays[item_key(input_name, TRUTH, "waveform_corr", variant)] = corr.astype(np.float32)
    return rules, chooser, k_outputs, examples, test_rates, extra, (select_seconds, score_seconds)
