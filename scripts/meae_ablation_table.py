"""The MEAE ablation table: per variant and seed, does MEAE separate each source?

Reads a finished sweep (``python -m benchmark.tools.sweep scripts/sweeps/meae_authors_ablation.json
--out OUT --seed-major``) and the committed trivial cells of the triangles quick leaderboard;
for each variant it gathers the variant's cells of every seed beside the trivial cells in one
store and judges them with the leaderboard's own verdicts (:mod:`benchmark.evaluation.verdicts`): a seed
separates a source when it beats the best trivial baseline (chosen on validation) by a one-sided
Wilcoxon test, Holm-corrected over the variant's tests. The verdict metric is SI-SDRi (as in the
leaderboard); MSE is judged the same way as a second opinion::

    python scripts/meae_ablation_table.py --sweep OUT --out results/sweeps/meae_authors_ablation

Writes ``ablation.csv`` (one row per variant, seed, source and metric) and ``ablation.md``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmark.core.store import ResultStore  # noqa: E402
from benchmark.evaluation.verdicts import verdicts  # noqa: E402
from benchmark.report.reporting import scored_board  # noqa: E402
from benchmark.run.runner import complete_declared_fields, keep_report_data  # noqa: E402
from benchmark.suites import SuiteOptions, get_suite  # noqa: E402
from benchmark.tools.sweep import load_sweep  # noqa: E402

SUITE, PROFILE = "triangles", "quick"
TRIVIAL = ("mixture", "zeros", "half_mixture")
SOURCES = ("triangle", "circle")


def gather(sweep_out: Path, variant_runs: list, trivial_cells: Path, into: Path) -> Path:
    """A scratch store with the variant's MEAE cells of every seed (labelled ``meae``) and the
    committed trivial cells."""
    cells = into / SUITE / PROFILE / "cells"
    if cells.exists():
        shutil.rmtree(cells)
    cells.mkdir(parents=True)
    for run in variant_runs:
        for path in (sweep_out / "runs" / run.name / SUITE / PROFILE / "cells").glob("meae__*"):
            if path.suffix == ".json":  # one label for the variant's seeds (a reused profile cell has none)
                record = json.loads(path.read_text())
                record["label"] = "meae"
                record["cell_id"] = path.stem  # a reused profile cell keeps its own id inside
                (cells / path.name).write_text(json.dumps(record))
            else:
                shutil.copy2(path, cells / path.name)
    for name in TRIVIAL:
        for path in trivial_cells.glob(f"{name}__seed*"):
            shutil.copy2(path, cells / path.name)
    return into / SUITE / PROFILE


def judge(store_root: Path, handle) -> pd.DataFrame:
    """Per-seed verdicts of the store's MEAE rows on SI-SDRi and on MSE."""
    store, suite = ResultStore(store_root), get_suite(SUITE)
    keep_report_data(store, suite, handle)  # a gathered store has cells only: add what the runner keeps
    complete_declared_fields(store, SUITE, handle.key)
    scored = scored_board(SUITE, store, handle)
    frames = []
    for metric in ("si_sdri", "mse"):
        _, tests = verdicts(scored.board, scored.items, scored.valid, SUITE, (metric,),
                            scored.groups_for, suite.pairing_unit)
        frames.append(tests)
    tests = pd.concat(frames, ignore_index=True)
    seconds = {r["seed"]: (r.get("training_budget") or {}).get("train_seconds") for r in scored.records
               if r["method"] == "meae"}
    tests = tests[(tests["seed"] != "all") & ~tests["method"].str.contains("oracle")].copy()
    tests["seed"] = tests["seed"].astype(int)
    seeds = sorted(seconds)
    tests["seed"] = [seeds[i] for i in tests["seed"]]  # verdicts number the row's seeds in order
    tests["train_seconds"] = tests["seed"].map(seconds)
    values = scored.runs[scored.runs["label"].isin(set(tests["method"]))]
    mean = values.groupby(["seed", "target", "metric"])["value"].first()
    tests["value"] = [mean.get((s, t, m)) for s, t, m in zip(tests["seed"], tests["target"], tests["metric"], strict=True)]
    return tests


