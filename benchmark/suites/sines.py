"""Sines: a slow sine and a fast sawtooth, summed into one channel (a 1-D linear toy suite)."""

import numpy as np
from scipy.signal import sawtooth

from benchmark.suites.base import DataHandle, Suite, SuiteOptions
from methods.base import Split

SOURCES = ("sine", "sawtooth")
RATE = 50.0  # samples per second


class SinesSuite(Suite):
    """Two periodic sources of random frequency and phase; the mixture is their sum.

    Data are drawn from one seed in memory (nothing to download or cache); splits are
    70 / 10 / 20 % of the items. Scored by the default protocol: assignment on validation,
    then MSE and SI-SDR per source on test.
    """

    name = "sines"
    description = "Sine + sawtooth, single-channel sum (example suite: 1-D, linear)"
    modality = "1d"
    metrics = ("mse", "si_sdr", "si_sdri")
    scoring_version = 2  # 2: SI-SDR floor and SI-SDRi
    profiles = {
        "tiny": {"n": 120, "length": 256, "seed": 0},
        "quick": {"n": 2000, "length": 512, "seed": 0},
        "paper": {"n": 20000, "length": 512, "seed": 0},
    }

    def prepare(self, profile: str, options: SuiteOptions) -> DataHandle:
        settings = self.settings(profile)
        key = "sines-{n}-{length}-{seed}".format(**settings)
        return DataHandle(self.name, profile, key, paths={}, info={**settings, "sampling_rate": RATE})

    def load_splits(self, handle: DataHandle) -> dict[str, Split]:
        n, length = handle.info["n"], handle.info["length"]
        rng = np.random.default_rng(handle.info["seed"])
        t = np.arange(length) / RATE
        hertz = rng.uniform([0.2, 1.0], [0.6, 3.0], size=(n, 2))
        phase = rng.uniform(0.0, 2 * np.pi, size=(n, 2))
        angle = 2 * np.pi * hertz[:, :, None] * t + phase[:, :, None]
        waves = np.stack([np.sin(angle[:, 0]), sawtooth(angle[:, 1])], axis=1)
        sources = ((waves + 1) / 4).astype(np.float32)  # each source in [0, 0.5]
        mixtures = sources.sum(axis=1)  # in [0, 1]
        cuts = np.cumsum([0, int(0.7 * n), int(0.1 * n), n - int(0.7 * n) - int(0.1 * n)])
        return {
            name: Split(mixtures[a:b], SOURCES, sources[a:b], sampling_rate=RATE)
            for name, a, b in zip(("train", "valid", "test"), cuts[:-1], cuts[1:], strict=True)
        }
