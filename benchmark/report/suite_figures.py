"""The figures a suite's layout declares (:class:`benchmark.core.report_layout.FigureSpec`), drawn
from the store alone: the finished cells, their arrays and the example test items of the report
data (:func:`benchmark.core.report_data.example_key`).

Kinds:

- ``sample_grid``: example test images, their true sources and each method's assigned estimates
  (options: ``sources``; ``prefix`` of the cells' arrays);
- ``training_curves``: each learned method's loss terms per epoch and seed;
- ``decoder_weights``: the first cell's decoder weights (paper Figure 4);
- ``signal_examples``: example test segments, the reference signals and each method's
  respiratory estimate (options: ``signals``);
- ``outputs``: every output of the first method that asks for it (``Method.show_outputs``) on
  one segment, the chosen ones marked; ``{method}`` in the file name is that method;
- ``bland_altman``: each method's rates against a reference's (options: ``reference``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.core.report_data import ReportData, example_key
from benchmark.core.report_layout import FigureSpec
from benchmark.report import figures as draw

__all__ = ["FIGURE_KINDS", "draw_figures"]

Cells = list[tuple[dict[str, Any], dict[str, np.ndarray]]]


def draw_figures(specs: tuple[FigureSpec, ...], records: list[dict], arrays: dict[str, dict[str, np.ndarray]],
                 data: ReportData, out_dir: Path) -> list[Path]:
    """Draw every declared figure that has cells to show; returns the written paths."""
    cells = [(record, arrays.get(record["cell_id"], {})) for record in records]
    paths = []
    for spec in specs:
        if spec.kind not in FIGURE_KINDS:
            raise ValueError(f"unknown figure kind {spec.kind!r} (known: {', '.join(FIGURE_KINDS)})")
        path = FIGURE_KINDS[spec.kind](spec, cells, data, Path(out_dir))
        if path is not None:
            paths.append(path)
    return paths


def _first_per_label(cells: Cells, key: str, accept: Callable[[dict], bool] = lambda record: True) -> Cells:
    """The first cell of each label that has the array ``key`` (and that ``accept`` takes)."""
    chosen: dict[str, tuple[dict, dict]] = {}
    for record, cell in cells:
        if key in cell and record["label"] not in chosen and accept(record):
            chosen[record["label"]] = (record, cell)
    return list(chosen.values())


def _sample_grid(spec: FigureSpec, cells: Cells, data: ReportData, out_dir: Path) -> Path | None:
    key = spec.options.get("prefix", "") + "example_estimates"
    per_method = {record["label"]: cell[key] for record, cell in _first_per_label(cells, key)}
    if not per_method:
        return None
    n = next(iter(per_method.values())).shape[0]
    mixtures = data.examples[example_key(spec.input, "mixtures")][:n]
    targets = data.examples[example_key(spec.input, "targets")][:n]
    return draw.sample_grid_figure(mixtures, targets, tuple(spec.options["sources"]), per_method, out_dir / spec.file)


def _training_curves(spec: FigureSpec, cells: Cells, data: ReportData, out_dir: Path) -> Path | None:
    histories: dict[str, dict[int, list[dict]]] = {}
    for record, _ in cells:
        details = record.get("details", {})
        fit = details["inputs"].get(spec.input, {}) if "inputs" in details else details
        if fit.get("fit_history"):
            histories.setdefault(record["label"], {})[record["seed"]] = fit["fit_history"]
    return draw.training_curves_figure(histories, out_dir / spec.file) if histories else None


def _decoder_weights(spec: FigureSpec, cells: Cells, data: ReportData, out_dir: Path) -> Path | None:
    prefix = spec.options.get("prefix", "") + "decoder_weights_"
    for record, cell in cells:
        keys = sorted((k for k in cell if k.startswith(prefix)), key=lambda k: int(k.rsplit("_", 1)[1]))
        if keys:
            n_encoders = record["params"].get("n_encoders", 1)
            return draw.decoder_weight_figure([cell[k] for k in keys], n_encoders, out_dir / spec.file)
    return None


def _rate_cells(spec: FigureSpec, cells: Cells) -> Cells:
    """The first cell of each label with example estimates of the figure's input."""
    return _first_per_label(cells, f"{spec.input}__example_estimates",
                            lambda record: spec.input in record["details"].get("inputs", {}))


def _signal_examples(spec: FigureSpec, cells: Cells, data: ReportData, out_dir: Path) -> Path | None:
    shown = _rate_cells(spec, cells)
    if not shown:
        return None
    per_method = {record["label"]: cell[f"{spec.input}__example_estimates"].astype(np.float32) for record, cell in shown}
    signals = {name: data.examples[example_key(spec.input, name)] for name in spec.options["signals"]
               if example_key(spec.input, name) in data.examples}
    return draw.mesa_examples_figure(signals, spec.input, per_method, out_dir / spec.file)


def _outputs(spec: FigureSpec, cells: Cells, data: ReportData, out_dir: Path) -> Path | None:
    for record, cell in _rate_cells(spec, cells):
        info = record["details"]["inputs"][spec.input]
        if info["outputs"] > 1 and record.get("show_outputs"):
            segment = data.examples[example_key(spec.input, spec.input)][0]
            outputs = cell[f"{spec.input}__example_outputs"].astype(np.float32)
            return draw.mesa_outputs_figure(segment, outputs, info["choice"], spec.input,
                                            out_dir / spec.file.format(method=record["method"]))
    return None


def _bland_altman(spec: FigureSpec, cells: Cells, data: ReportData, out_dir: Path) -> Path | None:
    shown = _rate_cells(spec, cells)
    if not shown:
        return None
    reference = data.examples[example_key(spec.input, "reference_rates")]
    pairs = {record["label"]: (cell[f"{spec.input}__test_rates"], reference[cell[f"{spec.input}__test_rows"]])
             for record, cell in shown}
    return draw.bland_altman_figure(pairs, spec.input, out_dir / spec.file, spec.options["reference"].replace("_", " "))


FIGURE_KINDS: dict[str, Callable[[FigureSpec, Cells, ReportData, Path], Path | None]] = {
    "sample_grid": _sample_grid,
    "training_curves": _training_curves,
    "decoder_weights": _decoder_weights,
    "signal_examples": _signal_examples,
    "outputs": _outputs,
    "bland_altman": _bland_altman,
}
"""Figure kind -> drawing function ``(spec, cells, report data, out_dir) -> path or None``."""
