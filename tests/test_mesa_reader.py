"""Tests for the MESA reader, preprocessing, splits and segment cache (datasets/mesa/)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyedflib
import pytest

import datasets.mesa.cache
from datasets.mesa import (
    CHANNELS,
    NoUsableRecordingsError,
    PreprocessConfig,
    Recording,
    RecordingError,
    SegmentCache,
    build_segment_cache,
    find_recordings,
    read_recording,
    segment_recording,
    split_recordings,
)
from datasets.synthetic_psg.config import CohortConfig
from datasets.synthetic_psg.edf import write_cohort

FS = 200
SEGMENT = 12288
SEGMENT_S = SEGMENT / FS  # 61.44 s
DURATION = 125  # two segments


# --------------------------------------------------------------------------- EDF helpers


def ecg_like(rate: float, seconds: float, bpm: float | list[float] = 66.0) -> np.ndarray:
    """Spiky ECG-like wave; ``bpm`` may change every segment (a list, one entry per segment)."""
    t = np.arange(int(rate * seconds)) / rate
    rates = np.atleast_1d(bpm)
    beat_rate = rates[np.minimum((t // SEGMENT_S).astype(int), rates.size - 1)]
    phase = np.cumsum(beat_rate / 60.0) / rate
    since_beat = (phase % 1.0) * 60.0 / beat_rate  # seconds since the last beat
    r_wave = np.exp(-0.5 * ((since_beat - 0.3) / 0.012) ** 2)
    t_wave = 0.2 * np.exp(-0.5 * ((since_beat - 0.55) / 0.04) ** 2)
    return r_wave + t_wave


def sine(rate: float, seconds: float, hz: float, phase: float = 0.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.sin(2 * np.pi * hz * t + phase)


def write_edf(path: Path, channels: dict[str, tuple[float, np.ndarray]]) -> Path:
    """Write ``label -> (rate, samples)`` to an EDF file with pyedflib."""
    headers = []
    for label, (rate, samples) in channels.items():
        limit = float(np.ceil(np.max(np.abs(samples)) + 1.0))
        headers.append(
            {
                "label": label,
                "dimension": "",
                "sample_frequency": rate,
                "physical_min": -limit,
                "physical_max": limit,
                "digital_min": -32768,
                "digital_max": 32767,
                "transducer": "",
                "prefilter": "",
            }
        )
    writer = pyedflib.EdfWriter(str(path), len(channels), file_type=pyedflib.FILETYPE_EDF)
    try:
        writer.setSignalHeaders(headers)
        writer.writeSamples([np.asarray(s, dtype=np.float64) for _, s in channels.values()])
    finally:
        writer.close()
    return path


def mesa_channels(
    seconds: float = DURATION,
    bpm: float | list[float] = 66.0,
    labels: tuple[str, str, str, str] = ("EKG", "Pleth", "Flow", "Thor"),
) -> dict[str, tuple[float, np.ndarray]]:
    """A MESA-like channel set: ECG and PPG at 256 Hz, nasal pressure and belt at 32 Hz."""
    ecg, ppg, pres, thor = labels
    return {
        ecg: (256, ecg_like(256, seconds, bpm)),
        ppg: (256, sine(256, seconds, 1.1)),
        pres: (32, sine(32, seconds, 0.25)),
        thor: (32, sine(32, seconds, 0.25, phase=0.5)),
    }


@pytest.fixture
def good_edf(tmp_path: Path) -> Path:
    return write_edf(tmp_path / "mesa-sleep-0001.edf", mesa_channels())


def dominant_frequency(x: np.ndarray, rate: float) -> float:
    spectrum = np.abs(np.fft.rfft(x - x.mean()))
    return float(np.fft.rfftfreq(x.size, 1.0 / rate)[np.argmax(spectrum)])


# --------------------------------------------------------------------------- reading


def test_mesa_labels(good_edf: Path) -> None:
    recording = read_recording(good_edf)
    assert set(recording.signals) == set(CHANNELS)
    assert recording.source_labels == {
        "ECG": "EKG",
        "PPG": "Pleth",
        "nasal_pressure": "Flow",
        "thoracic": "Thor",
    }
    assert recording.missing == {}
    assert recording.record_id == "mesa-sleep-0001"


def test_alias_labels(tmp_path: Path) -> None:
    path = write_edf(tmp_path / "a.edf", mesa_channels(labels=("ECG", "PPG", "Pres", "Thor")))
    recording = read_recording(path)
    assert recording.source_labels == {
        "ECG": "ECG",
        "PPG": "PPG",
        "nasal_pressure": "Pres",
        "thoracic": "Thor",
    }


def test_labels_ignore_case_and_spaces_and_first_alias_wins(tmp_path: Path) -> None:
    channels = mesa_channels(labels=(" ekg ", "P L E T H", "Flow", "THOR"))
    channels["Pres"] = (32, sine(32, DURATION, 0.3))
    recording = read_recording(write_edf(tmp_path / "b.edf", channels))
    assert recording.source_labels["ECG"] == "ekg"  # EDF readers strip trailing spaces
    assert recording.source_labels["PPG"] == "P L E T H"
    assert recording.source_labels["nasal_pressure"] == "Pres"
    custom = PreprocessConfig(labels={"ECG": ("EKG",), "nasal_pressure": ("Flow", "Pres")})
    assert read_recording(tmp_path / "b.edf", custom).source_labels["nasal_pressure"] == "Flow"


def test_resampling_to_200_hz_keeps_length_and_frequency(tmp_path: Path) -> None:
    channels = mesa_channels()
    channels["EKG"] = (256, sine(256, DURATION, 7.0))
    channels["Thor"] = (32, sine(32, DURATION, 0.3))
    recording = read_recording(write_edf(tmp_path / "c.edf", channels))
    assert recording.sampling_rate == FS
    assert recording.source_rates == {
        "ECG": 256.0,
        "PPG": 256.0,
        "nasal_pressure": 32.0,
        "thoracic": 32.0,
    }
    assert recording.n_samples == DURATION * FS
    assert all(x.size == DURATION * FS for x in recording.signals.values())
    assert dominant_frequency(recording.signals["ECG"], FS) == pytest.approx(7.0, abs=0.01)
    assert dominant_frequency(recording.signals["thoracic"], FS) == pytest.approx(0.3, abs=0.01)
    middle = slice(FS, -FS)
    np.testing.assert_allclose(
        recording.signals["thoracic"][middle], sine(FS, DURATION, 0.3)[middle], atol=2e-3
    )
    np.testing.assert_allclose(
        recording.signals["ECG"][middle], sine(FS, DURATION, 7.0)[middle], atol=2e-3
    )


# --------------------------------------------------------------------------- segmenting


def test_segments_count_scaling_and_alignment(tmp_path: Path) -> None:
    seconds = 190  # 38,000 samples at 200 Hz: three whole segments
    channels = mesa_channels(seconds)
    channels["Pleth"] = (256, sine(256, seconds, 1.1))
    channels["Thor"] = (32, sine(32, seconds, 1.1))
    batch = segment_recording(read_recording(write_edf(tmp_path / "d.edf", channels)))
    assert len(batch) == batch.n_total == 3 and batch.dropped_hr == 0
    np.testing.assert_array_equal(batch.segment_index, [0, 1, 2])
    np.testing.assert_allclose(batch.start_time, [0.0, SEGMENT_S, 2 * SEGMENT_S])
    for channel in CHANNELS:
        rows = batch.signals[channel]
        assert rows.shape == (3, SEGMENT) and rows.dtype == np.float32
        assert batch.available[channel].all()
        np.testing.assert_allclose(rows.min(axis=1), 0.0, atol=1e-6)
        np.testing.assert_allclose(rows.max(axis=1), 1.0, atol=1e-6)
    # the same wave recorded at 256 Hz and at 32 Hz lines up after resampling
    np.testing.assert_allclose(batch.signals["PPG"], batch.signals["thoracic"], atol=0.02)
    np.testing.assert_allclose(batch.heart_rate, 66.0, atol=1.0)


def test_heart_rate_filter_drops_implausible_segment(tmp_path: Path) -> None:
    path = write_edf(tmp_path / "e.edf", mesa_channels(bpm=[60.0, 120.0]))
    recording = read_recording(path)
    both = segment_recording(recording)
    np.testing.assert_allclose(both.heart_rate, [60.0, 120.0], atol=1.5)
    strict = segment_recording(recording, PreprocessConfig(hr_range=(40.0, 90.0)))
    assert len(strict) == 1 and strict.dropped_hr == 1
    np.testing.assert_array_equal(strict.segment_index, [0])


def test_no_detectable_heart_rate_drops_segment(tmp_path: Path) -> None:
    channels = mesa_channels()
    channels["EKG"] = (256, np.random.default_rng(0).standard_normal(256 * DURATION) * 0.01)
    channels.pop("Pleth")
    noise = read_recording(write_edf(tmp_path / "f.edf", channels))
    batch = segment_recording(noise, PreprocessConfig(hr_range=(55.0, 75.0)))
    assert len(batch) == 0 and batch.dropped_hr == 2


def test_heart_rate_from_ppg_without_ecg(tmp_path: Path) -> None:
    channels = mesa_channels()
    channels.pop("EKG")
    batch = segment_recording(read_recording(write_edf(tmp_path / "g.edf", channels)))
    assert len(batch) == 2
    np.testing.assert_allclose(batch.heart_rate, 66.0, atol=1.5)
    assert list(batch.heart_rate_source) == ["PPG", "PPG"]
    assert not batch.available["ECG"].any() and np.isnan(batch.signals["ECG"]).all()


def test_flat_segment_makes_only_that_channel_segment_unavailable(tmp_path: Path) -> None:
    channels = mesa_channels()
    ppg = channels["Pleth"][1].copy()
    ppg[int(55 * 256) :] = 0.3  # flat from 55 s on: all of the second segment (61.44 s on)
    channels["Pleth"] = (256, ppg)
    batch = segment_recording(read_recording(write_edf(tmp_path / "h.edf", channels)))
    assert len(batch) == 2
    np.testing.assert_array_equal(batch.available["PPG"], [True, False])
    assert np.isnan(batch.signals["PPG"][1]).all() and np.isfinite(batch.signals["PPG"][0]).all()
    assert batch.available["ECG"].all() and batch.available["thoracic"].all()


def test_nan_segment_makes_only_that_channel_segment_unavailable(good_edf: Path) -> None:
    recording = read_recording(good_edf)
    thoracic = recording.signals["thoracic"].copy()
    thoracic[SEGMENT + 100] = np.nan
    patched = Recording(
        path=recording.path,
        record_id=recording.record_id,
        sampling_rate=FS,
        signals={**recording.signals, "thoracic": thoracic},
    )
    batch = segment_recording(patched)
    np.testing.assert_array_equal(batch.available["thoracic"], [True, False])
    assert batch.available["ECG"].all() and batch.available["nasal_pressure"].all()


def test_flat_channel_is_missing(tmp_path: Path) -> None:
    channels = mesa_channels()
    channels["EKG"] = (256, np.full(256 * DURATION, 0.25))
    recording = read_recording(write_edf(tmp_path / "i.edf", channels))
    assert "ECG" not in recording.signals and recording.missing["ECG"] == "constant signal"
    batch = segment_recording(recording)
    assert len(batch) == 2 and not batch.available["ECG"].any()
    assert batch.available["PPG"].all()


def test_ecg_only_recording(tmp_path: Path) -> None:
    path = write_edf(tmp_path / "j.edf", {"EKG": (256, ecg_like(256, DURATION))})
    recording = read_recording(path)
    assert set(recording.missing) == {"PPG", "nasal_pressure", "thoracic"}
    batch = segment_recording(recording)
    assert len(batch) == 2 and batch.available["ECG"].all()
    for channel in ("PPG", "nasal_pressure", "thoracic"):
        assert not batch.available[channel].any() and np.isnan(batch.signals[channel]).all()


def test_missing_reference_channel(tmp_path: Path) -> None:
    channels = mesa_channels()
    channels.pop("Thor")
    batch = segment_recording(read_recording(write_edf(tmp_path / "k.edf", channels)))
    assert not batch.available["thoracic"].any()
    for channel in ("ECG", "PPG", "nasal_pressure"):
        assert batch.available[channel].all()


# --------------------------------------------------------------------------- bad recordings


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "mesa-sleep-0009.edf"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(RecordingError, match="mesa-sleep-0009.edf: unreadable EDF") as info:
        read_recording(path)
    assert info.value.path == path


def test_truncated_file(good_edf: Path, tmp_path: Path) -> None:
    data = good_edf.read_bytes()
    truncated = tmp_path / "truncated.edf"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(RecordingError, match="truncated.edf: unreadable EDF"):
        read_recording(truncated)


def test_unexpected_sampling_rate(tmp_path: Path) -> None:
    channels = mesa_channels()
    channels["EKG"] = (128, ecg_like(128, DURATION))
    path = write_edf(tmp_path / "l.edf", channels)
    assert read_recording(path).source_rates["ECG"] == 128.0
    strict = PreprocessConfig(expected_rates={"ECG": (256,)})
    with pytest.raises(RecordingError, match=r"l.edf: unexpected sampling rate 128 Hz of ECG"):
        read_recording(path, strict)


def test_implausible_sampling_rate(tmp_path: Path) -> None:
    channels = mesa_channels()
    channels["Thor"] = (0.5, sine(0.5, DURATION, 0.05))
    with pytest.raises(RecordingError, match="implausible sampling rate 0.5 Hz of thoracic"):
        read_recording(write_edf(tmp_path / "m.edf", channels))


def test_no_ecg_and_no_ppg(tmp_path: Path) -> None:
    channels = mesa_channels()
    channels.pop("EKG")
    channels.pop("Pleth")
    with pytest.raises(RecordingError, match="no usable ECG and no usable PPG"):
        read_recording(write_edf(tmp_path / "n.edf", channels))
    flat = {"EKG": (256, np.zeros(256 * DURATION)), "Thor": (32, sine(32, DURATION, 0.2))}
    with pytest.raises(RecordingError, match="ECG: constant signal"):
        read_recording(write_edf(tmp_path / "o.edf", flat))


def test_shorter_than_one_segment(tmp_path: Path) -> None:
    path = write_edf(tmp_path / "p.edf", mesa_channels(seconds=60))
    with pytest.raises(RecordingError, match=r"p.edf: shorter than one segment \(60.0 s"):
        read_recording(path)


# --------------------------------------------------------------------------- splits


def test_split_is_by_recording_and_disjoint() -> None:
    ids = [f"mesa-sleep-{i:04d}" for i in range(1, 2057)]
    split = split_recordings(ids, seed=3)
    assert [len(split[s]) for s in ("train", "valid", "test")] == [450, 50, 500]
    sets = [set(split[s]) for s in ("train", "valid", "test")]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert split == split_recordings(ids, seed=3)
    assert split != split_recordings(ids, seed=4)


@pytest.mark.parametrize(
    "n, sizes", [(1, (0, 0, 1)), (2, (1, 0, 1)), (5, (2, 0, 3)), (8, (3, 1, 4)), (30, (13, 2, 15))]
)
def test_split_small_cohorts(n: int, sizes: tuple[int, int, int]) -> None:
    ids = [f"r{i}" for i in range(n)]
    split = split_recordings(ids, seed=0)
    assert tuple(len(split[s]) for s in ("train", "valid", "test")) == sizes
    assert sorted(split["train"] + split["valid"] + split["test"]) == sorted(ids)


def test_split_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="no recordings"):
        split_recordings([], seed=0)
    with pytest.raises(ValueError, match="unique"):
        split_recordings(["a", "a"], seed=0)


# --------------------------------------------------------------------------- cache


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """Five recordings in a flat folder: four good ones (one without PPG) and a corrupt one."""
    folder = tmp_path / "data"
    folder.mkdir()
    for i in range(1, 5):
        channels = mesa_channels(bpm=60.0 + 5 * i)
        if i == 2:
            channels.pop("Pleth")
        write_edf(folder / f"mesa-sleep-{i:04d}.edf", channels)
    (folder / "mesa-sleep-0005.edf").write_bytes(b"not an EDF file" * 100)
    return folder


def test_find_recordings(data_dir: Path, tmp_path: Path) -> None:
    assert [p.name for p in find_recordings(data_dir)] == [
        f"mesa-sleep-{i:04d}.edf" for i in range(1, 6)
    ]
    nested = tmp_path / "nested" / "polysomnography" / "edfs"
    nested.mkdir(parents=True)
    (nested / "mesa-sleep-0001.edf").write_bytes(b"")
    (nested / "notes.edf").write_bytes(b"")
    assert [p.name for p in find_recordings(tmp_path / "nested")] == ["mesa-sleep-0001.edf"]
    with pytest.raises(FileNotFoundError, match="data folder not found"):
        find_recordings(tmp_path / "absent")


def test_build_cache(data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bss_bench.mesa"):
        cache = build_segment_cache(data_dir, None, tmp_path / "cache", seed=1, progress=False)
    assert "mesa-sleep-0005.edf" in caplog.text
    summary = cache.summary
    assert [s["file"] for s in summary["skipped"]] == ["mesa-sleep-0005.edf"]
    assert "unreadable EDF" in summary["skipped"][0]["reason"]
    assert summary["missing_channels"]["mesa-sleep-0002"]["PPG"].startswith("no channel")
    expected = split_recordings([f"mesa-sleep-{i:04d}" for i in range(1, 5)], seed=1)  # the readable four
    seen: dict[str, set[str]] = {}
    total = 0
    for name in cache.splits:
        arrays = cache.split(name)
        n = summary["splits"][name]["segments"]
        total += n
        assert summary["splits"][name]["assigned"] == expected[name]
        assert arrays["recording"].shape == (n,)
        seen[name] = set(arrays["recording"].tolist())
        assert seen[name] <= set(expected[name])
        for channel in CHANNELS:
            assert isinstance(arrays[channel], np.memmap)
            assert arrays[channel].shape == (n, SEGMENT) and arrays[channel].dtype == np.float32
            available = arrays[f"available_{channel}"]
            assert np.isnan(arrays[channel][~available]).all()
            assert np.isfinite(arrays[channel][available]).all()
        ppg_missing = arrays["recording"] == "mesa-sleep-0002"
        np.testing.assert_array_equal(arrays["available_PPG"], ~ppg_missing)
        assert summary["splits"][name]["missing"]["PPG"] == int(ppg_missing.sum())
    assert total == 8  # four usable recordings of two segments
    assert not (seen["train"] & seen["test"] or seen["train"] & seen["valid"])
    assert "true_respiration" not in cache.channels
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]


def test_cache_hit_does_not_reprocess(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = build_segment_cache(data_dir, None, tmp_path / "cache", seed=1, progress=False)

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("recording processed again")

    # build_segment_cache looks _process_recording up in datasets.mesa.cache, so patch it there.
    monkeypatch.setattr(datasets.mesa.cache, "_process_recording", fail)
    again = build_segment_cache(data_dir, None, tmp_path / "cache", seed=1, progress=False)
    assert again.root == first.root and again.summary == first.summary
    with pytest.raises(AssertionError, match="processed again"):
        build_segment_cache(data_dir, None, tmp_path / "cache", seed=2, progress=False)
    assert SegmentCache(first.root).split("test")["ECG"].shape[1] == SEGMENT


def test_cache_signals_subset(data_dir: Path, tmp_path: Path) -> None:
    cache = build_segment_cache(
        data_dir, None, tmp_path / "cache", seed=1, signals=("PPG",), progress=False
    )
    assert cache.channels == ["PPG", "nasal_pressure", "thoracic"]
    skipped = {s["file"] for s in cache.summary["skipped"]}
    assert skipped == {"mesa-sleep-0002.edf", "mesa-sleep-0005.edf"}
    for name in cache.splits:
        assert "ECG" not in cache.split(name)


def test_no_usable_recordings(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    with pytest.raises(NoUsableRecordingsError, match="no EDF recordings found in"):
        build_segment_cache(folder, None, tmp_path / "cache", progress=False)
    (folder / "mesa-sleep-0001.edf").write_bytes(b"\x00" * 1000)
    write_edf(folder / "mesa-sleep-0002.edf", mesa_channels(seconds=30))
    with pytest.raises(NoUsableRecordingsError, match=f"no usable recording in {folder}"):
        build_segment_cache(folder, None, tmp_path / "cache", progress=False)
    assert not list((tmp_path / "cache").iterdir())


def test_cache_with_true_respiration_in_parallel(tmp_path: Path) -> None:
    write_cohort(CohortConfig(subjects=3, minutes=2.1, seed=4), tmp_path / "psg", progress=False)
    (tmp_path / "psg" / "polysomnography" / "edfs" / "mesa-sleep-0004.edf").write_bytes(b"x")
    cache = build_segment_cache(
        tmp_path / "psg", None, tmp_path / "cache", seed=0, n_jobs=2, progress=False
    )
    assert cache.channels[-1] == "true_respiration"
    assert [s["file"] for s in cache.summary["skipped"]] == ["mesa-sleep-0004.edf"]
    segments = 0
    for name in cache.splits:
        arrays = cache.split(name)
        segments += len(arrays["recording"])
        truth = arrays["true_respiration"]
        assert arrays["available_true_respiration"].all()
        if len(truth):
            np.testing.assert_allclose(truth.min(axis=1), 0.0, atol=1e-6)
            np.testing.assert_allclose(truth.max(axis=1), 1.0, atol=1e-6)
    assert segments == 6
