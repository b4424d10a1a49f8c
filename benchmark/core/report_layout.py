"""How a suite's leaderboard and figures are laid out, declared as data and kept in the store.

A suite declares its layout (:meth:`benchmark.suites.base.Suite.report_layout`); the runner keeps
it beside the report data of the data set (:mod:`benchmark.core.report_data`), and
:mod:`benchmark.report.markdown` and :mod:`benchmark.report.suite_figures` render it without
asking the suite anything. Texts may name what only the report knows with ``$profile``,
``$seeds``, ``$device`` and ``$n_test`` (:class:`string.Template` fields).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["ROW_LABELS", "SHOW_WHEN", "FigureSpec", "ReportLayout", "TableSpec"]

ROW_LABELS = ("method", "method (input)", "method (input) vs target")
"""How a table labels its rows: by method, or with the input (and the target) in the label, which
puts every input of the board in one table."""

SHOW_WHEN = ("always", "measured", "rows")
"""When a table is shown: always, only if its input has measured rows, only if it has rows."""


@dataclass(frozen=True)
class TableSpec:
    """One markdown table of a leaderboard.

    Parameters
    ----------
    heading : str
        Markdown written before the table (its section title and words), ``""`` for none.
    input : str
        The input whose rows the table shows (``""``: the first input of the board). Ignored with
        a ``rows`` label that names the input.
    metrics : tuple of str
        The metrics of the columns, in order; each gets one column per target found.
    column_targets : tuple of str
        Order of the targets (targets not named follow in order of appearance).
    exclude_targets : tuple of str
        Targets whose rows the table leaves out.
    rows : str
        One of :data:`ROW_LABELS`.
    titles : dict of str to str
        Column title templates, looked up as ``"metric:target"``, ``"*:target"``, ``"metric"``,
        ``"*"``; fields ``{label}`` and ``{arrow}`` (the metric's), ``{target}`` (underscores as
        spaces) and ``{Target}`` (capitalised). Default ``"{Target} {label} {arrow}"``.
    oracle_table : bool
        Whether rows of kind ``oracle`` go to a table of their own after the main one.
    verdicts : bool
        Whether the table has the *Separates* column.
    show : str
        One of :data:`SHOW_WHEN`.
    """

    heading: str = ""
    input: str = ""
    metrics: tuple[str, ...] = ()
    column_targets: tuple[str, ...] = ()
    exclude_targets: tuple[str, ...] = ()
    rows: str = "method"
    titles: dict[str, str] = field(default_factory=dict)
    oracle_table: bool = True
    verdicts: bool = True
    show: str = "always"

    def __post_init__(self) -> None:
        if self.rows not in ROW_LABELS:
            raise ValueError(f"rows must be one of {ROW_LABELS}, not {self.rows!r}")
        if self.show not in SHOW_WHEN:
            raise ValueError(f"show must be one of {SHOW_WHEN}, not {self.show!r}")

    def title_template(self, metric: str, target: str) -> str:
        """The title template of one (metric, target) column."""
        for key in (f"{metric}:{target}", f"*:{target}", metric, "*"):
            if key in self.titles:
                return self.titles[key]
        return "{Target} {label} {arrow}"


@dataclass(frozen=True)
class FigureSpec:
    """One figure drawn from the store (:mod:`benchmark.report.suite_figures` lists the kinds).

    Parameters
    ----------
    kind : str
        What is drawn, e.g. ``"sample_grid"`` or ``"bland_altman"``.
    file : str
        File name under the store's ``figures/``.
    input : str
        The input whose cells it shows.
    options : dict
        What the kind needs besides the cells (source names, a reference's name).
    """

    kind: str
    file: str
    input: str = "mixture"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportLayout:
    """Everything a report needs from a suite besides the cells and the data.

    Parameters
    ----------
    title : str
        The leaderboard's first line (markdown heading).
    notes : tuple of str
        Paragraphs after the title.
    tables : tuple of TableSpec
        The leaderboard's tables, in order.
    figures : tuple of FigureSpec
        The figures.
    metrics : tuple of str
        Every metric the suite scores (the verdict summary's columns).
    headline_metrics : tuple of str
        Metrics of the paired comparisons.
    verdict_metrics : tuple of str
        Metrics the *separates* verdict is decided on, in order of preference.
    pairing_unit : str
        What a bootstrap resample and a paired test treat as independent.
    reference_rows : list of dict
        Published values as tidy leaderboard rows (``source="paper"``).
    """

    title: str
    notes: tuple[str, ...] = ()
    tables: tuple[TableSpec, ...] = ()
    figures: tuple[FigureSpec, ...] = ()
    metrics: tuple[str, ...] = ()
    headline_metrics: tuple[str, ...] = ()
    verdict_metrics: tuple[str, ...] = ()
    pairing_unit: str = "test items"
    reference_rows: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly values."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReportLayout:
        """What :meth:`to_dict` gave."""
        data = dict(data)
        data["tables"] = tuple(TableSpec(**_tuples(t)) for t in data.get("tables", ()))
        data["figures"] = tuple(FigureSpec(**f) for f in data.get("figures", ()))
        for name in ("notes", "metrics", "headline_metrics", "verdict_metrics"):
            data[name] = tuple(data.get(name, ()))
        return cls(**data)


def _tuples(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()}
