"""The scoring code may not change results without a bump of the suite's ``scoring_version``.

The golden values below were computed by the scoring functions at the versions named in
``GOLDEN``. If one of these tests fails after a change to the project's scoring code, bump the
suite's ``scoring_version`` (its cells are then recomputed) and record the new values under the
new version. If it fails after a library upgrade (scikit-image, NeuroKit2), the cells computed
with the old library are marked stale by the runner anyway: record the new values.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.evaluation.metrics import mse, ssim
from benchmark.evaluation.respiration import respiratory_rate
from benchmark.suites.mesa import MesaSuite
from benchmark.suites.triangles import TrianglesSuite

GOLDEN = {
    ("triangles", 1): {
        "mse": [0.00916947207235725, 0.0087067841448571, 0.008962281676132038, 0.00861753584709941],
        "ssim": [0.9449899009349881, 0.9494794258450322, 0.9460903730762055, 0.9473025066445965],
    },
    ("mesa", 1): {"rate_bpm": 16.174323261821858},
    ("mesa", 2): {
        "rate_bpm": 16.174323261821858,
        "agreement": {
            "mae_bpm": 1.0683110421338977, "bias_bpm": 0.4970711241389557, "loa_low_bpm": -2.0125481726539296,
            "loa_high_bpm": 3.006690420931841, "rmse_bpm": 1.3577208934344422, "within2_pct": 86.84210526315789,
        },
        # Derived at report time from the per-segment differences (both rates over the same segments).
        "mae_per_recording": [0.29915109495872727, 1.2121961214423607, 0.1923804775976521, 0.24497279672103822],
    },
    # SI-SDR with its floor (images and sines version 2): a constant estimate sits at -50 dB.
    ("si_sdr", 2): [-50.0, -50.0, 9.445118872855515, 9.610240090599515],
}


def _images():
    rng = np.random.default_rng(2026)
    a = rng.random((4, 64, 64)).astype(np.float32)
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1).astype(np.float32)
    return a, b, rng


def test_triangles_scoring_matches_its_version():
    golden = GOLDEN[("triangles", TrianglesSuite.scoring_version)]
    a, b, _ = _images()
    assert mse(a, b).tolist() == pytest.approx(golden["mse"], rel=1e-9)
    assert ssim(a, b).tolist() == pytest.approx(golden["ssim"], rel=1e-9)


def test_mesa_scoring_matches_its_version():
    golden = GOLDEN[("mesa", MesaSuite.scoring_version)]
    _, _, rng = _images()
    t = np.arange(12288) / 200.0
    x = np.sin(2 * np.pi * 0.27 * t + 0.4) + 0.3 * np.sin(2 * np.pi * 1.1 * t) + 0.05 * rng.standard_normal(t.size)
    assert respiratory_rate(x, 200.0) == pytest.approx(golden["rate_bpm"], rel=1e-9)


def test_mesa_mae_per_recording_matches_its_version():
    from benchmark.suites.mesa import mae_per_recording

    golden = GOLDEN[("mesa", MesaSuite.scoring_version)]
    rng = np.random.default_rng(7)
    reference = rng.uniform(10, 20, 40)
    estimate = reference + rng.normal(0.5, 1.5, 40)
    estimate[3], reference[5] = np.nan, np.nan
    recordings = np.repeat(np.arange(4), 10)
    values = mae_per_recording(estimate, reference, recordings)
    assert values.tolist() == pytest.approx(golden["mae_per_recording"], rel=1e-9)
    # Reports derive it from a cell's stored per-segment differences: the same numbers.
    from benchmark.evaluation.scoring import derive_per_group, item_key

    record = {"cell_id": "c", "scores": [{"input": "ECG", "target": "thoracic", "metric": "mae_bpm_recording",
                                          "value": 99.0, "n": 4}]}
    arrays = {"c": {item_key("ECG", "thoracic", "bias_bpm"): (estimate - reference).astype(np.float32)}}
    derive_per_group([record], arrays, lambda _: recordings)
    derived = arrays["c"][item_key("ECG", "thoracic", "mae_bpm_recording")]
    np.testing.assert_allclose(derived, golden["mae_per_recording"], rtol=1e-5)
    assert record["scores"][0]["value"] == pytest.approx(np.mean(golden["mae_per_recording"]), rel=1e-5)
    # Both means over the segments where both have a rate: recording 0 leaves segment 3 out of the
    # reference's mean too (the mutation that averages each side over its own segments fails here).
    both = np.isfinite(estimate[:10]) & np.isfinite(reference[:10])
    assert values[0] == pytest.approx(abs(estimate[:10][both].mean() - reference[:10][both].mean()))
    assert values[0] != pytest.approx(abs(np.nanmean(estimate[:10]) - np.nanmean(reference[:10])))


def test_si_sdr_with_its_floor_matches_the_image_and_sine_suites_version():
    from benchmark.evaluation.metrics import si_sdr
    from benchmark.suites.images import ImagesSuite
    from benchmark.suites.sines import SinesSuite

    assert ImagesSuite.scoring_version == SinesSuite.scoring_version == 2
    a, b, _ = _images()
    estimates = b.copy()
    estimates[0] = 0.3  # a constant (empty) estimate
    estimates[1] = 0.0
    assert si_sdr(estimates, a).tolist() == pytest.approx(GOLDEN[("si_sdr", 2)], rel=1e-9)


def test_mesa_agreement_statistics_match_their_version_and_their_definitions():
    from benchmark.evaluation.metrics import get_metric

    golden = GOLDEN[("mesa", MesaSuite.scoring_version)]["agreement"]
    rng = np.random.default_rng(7)
    reference = rng.uniform(10, 20, 40)
    estimate = reference + rng.normal(0.5, 1.5, 40)
    estimate[3], reference[5] = np.nan, np.nan
    values = {name: get_metric(name).score(estimate, reference)[1] for name in golden}
    assert values == pytest.approx(golden, rel=1e-9)
    diff = (estimate - reference)[np.isfinite(estimate - reference)]  # the textbook definitions
    assert values["bias_bpm"] == pytest.approx(diff.mean())
    assert values["loa_high_bpm"] == pytest.approx(diff.mean() + 1.96 * diff.std(ddof=1))
    assert values["rmse_bpm"] == pytest.approx(np.sqrt(np.mean(diff**2)))
    assert values["within2_pct"] == pytest.approx(100 * np.mean(np.abs(diff) <= 2))