def markdown(table: pd.DataFrame, command: str) -> str:
    """Per variant: the seeds that separate both sources, per source, and the time per seed."""
    lines = [
        "# MEAE quick-budget ablation: the project's choices against the authors', one at a time",
        "",
        f"Command: `{command}`. Triangles quick data and splits (generator v2), widths 12-24-48-72, "
        "kernel 5, 12 epochs, batch 64, LR 3e-3 stepped at epoch 9, fp32. A seed *separates* a source "
        "when it beats the best trivial baseline (chosen on validation) by a one-sided Wilcoxon test over "
        "the test items, Holm-corrected over the variant's tests (the leaderboard's verdict); SI-SDRi is "
        "the verdict metric, MSE a second opinion.",
        "",
        "| variant | seeds | both sources separate (SI-SDRi) | triangle | circle | both (MSE) "
        "| mean SI-SDRi triangle / circle (dB) | mean MSE triangle / circle | train s per seed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for variant, rows in table.groupby("variant", sort=False):
        seeds = sorted(rows["seed"].unique())

        def separating(metric: str, source: str | None = None, rows: pd.DataFrame = rows) -> list[int]:
            picked = rows[rows["metric"] == metric]
            per_seed = picked.groupby("seed")["separates"].agg(list) if source is None else \
                picked[picked["target"] == source].groupby("seed")["separates"].agg(list)
            need = 1 if source else len(SOURCES)
            return [s for s, flags in per_seed.items() if sum(flags) == need and len(flags) == need]

        def means(metric: str, rows: pd.DataFrame = rows) -> str:
            picked = rows[rows["metric"] == metric]
            return " / ".join(f"{picked[picked['target'] == s]['value'].mean():.{2 if metric == 'si_sdri' else 4}f}"
                              for s in SOURCES)

        both = separating("si_sdri")
        lines.append(
            f"| {variant} | {','.join(map(str, seeds))} | **{len(both)}/{len(seeds)}** {both} "
            f"| {separating('si_sdri', 'triangle')} | {separating('si_sdri', 'circle')} "
            f"| {len(separating('mse'))}/{len(seeds)} {separating('mse')} | {means('si_sdri')} | {means('mse')} "
            f"| {rows.groupby('seed')['train_seconds'].first().mean():.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=Path, required=True, help="the sweep's --out folder")
    parser.add_argument("--sweep-file", type=Path, default=ROOT / "scripts/sweeps/meae_authors_ablation.json")
    parser.add_argument("--trivial-cells", type=Path, default=ROOT / "results" / SUITE / PROFILE / "cells")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".cache" / "bss-bench")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    runs = load_sweep(args.sweep_file)
    handle = get_suite(SUITE).prepare(PROFILE, SuiteOptions(cache_dir=args.cache_dir, progress=False))
    frames = []
    for variant in dict.fromkeys(run.variant for run in runs):
        variant_runs = [run for run in runs if run.variant == variant]
        store_root = gather(args.sweep, variant_runs, args.trivial_cells, args.out / "stores" / variant)
        tests = judge(store_root, handle)
        tests.insert(0, "variant", variant)
        tests.insert(1, "overrides", " ".join(variant_runs[0].overrides))
        frames.append(tests)
    table = pd.concat(frames, ignore_index=True)
    table["seed"] = table["seed"].astype(int)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "ablation.csv", index=False)
    command = "python scripts/meae_ablation_table.py " + " ".join(argv if argv is not None else sys.argv[1:])
    (args.out / "ablation.md").write_text(markdown(table, command))
    (args.out / "sweep_file.json").write_text(json.dumps(json.loads(args.sweep_file.read_text()), indent=1))
    print((args.out / "ablation.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
