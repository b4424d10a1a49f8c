"""Fitting, reloading and checkpoints of a cell's methods: the runner's job, lent to the suite.

A suite's protocol decides *what* a method is fitted on (which split, which input); the
:class:`Fitter` the runner hands it decides *how*: a fresh instance with the run's context, its
checkpoint folder, a reload when an interrupted run already saved the fitted model, the
targets removed for blind methods, and the fitted model saved atomically.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

from benchmark.core.data_handle import DataHandle
from methods.base import Method, Split

__all__ = ["Fit", "Fitter", "MethodFactory", "ModelOf"]

MethodFactory = Callable[[], Method]


class Fit(NamedTuple):
    """A fitted method, the seconds its fit took (0 when reloaded) and whether it was reloaded."""

    method: Method
    seconds: float
    reloaded: bool


@dataclass(frozen=True)
class Fitter:
    """Fits the methods of one cell, with checkpoints where the method can keep them.

    Parameters
    ----------
    factory : callable
        ``() -> Method``: a fresh, unfitted instance with the cell's parameters and run context.
    model_dir : Path or None
        Where the cell keeps its fitted model (``None``: nothing is saved or reloaded).
    model_of : ModelOf or None
        The other cell whose fitted model this cell also evaluates on its own data, when the
        plan says so (:attr:`benchmark.run.planning.CellSpec.model_of`; sim-to-real rows).
    """

    factory: MethodFactory
    model_dir: Path | None = None
    model_of: ModelOf | None = None

    def probe(self) -> Method:
        """A fresh unfitted instance, to read what the method declares."""
        return self.factory()

    def part(self, name: str) -> Fitter:
        """The fitter of one of several models of the cell (one per input or task): its own subfolder."""
        return Fitter(
            self.factory,
            self.model_dir / name if self.model_dir is not None else None,
            self.model_of.part(name) if self.model_of is not None else None,
        )

    def fit(self, train: Split, valid: Split | None) -> Fit:
        """Fit a fresh method on ``train`` (``valid`` for early stopping), or reload the one an
        earlier run saved.

        While fitting, ``model_dir/training`` is the method's ``context.work_dir``: neural
        methods write their per-epoch training checkpoint there, so a fit interrupted mid-way
        resumes from its last finished epoch. It is removed once the fitted model is saved, unless
        the time limit cut the fit: then it stays beside the saved model, so that a run with a
        longer limit can continue it (:mod:`benchmark.run.resume`).
        Unsupervised methods get the splits with their targets removed, so no evaluation
        protocol can leak the sources to them by mistake. A damaged checkpoint is refitted.
        """
        method = self.factory()
        model_dir = self.model_dir if method.can_checkpoint() else None
        if model_dir is not None and (model_dir / "config.json").exists():
            try:
                return Fit(type(method).load(model_dir, context=method.context), 0.0, True)
            except Exception:  # noqa: BLE001 - a damaged checkpoint is simply refitted
                pass
        if model_dir is not None:
            method.with_context(replace(method.context, work_dir=model_dir / "training"))
        if not method.supervised:
            train = train.blind()
            valid = valid.blind() if valid is not None else None
        start = time.perf_counter()
        method.fit(train, valid)
        seconds = time.perf_counter() - start
        if model_dir is not None:
            tmp = model_dir.with_name(model_dir.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            method.save(tmp)
            budget = method.fit_info().budget or {}
            if budget.get("cut") and (model_dir / "training").is_dir():
                (model_dir / "training").rename(tmp / "training")
            shutil.rmtree(model_dir, ignore_errors=True)
            tmp.rename(model_dir)
        return Fit(method, seconds, False)


@dataclass(frozen=True)
class ModelOf:
    """Another cell's model, which a cell also evaluates on its own data (a planning dependency).

    Parameters
    ----------
    fitter : Fitter
        Fits that cell's model on that cell's data, or reloads what that cell saved.
    handle : DataHandle
        That cell's data.
    """

    fitter: Fitter
    handle: DataHandle

    def part(self, name: str) -> ModelOf:
        """The same for one of several models (one per input or task)."""
        return ModelOf(self.fitter.part(name), self.handle)
