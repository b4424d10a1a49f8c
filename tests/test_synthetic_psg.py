"""Tests for the synthetic MESA-layout cohort (the datasets/synthetic_psg package)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyedflib
import pytest
from scipy.signal import resample_poly

from benchmark.evaluation.respiration import respiratory_rate
from datasets.synthetic_psg.__main__ import main
from datasets.synthetic_psg.config import CHANNEL_RATES, DIFFICULTIES, TRUTH_RATE, CohortConfig
from datasets.synthetic_psg.edf import edf_path, truth_path, write_cohort
from datasets.synthetic_psg.subject import simulate_subject

REPO_ROOT = Path(__file__).resolve().parents[1]
MINUTES = 3.0
SEGMENT = 12288


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[CohortConfig, Path, list[Path]]:
    config = CohortConfig(subjects=2, minutes=MINUTES, seed=5)
    out = tmp_path_factory.mktemp("psg")
    return config, out, write_cohort(config, out, progress=False)


def _read_edf(path: Path) -> dict[str, tuple[float, np.ndarray]]:
    with pyedflib.EdfReader(str(path)) as reader:
        return {
            label: (reader.getSampleFrequency(i), reader.readSignal(i))
            for i, label in enumerate(reader.getSignalLabels())
        }


def test_layout_labels_and_rates(cohort: tuple[CohortConfig, Path, list[Path]]) -> None:
    config, out, paths = cohort
    assert paths == [
        out / "polysomnography" / "edfs" / "mesa-sleep-0001.edf",
        out / "polysomnography" / "edfs" / "mesa-sleep-0002.edf",
    ]
    assert json.loads((out / "cohort.json").read_text())["config"] == config.to_dict()
    channels = _read_edf(paths[0])
    assert list(channels) == ["EKG", "Pleth", "Flow", "Thor"]
    for label, (rate, samples) in channels.items():
        assert rate == CHANNEL_RATES[label]
        assert samples.size == rate * MINUTES * 60
        assert np.ptp(samples) > 0
    with pyedflib.EdfReader(str(paths[0])) as reader:
        assert reader.getTransducer(2) == "Nasal pressure cannula"
        assert reader.getDigitalMinimum(0) == -32768 and reader.getDigitalMaximum(0) == 32767


def test_edf_matches_simulation(cohort: tuple[CohortConfig, Path, list[Path]]) -> None:
    config, _, paths = cohort
    signals = simulate_subject(1, config)["signals"]
    for label, (_, samples) in _read_edf(paths[1]).items():
        expected = signals[label]
        step = np.ptp(expected) * 1.2 / 65535  # physical limits have a 5 % margin
        np.testing.assert_allclose(samples, expected, atol=2 * step)


def test_truth_file(cohort: tuple[CohortConfig, Path, list[Path]]) -> None:
    config, out, _ = cohort
    path = truth_path(out, 0)
    assert path.name == "mesa-sleep-0001-resp.npz"
    with np.load(path, allow_pickle=False) as truth:
        n = int(MINUTES * 60 * TRUTH_RATE)
        assert float(truth["sampling_rate"]) == TRUTH_RATE
        assert truth["respiration"].shape == truth["rate"].shape == truth["apnea"].shape == (n,)
        assert truth["apnea"].dtype == bool
        np.testing.assert_array_equal(
            truth["respiration"], simulate_subject(0, config)["truth"]["respiration"]
        )


def test_existing_files_are_skipped(cohort: tuple[CohortConfig, Path, list[Path]]) -> None:
    config, out, paths = cohort
    before = [p.stat().st_mtime_ns for p in paths]
    assert write_cohort(config, out, progress=False) == paths
    assert [p.stat().st_mtime_ns for p in paths] == before
    with pytest.raises(ValueError, match="another configuration"):
        write_cohort(CohortConfig(subjects=2, minutes=MINUTES, seed=6), out, progress=False)


def test_deterministic_per_seed_and_index() -> None:
    config = CohortConfig(subjects=3, minutes=1.0, seed=11)
    a, b = simulate_subject(2, config), simulate_subject(2, config)
    for label in CHANNEL_RATES:
        np.testing.assert_array_equal(a["signals"][label], b["signals"][label])
    more = simulate_subject(2, CohortConfig(subjects=9, minutes=1.0, seed=11))
    np.testing.assert_array_equal(a["signals"]["EKG"], more["signals"]["EKG"])
    other_seed = simulate_subject(2, CohortConfig(subjects=3, minutes=1.0, seed=12))
    other_index = simulate_subject(1, config)
    for other in (other_seed, other_index):
        assert not np.allclose(a["signals"]["EKG"], other["signals"]["EKG"])
        assert not np.allclose(a["truth"]["respiration"], other["truth"]["respiration"])


def test_rates_within_physiological_ranges() -> None:
    config = CohortConfig(subjects=6, minutes=2.0, seed=0)
    for index in range(config.subjects):
        subject = simulate_subject(index, config)
        rate = subject["truth"]["rate"]
        assert 6.0 <= rate.min() and rate.max() <= 30.0
        assert 8.0 <= subject["params"]["resp_rate_mean"] <= 24.0
        beat_rate = 60.0 / np.diff(subject["truth"]["beat_times"]).mean()
        assert 40.0 <= beat_rate <= 110.0


def test_true_rate_matches_nasal_pressure_rate() -> None:
    config = CohortConfig(subjects=3, minutes=4.0, seed=2)
    differences = []
    for index in range(config.subjects):
        subject = simulate_subject(index, config)
        # 32 Hz -> 200 Hz, as the MESA preprocessing does
        truth = resample_poly(subject["truth"]["respiration"].astype(float), 25, 4)
        pressure = resample_poly(subject["signals"]["Flow"], 25, 4)
        for start in range(0, truth.size - SEGMENT + 1, SEGMENT):
            window = slice(start, start + SEGMENT)
            true_rate = respiratory_rate(truth[window])
            assert np.isfinite(true_rate)
            differences.append(abs(true_rate - respiratory_rate(pressure[window])))
    differences = np.array(differences)
    assert len(differences) == 9
    assert np.mean(differences <= 1.5) >= 0.7


def test_noise_scale_zero_gives_clean_signals() -> None:
    noisy = simulate_subject(0, CohortConfig(subjects=1, minutes=1.0, seed=3))
    clean = simulate_subject(0, CohortConfig(subjects=1, minutes=1.0, seed=3, noise_scale=0.0))
    assert np.std(np.diff(clean["signals"]["Flow"])) < np.std(np.diff(noisy["signals"]["Flow"]))


def test_config_validation_and_key() -> None:
    assert CohortConfig().key() == CohortConfig().key()
    assert CohortConfig(seed=1).key() != CohortConfig().key()
    assert CohortConfig(subjects=3).subject_key() == CohortConfig(subjects=4).subject_key()
    for bad in (
        {"subjects": 0},
        {"minutes": 0.0},
        {"seed": -1},
        {"noise_scale": -1.0},
        {"apnea_per_hour": (5.0, 1.0)},
        {"difficulty": "hard"},
    ):
        with pytest.raises(ValueError):
            CohortConfig(**bad)
    with pytest.raises(ValueError, match="index"):
        simulate_subject(3, CohortConfig(subjects=3))


def test_paths() -> None:
    assert edf_path("x", 41).as_posix() == "x/polysomnography/edfs/mesa-sleep-0042.edf"
    assert truth_path("x", 0).as_posix() == "x/polysomnography/truth/mesa-sleep-0001-resp.npz"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "datasets.synthetic_psg", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_writes_files(tmp_path: Path) -> None:
    result = _cli(
        "--subjects", "2", "--minutes", "0.5", "--seed", "1", "--out", str(tmp_path), "--quiet"
    )
    assert result.returncode == 0, result.stderr
    assert edf_path(tmp_path, 1).is_file() and truth_path(tmp_path, 1).is_file()
    assert not list(tmp_path.rglob("*.tmp"))


def test_cli_error_exits_without_traceback(tmp_path: Path) -> None:
    result = _cli("--subjects", "0", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "synthetic_psg: error: subjects must lie in 1..9999, got 0"
    ]


@pytest.mark.parametrize(
    "args",
    [["--minutes", "abc"], ["--jobs", "0"], ["--minutes", "0"], [], ["--difficulty", "hard"]],
    ids=["bad-minutes", "zero-jobs", "zero-minutes", "missing-out", "bad-difficulty"],
)
def test_main_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    out = [] if not args else ["--out", str(tmp_path / "out")]
    assert main([*args, *out]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_main_error_for_other_cohort(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--subjects", "1", "--minutes", "0.2", "--out", str(tmp_path), "--quiet"]) == 0
    assert main(["--subjects", "1", "--minutes", "0.3", "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "another configuration" in err and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------- difficulty

#: Keys and array hashes of the easy model, computed before the difficulty option existed.
EASY_KEY, EASY_SUBJECT_KEY = "c33b99ba7919ef2f", "f6b30d961a5f2c63"
EASY_ARRAY_HASHES = ["83ee310d55479000", "00ac27eb1e0f9f10"]


def _array_hash(subject: dict[str, object]) -> str:
    digest = hashlib.sha256()
    for label in ("EKG", "Pleth", "Flow", "Thor"):
        digest.update(np.ascontiguousarray(subject["signals"][label], dtype=np.float64).tobytes())
    for name in ("respiration", "rate", "apnea", "breath_onsets", "beat_times"):
        digest.update(np.ascontiguousarray(subject["truth"][name]).tobytes())
    return digest.hexdigest()[:16]


def test_easy_difficulty_keeps_keys_and_signals() -> None:
    easy = CohortConfig(subjects=12, minutes=15.0, seed=0, difficulty="easy")
    assert (easy.key(), easy.subject_key()) == (EASY_KEY, EASY_SUBJECT_KEY)
    assert "difficulty" not in easy.to_dict()
    assert CohortConfig.from_dict(easy.to_dict()) == easy  # a missing field reads as easy
    realistic = CohortConfig(subjects=12, minutes=15.0, seed=0)
    assert realistic.difficulty == "realistic" and DIFFICULTIES == ("easy", "realistic")
    assert realistic.to_dict()["difficulty"] == "realistic"
    assert CohortConfig.from_dict(realistic.to_dict()) == realistic
    assert realistic.key() != EASY_KEY and realistic.subject_key() != EASY_SUBJECT_KEY
    tiny = CohortConfig(subjects=2, minutes=0.5, seed=0, difficulty="easy")
    assert [_array_hash(simulate_subject(i, tiny)) for i in range(2)] == EASY_ARRAY_HASHES


def _pair(index: int, **kwargs: object) -> tuple[dict[str, object], dict[str, object]]:
    easy = simulate_subject(index, CohortConfig(difficulty="easy", **kwargs))
    return easy, simulate_subject(index, CohortConfig(difficulty="realistic", **kwargs))


def test_realistic_differs_from_easy_and_is_deterministic() -> None:
    config = CohortConfig(subjects=3, minutes=1.0, seed=11)
    easy, realistic = _pair(2, subjects=3, minutes=1.0, seed=11)
    again = simulate_subject(2, config)
    more = simulate_subject(2, CohortConfig(subjects=9, minutes=1.0, seed=11))
    for label in CHANNEL_RATES:
        assert realistic["signals"][label].shape == easy["signals"][label].shape
        assert not np.allclose(realistic["signals"][label], easy["signals"][label])
        np.testing.assert_array_equal(realistic["signals"][label], again["signals"][label])
        np.testing.assert_array_equal(realistic["signals"][label], more["signals"][label])
    assert not np.allclose(realistic["truth"]["respiration"], easy["truth"]["respiration"])
    other = simulate_subject(2, CohortConfig(subjects=3, minutes=1.0, seed=12))
    assert not np.allclose(realistic["signals"]["EKG"], other["signals"]["EKG"])


def _zero_runs(x: np.ndarray) -> np.ndarray:
    """Lengths (samples) of the runs of exact zeros in ``x``."""
    edges = np.diff(np.concatenate([[0], (x == 0).astype(np.int8), [0]]))
    return np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)


def test_realistic_has_ectopic_beats_pauses_and_irregular_breathing() -> None:
    easy_cv, real_cv, real_pauses, easy_pauses = [], [], 0, 0
    for index in range(4):
        easy, real = _pair(index, subjects=4, minutes=6.0, seed=0)
        for subject, cvs in ((easy, easy_cv), (real, real_cv)):
            intervals = np.diff(subject["truth"]["breath_onsets"])
            cvs.append(intervals.std() / intervals.mean())
            assert 6.0 <= subject["truth"]["rate"].min() and subject["truth"]["rate"].max() <= 30
        # central pauses: the true volume rests at exactly 0 for 2 s or more
        real_pauses += int(np.sum(_zero_runs(real["truth"]["respiration"]) >= 2 * TRUTH_RATE))
        easy_pauses += int(np.sum(_zero_runs(easy["truth"]["respiration"]) >= 2 * TRUTH_RATE))
        if index == 0:  # a subject with ectopy: premature beats followed by a long pause
            rr = np.diff(real["truth"]["beat_times"])
            early = np.flatnonzero(rr[1:-1] < 0.85 * rr[:-2]) + 1
            assert real["params"]["ectopic_per_min"] > 1.0 and early.size >= 3
            before, after = rr[early - 1], rr[early + 1]
            assert np.sum(after > 1.05 * before) >= 2  # a pause longer than the normal cycle
            easy_rr = np.diff(easy["truth"]["beat_times"])
            assert np.all(easy_rr[1:] > 0.85 * easy_rr[:-1])
    assert easy_pauses == 0 and real_pauses >= 2
    assert np.mean(real_cv) > 1.5 * np.mean(easy_cv)


def test_cli_difficulty_easy_matches_write_cohort(tmp_path: Path) -> None:
    config = CohortConfig(subjects=1, minutes=0.3, seed=2, difficulty="easy")
    write_cohort(config, tmp_path / "api", progress=False)
    args = ["--subjects", "1", "--minutes", "0.3", "--seed", "2", "--quiet"]
    assert main([*args, "--difficulty", "easy", "--out", str(tmp_path / "cli")]) == 0
    for path in (edf_path, truth_path):
        assert path(tmp_path / "cli", 0).read_bytes() == path(tmp_path / "api", 0).read_bytes()
    assert main([*args, "--out", str(tmp_path / "default")]) == 0
    stored = json.loads((tmp_path / "default" / "cohort.json").read_text())["config"]
    assert stored["difficulty"] == "realistic"
