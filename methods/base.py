"""The uniform Method interface every separation method implements.

A method is one class in one file under ``methods/``. It is registered with
:func:`register`, which makes it discoverable by its ``name`` with no edit
anywhere else. The runner drives every method the same way::

    method = MethodClass(**params)          # parameters only, no work
    method.fit(train, valid)                # unsupervised methods see mixtures only
    candidates = method.separate(mixtures)  # (n, K, *signal_shape)

Candidate outputs come back in the method's own order; the evaluation protocol
assigns them to sources afterwards (see :mod:`benchmark.evaluation.assignment`).
"""

from __future__ import annotations

import inspect
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

Modality = str  # "1d" (signals, shape (n, L)) or "2d" (images, shape (n, H, W))


@dataclass(frozen=True)
class Split:
    """One data split handed to a method.

    Parameters
    ----------
    mixtures : np.ndarray
        Single-channel mixtures, shape ``(n, L)`` for 1-D or ``(n, H, W)`` for
        2-D data, values in ``[0, 1]``. May be a memory map or a lazy row view
        (:class:`datasets.rows.RowView`: ``shape``, ``ndim``, ``len``, indexing
        by int, slice or int array, and ``np.asarray``), so methods must only
        index it or convert it, never assume an ``np.ndarray``.
    source_names : tuple of str
        Names of the sources the benchmark scores (known to every method: it is
        part of the task statement, like the number of sources in a BSS paper).
    targets : np.ndarray or None
        True sources, shape ``(n, S, *signal_shape)`` in ``source_names`` order.
        ``None`` whenever the split is given to an unsupervised method. Same
        kinds of array as ``mixtures``.
    input_name : str
        What the mixtures are (``"mixture"`` for images, ``"ECG"`` or ``"PPG"``).
    sampling_rate : float or None
        Samples per second of 1-D signals.
    """

    mixtures: np.ndarray
    source_names: tuple[str, ...]
    targets: np.ndarray | None = None
    input_name: str = "mixture"
    sampling_rate: float | None = None

    def __post_init__(self) -> None:
        if self.mixtures.ndim not in (2, 3):
            raise ValueError(
                f"mixtures must have shape (n, L) or (n, H, W), got {self.mixtures.shape}"
            )
        if self.targets is not None and (
            self.targets.shape[0] != self.mixtures.shape[0]
            or self.targets.shape[2:] != self.mixtures.shape[1:]
            or self.targets.shape[1] != len(self.source_names)
        ):
            raise ValueError(
                f"targets shape {self.targets.shape} does not match mixtures "
                f"{self.mixtures.shape} and {len(self.source_names)} sources"
            )

    @property
    def modality(self) -> Modality:
        """``"1d"`` or ``"2d"``, from the mixture shape."""
        return "1d" if self.mixtures.ndim == 2 else "2d"

    @property
    def signal_shape(self) -> tuple[int, ...]:
        """Shape of one mixture."""
        return tuple(self.mixtures.shape[1:])

    def __len__(self) -> int:
        return int(self.mixtures.shape[0])

    def blind(self) -> Split:
        """The same split with the true sources removed."""
        return replace(self, targets=None)


@dataclass(frozen=True)
class RunContext:
    """Run-time settings that are not part of a method's identity.

    Parameters
    ----------
    device : str
        Resolved torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
    n_threads : int
        CPU threads the method may use.
    progress : bool
        Whether to show progress bars.
    work_dir : Path or None
        A private scratch folder for checkpoints, or ``None``.
    time_limit : float or None
        Seconds of training a method may use (``--time-limit``); epoch-based
        methods stop after the step that reaches it. ``None``: no limit.
    layout : str or None
        Execution layout of multi-encoder networks, ``"encoder/decoder"`` (``--layout``; see
        :func:`methods.nn.layouts.parse_layout`): the same model computed by other
        kernels, like another device. ``None``: the default (``grouped/native``).
    compile : bool
        ``torch.compile`` the network of multi-encoder methods for training (``--compile``): the
        same model through generated kernels, like ``layout``; a method's own ``compile_model``
        parameter (part of its key) does the same.
    """

    device: str = "cpu"
    n_threads: int = 1
    progress: bool = False
    work_dir: Path | None = None
    time_limit: float | None = None
    layout: str | None = None
    compile: bool = False


