"""Re-export façade of the torch helpers of the neural methods, by their former module name.

The helpers live in modules along their jobs; new code imports from those:

* :mod:`methods._device`: ``resolve_device``, ``seed_and_threads``, ``autocast``;
* :mod:`methods._batches`: ``BatchSource``, ``add_channel_axis``, ``predict_in_batches``,
  ``reconstruct_full``;
* :mod:`methods._steps`: training steps (``TrainingStep``, ``GradientStep``,
  ``optimisation_step``, ``guarded_update``);
* :mod:`methods._loop`: the epoch loop (``run_epochs``, ``train_epochs``) and its
  non-finite guard (``GuardSettings``, ``TrainingDiverged``, ``TrainingEvents``);
* :mod:`methods._checkpoint`: per-epoch training checkpoints and saved weights;
* :mod:`methods._network_method`: ``NetworkMethod``, the base class of the network methods.
"""

from __future__ import annotations

from methods._batches import (
    GPU_RESIDENT_SHARE,
    RESIDENT_LIMIT_BYTES,
    UPLOAD_CHUNK_BYTES,
    BatchSource,
    add_channel_axis,
    predict_in_batches,
    reconstruct_full,
)
from methods._checkpoint import (
    CHECKPOINT_FILE,
    global_rng_state,
    load_torch_state,
    read_training_checkpoint,
    save_torch_state,
    set_global_rng_state,
    write_training_checkpoint,
)
from methods._device import autocast, resolve_device, seed_and_threads
from methods._loop import (
    EpochResult,
    GuardSettings,
    TrainingDiverged,
    TrainingEvents,
    TrainingLog,
    run_epochs,
    train_epochs,
)
from methods._network_method import MultiEncoderMethod, NetworkMethod
from methods._steps import GradientStep, TrainingStep, guarded_update, optimisation_step

__all__ = [
    "CHECKPOINT_FILE", "GPU_RESIDENT_SHARE", "RESIDENT_LIMIT_BYTES", "UPLOAD_CHUNK_BYTES",
    "BatchSource", "EpochResult", "GradientStep", "GuardSettings", "MultiEncoderMethod", "NetworkMethod",
    "TrainingDiverged", "TrainingEvents", "TrainingLog", "TrainingStep", "add_channel_axis", "autocast",
    "global_rng_state", "guarded_update", "load_torch_state", "optimisation_step", "predict_in_batches",
    "read_training_checkpoint", "reconstruct_full", "resolve_device", "run_epochs", "save_torch_state",
    "seed_and_threads", "set_global_rng_state", "train_epochs", "write_training_checkpoint",
]
