"""MESA Sleep polysomnography: EDF reader, preprocessing, recording splits and segment cache.

Preprocessing follows section 4.2 of "Blind Source Separation of Single-Channel Mixtures via
Multi-Encoder Autoencoders":

1. every channel is read at its own sampling rate (MESA: ``EKG`` and ``Pleth`` 256 Hz, ``Flow``
   and ``Thor`` 32 Hz) and resampled to 200 Hz with a polyphase filter
   (``scipy.signal.resample_poly``, rational factor from the two rates);
2. the recording is cut into non-overlapping 12,288-sample segments (61.44 s), aligned across
   channels;
3. each segment of each channel is min-max scaled to [0, 1];
4. segments whose mean heart rate (NeuroKit2 R peaks of the ECG, or pulse peaks of the PPG when
   the ECG is unavailable) lies outside 40-180 bpm or cannot be determined are dropped.

Channels are found through a configurable label map with aliases (:data:`DEFAULT_LABELS`; first
alias present wins, compared case-insensitively without spaces).  A channel that is absent or
entirely constant is *missing* for the recording; a segment of a channel that is constant or
contains a non-finite value is *unavailable* for that segment.  Both are recorded, never fatal,
as long as the recording has an ECG or a PPG.  Recordings that cannot be used raise
:class:`RecordingError`; :func:`build_segment_cache` logs and skips them.

Splits are made by recording, never by segment (:func:`split_recordings`).  The cache holds one
folder per split with memory-mappable float32 arrays, see :func:`build_segment_cache`.

The code is split by job into submodules, each importing only those listed before it:
:mod:`~datasets.mesa.config` (constants, errors, :class:`PreprocessConfig`),
:mod:`~datasets.mesa.resampling` (:func:`resample`), :mod:`~datasets.mesa.split` (finding and
splitting recordings), :mod:`~datasets.mesa.reader` (EDF and true-respiration reading),
:mod:`~datasets.mesa.preprocessing` (segmentation and heart-rate screening) and
:mod:`~datasets.mesa.cache` (building and reading the segment cache).  Their public names are
re-exported here.
"""

from __future__ import annotations

from datasets.mesa.cache import SegmentCache, build_segment_cache
from datasets.mesa.cache import _write_split as _write_split  # used by tests/test_rows.py
from datasets.mesa.config import (
    CHANNELS,
    DEFAULT_LABELS,
    INPUT_CHANNELS,
    SPLITS,
    TRUE_RESPIRATION,
    NoUsableRecordingsError,
    PreprocessConfig,
    RecordingError,
)
from datasets.mesa.config import (
    PIPELINE_VERSION as PIPELINE_VERSION,
)
from datasets.mesa.preprocessing import SegmentBatch, heart_rate, segment_recording
from datasets.mesa.reader import Recording, read_recording, read_true_respiration, truth_file
from datasets.mesa.resampling import resample
from datasets.mesa.split import find_recordings, split_recordings

__all__ = [
    "CHANNELS",
    "DEFAULT_LABELS",
    "INPUT_CHANNELS",
    "SPLITS",
    "TRUE_RESPIRATION",
    "NoUsableRecordingsError",
    "PreprocessConfig",
    "Recording",
    "RecordingError",
    "SegmentBatch",
    "SegmentCache",
    "build_segment_cache",
    "find_recordings",
    "heart_rate",
    "read_recording",
    "read_true_respiration",
    "resample",
    "segment_recording",
    "split_recordings",
    "truth_file",
]