@dataclass(frozen=True)
class FitInfo:
    """What a fitted method reports about its own training; the runner saves it in the cell record.

    Methods that train in epochs fill it (:class:`methods.nn.network_method.NetworkMethod`);
    for every other method all fields are ``None``.

    Attributes
    ----------
    history : list of dict or None
        One entry per epoch: number, seconds, samples, completeness and mean losses
        (read by :mod:`methods.convergence`).
    events : dict or None
        Non-finite-loss and resume events of the fit.
    budget : dict or None
        How much training the fit got (epochs and samples asked and done, time limit, early stop).
    n_parameters : int or None
        Trainable parameters of the fitted model.
    """

    history: list[dict[str, Any]] | None = None
    events: dict[str, Any] | None = None
    budget: dict[str, Any] | None = None
    n_parameters: int | None = None

    def record_fields(self) -> dict[str, Any]:
        """The fields under the names a cell record's ``details`` keeps them."""
        return {"fit_history": self.history, "training_events": self.events, "training_budget": self.budget,
                "n_parameters": self.n_parameters}


class Method(ABC):
    """Base class of every separation method.

    Subclasses set the class attributes below, take their parameters as keyword
    arguments of ``__init__`` with defaults (stored unchanged, no work), and
    implement :meth:`fit` and :meth:`separate`.

    Attributes
    ----------
    name : str
        Registry name, used on the command line (``--methods name``).
    description : str
        One line for ``run_benchmark.py --list``.
    supervised : bool
        Whether :meth:`fit` needs the true sources (``train.targets``); such a method runs
        only on suites that provide them.
    learns : bool
        Whether :meth:`fit` learns anything from the training data (False for per-segment
        heuristics and the mixture floor): a method that learns nothing is scored even where
        there are no training recordings, and gets no rows trained on other data.
    kind : str
        ``"method"`` (a separation method) or ``"trivial"`` (an estimate that does no
        separation, such as the mixture itself or an all-zero image): trivial rows form their
        own block of every table, and a method *separates* only where it beats the best of them.
    modalities : tuple of str
        Signal kinds it handles: ``"1d"``, ``"2d"``.
    target_kinds : tuple of str
        What the suite scores that the method's outputs can serve: ``"waveform"`` (the sources
        themselves) and/or ``"rate"`` (a rate read off the output, as for respiration).
    device_support : str
        ``"none"`` (pure CPU code), ``"optional"`` (uses a GPU when given one)
        or ``"required"``.
    inputs : tuple of str or None
        Inputs the method is designed for (e.g. ``("ECG",)`` for an
        ECG-derived-respiration heuristic); ``None`` means any input.
    profiles : dict
        Parameters on top of the defaults, keyed ``(suite, profile)`` (e.g. the paper's
        configuration for ``("triangles", "paper")``) or ``(modality, profile)`` (e.g.
        ``("2d", "tiny")``: a small test configuration for any 2-D suite without its own
        entry). See :meth:`profile_params`.
    show_outputs : bool
        Whether figures should show every output of the method (its decomposition is the
        point of the method, as for MEAE), not only the one scored.
    quality_gate : bool
        Rate suites also score a *quality-gated* row: the method abstains on segments where its
        chosen output's respiratory-band power share is under a threshold chosen on the
        validation recordings, so that it is compared with abstaining estimators (smart
        fusion) on equal terms.
    dependencies : tuple of str
        Packages whose versions can change the method's results; a cell
        computed with other versions of them is marked stale
        (:mod:`benchmark.core.provenance`).
    version : int
        Version of the method's code; bump it when a change alters results
        (it is part of every cell key, so the method's cells are recomputed).
    neutral_params : dict
        Parameters added after cells were computed, with the value that reproduces the
        behaviour from before they existed; at that value they are left out of cell keys, so
        the cells computed before stay valid.
    param_constraints : dict
        Allowed values per parameter, checked before any cell runs, e.g. ``{"epochs": ">=1",
        "activation": "relu|linear"}`` (:mod:`benchmark.run.parameter_checks`).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    supervised: ClassVar[bool] = False
    learns: ClassVar[bool] = True
    kind: ClassVar[str] = "method"
    target_kinds: ClassVar[tuple[str, ...]] = ("waveform", "rate")
    modalities: ClassVar[tuple[Modality, ...]] = ("1d", "2d")
    device_support: ClassVar[str] = "none"
    inputs: ClassVar[tuple[str, ...] | None] = None
    profiles: ClassVar[dict[tuple[str, str], dict[str, Any]]] = {}
    dependencies: ClassVar[tuple[str, ...]] = ("numpy", "scipy", "scikit-learn", "torch")
    version: ClassVar[int] = 1
    neutral_params: ClassVar[dict[str, Any]] = {}
    param_constraints: ClassVar[dict[str, str]] = {}
    show_outputs: ClassVar[bool] = False
    quality_gate: ClassVar[bool] = False

    context: RunContext = RunContext()

    # ----------------------------------------------------------------- params
    @classmethod
    def param_names(cls) -> list[str]:
        """Names of the ``__init__`` parameters."""
        signature = inspect.signature(cls.__init__)
        return [
            p.name
            for p in signature.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        """Defaults of the ``__init__`` parameters."""
        signature = inspect.signature(cls.__init__)
        return {
            name: signature.parameters[name].default
            for name in cls.param_names()
            if signature.parameters[name].default is not inspect.Parameter.empty
        }

    def get_params(self) -> dict[str, Any]:
        """Current parameters, as passed to ``__init__``."""
        return {name: getattr(self, name) for name in self.param_names()}

    @classmethod
    def profile_params(cls, suite: str, profile: str, modality: Modality | None = None) -> dict[str, Any]:
        """Parameters a suite/profile pair sets on top of the defaults.

        The entry ``(suite, profile)`` of :attr:`profiles` (e.g. the paper's hyperparameters
        for ``("triangles", "paper")``); without one, the entry ``(modality, profile)`` (e.g.
        ``("1d", "tiny")``), so a new suite runs with a method's defaults plus its small
        test configuration, with no edit to the method. Override for computed settings.
        """
        if (suite, profile) in cls.profiles:
            return dict(cls.profiles[suite, profile])
        return dict(cls.profiles.get((modality, profile), {})) if modality is not None else {}

    def with_context(self, context: RunContext) -> Method:
        """Attach run-time settings (device, threads); returns ``self``."""
        self.context = context
        return self

    # ---------------------------------------------------------------- contract
    @classmethod
    def check_input(cls, input_name: str) -> str | None:
        """Why this method does not take ``input_name``, or ``None`` if it does."""
        if cls.inputs is not None and input_name not in cls.inputs:
            return f"{cls.name} is designed for {'/'.join(cls.inputs)} input, not {input_name}"
        return None

    @classmethod
    def check_applicable(
        cls, modality: Modality, inputs: tuple[str, ...], device: str = "cpu", targets_available: bool = True,
        target_kind: str = "waveform",
    ) -> str | None:
        """Why this method cannot run on data of a kind, or ``None`` if it can.

        Parameters
        ----------
        modality : str
            ``"1d"`` or ``"2d"``.
        inputs : tuple of str
            Inputs the data offers (``("mixture",)``, ``("ECG", "PPG")``).
        device : str
            The run device.
        targets_available : bool
            Whether the training data comes with true sources (supervised methods need them).
        target_kind : str
            What the suite scores: ``"waveform"`` or ``"rate"``.
        """
        if modality not in cls.modalities:
            return f"{cls.name} handles {'/'.join(cls.modalities)} signals, not {modality}"
        if cls.inputs is not None and not set(cls.inputs) & set(inputs):
            return f"{cls.name} is designed for {'/'.join(cls.inputs)} input; the data offers {'/'.join(inputs)}"
        if target_kind not in cls.target_kinds:
            return f"{cls.name} serves {'/'.join(cls.target_kinds)} targets; the suite scores a {target_kind}"
        if cls.supervised and not targets_available:
            return f"{cls.name} is supervised and the data has no training targets"
        if cls.device_support == "required" and not device.startswith("cuda"):
            return f"{cls.name} requires a GPU and the run device is {device}"
        return None

    @abstractmethod
    def fit(self, train: Split, valid: Split | None = None) -> Method:
        """Learn from the training split; returns ``self``.

        ``train.targets`` is ``None`` for unsupervised methods. ``valid`` (same
        rules) may be used for model selection.
        """

    @abstractmethod
    def separate(self, mixtures: np.ndarray) -> np.ndarray:
        """Candidate source estimates for a batch of mixtures.

        Parameters
        ----------
        mixtures : np.ndarray
            Shape ``(n, *signal_shape)``.

        Returns
        -------
        np.ndarray
            Shape ``(n, K, *signal_shape)``, float32, in the method's own order.
        """

    def diagnostics(self) -> dict[str, np.ndarray]:
        """Arrays worth keeping for figures (e.g. decoder weight blocks)."""
        return {}

    def fit_info(self) -> FitInfo:
        """What the fit reports about itself (empty by default; epoch-trained methods fill it)."""
        return FitInfo()

    # ------------------------------------------------------------- persistence
    def save(self, directory: str | Path) -> None:
        """Save the fitted state to ``directory`` (``config.json`` + state files)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {"method": self.name, "params": self.get_params()}
        (directory / "config.json").write_text(json.dumps(config, indent=2, default=str))
        self._save_state(directory)

    @classmethod
    def load(cls, directory: str | Path, context: RunContext | None = None) -> Method:
        """Rebuild a fitted method saved with :meth:`save`."""
        directory = Path(directory)
        config = json.loads((directory / "config.json").read_text())
        if config["method"] != cls.name:
            raise ValueError(f"{directory} holds a '{config['method']}' model, not '{cls.name}'")
        method = cls(**config["params"])
        if context is not None:
            method.with_context(context)
        method._load_state(directory)
        return method

    @classmethod
    def can_checkpoint(cls) -> bool:
        """Whether the class implements :meth:`_save_state` / :meth:`_load_state`.

        Only such methods are checkpointed after fitting; the others are refitted
        when an interrupted cell is rerun.
        """
        return cls._save_state is not Method._save_state and cls._load_state is not Method._load_state

    def _save_state(self, directory: Path) -> None:  # noqa: B027 - optional hook
        """Write fitted state (override); default: nothing to save."""

    def _load_state(self, directory: Path) -> None:  # noqa: B027 - optional hook
        """Read fitted state (override); default: nothing to load."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


def modality_profiles(
    tiny: dict[str, Any], quick: dict[str, Any], modalities: tuple[Modality, ...] = ("1d", "2d"),
) -> dict[tuple[str, str], dict[str, Any]]:
    """``(modality, profile)`` entries of :attr:`Method.profiles`: what a suite without its own
    entry uses (a new suite then needs no edit to the method)."""
    return {(m, name): dict(params) for m in modalities for name, params in (("tiny", tiny), ("quick", quick))}


_REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator adding a :class:`Method` subclass to the registry."""
    if not cls.name:
        raise TypeError(f"{cls.__qualname__} must set a non-empty `name`")
    existing = _REGISTRY.get(cls.name)
    if existing is not None and existing.__qualname__ != cls.__qualname__:
        raise TypeError(f"method name '{cls.name}' is used by {existing} and {cls}")
    _REGISTRY[cls.name] = cls
    return cls


def registry() -> dict[str, type[Method]]:
    """The registered methods (after :func:`methods.discover`), by name."""
    return dict(sorted(_REGISTRY.items()))
