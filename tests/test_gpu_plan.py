"""The GPU timing plan: training sizes, FLOPs per sample, which measured speed times a step."""

from __future__ import annotations

import pytest

from benchmark.tools.gpu_plan import (
    TrainingWork,
    expected_seconds,
    model_cost,
    plan_rows,
    render_plan,
    speed_basis,
    train_samples,
)
from benchmark.tools.speed import method_on_random_batch, step_flops

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_training_sizes_follow_the_suites_split_rules():
    # 150,000 pairs: 20 % test, 4 % validation.
    assert train_samples("triangles", "paper") == 150_000 - 30_000 - 6_000
    assert train_samples("triangles", "tiny") == 160 - 32 - 16
    # 120 synthetic subjects: 60 training recordings, 6 of them validation; 58 whole 61.44-s segments per hour.
    assert train_samples("mesa", "paper") == 54 * 58
    with pytest.raises(ValueError, match="no training-size rule"):
        train_samples("sines", "paper")


def test_flops_per_sample_extrapolated_from_two_batches_equal_a_direct_count():
    gflop, parameters = model_cost("meae", "triangles", "tiny", 8)
    method, _, batch = method_on_random_batch("meae", "triangles", "tiny", 8, "cpu", 1, {})
    method._forward = method.network_
    assert gflop == pytest.approx(step_flops(method, batch) / 8 / 1e9, rel=1e-9)
    assert parameters == method.fit_info().n_parameters


def _record(model, device, tflop, concurrent=1, layout="grouped"):
    return {"model": model, "suite": "triangles", "profile": "paper", "precision": "bf16-autocast", "batch": 256,
            "device": f"cuda ({device})", "achieved_tflop_s": tflop, "samples_per_s": tflop * 100,
            "concurrent": concurrent, "encoder_layout": layout, "decoder_layout": "native"}


def test_a_step_is_timed_by_the_closest_measured_speed():
    records = [_record("meae", "NVIDIA H100 80GB HBM3", 36.0), _record("meae", "NVIDIA H100 80GB HBM3", 40.0, layout="split"),
               _record("meae", "NVIDIA H200", 30.0)]
    basis = speed_basis(records, "meae", "triangles", "paper", "NVIDIA H200")
    assert basis.tflop_s == 30.0 and "H200" in basis.source and "timed as" not in basis.source
    basis = speed_basis(records[:2], "meae", "triangles", "paper", "NVIDIA H200")
    assert basis.tflop_s == 40.0 and "layout split/native" in basis.source and "timed as the H100" in basis.source
    basis = speed_basis(records, "supervised_ae", "triangles", "paper", "NVIDIA H200")
    assert "at meae's FLOP rate" in basis.source
    together = [*records, _record("meae", "NVIDIA H200", 75.0, concurrent=3)]
    assert speed_basis(together, "meae", "triangles", "paper", "NVIDIA H200", processes=3).tflop_s == 75.0
    assert "no record of 2 at once" in speed_basis(together, "meae", "triangles", "paper", "NVIDIA H200", processes=2).source
    assert speed_basis(records, "meae", "triangles", "paper", "Tesla T4") is None


def test_expected_seconds_are_the_step_flops_over_the_measured_rate():
    work = TrainingWork("meae", "triangles", "paper", seeds=3, inputs=1, epochs=100, train_samples=114_000,
                        gflop_per_sample=2.817, parameters=1_866_578)
    rows = plan_rows([work], [_record("meae", "NVIDIA H200", 36.1)], "NVIDIA H200")
    assert rows[0]["expected_s"] == pytest.approx(3 * 100 * 114_000 * 2.817e9 / 36.1e12, abs=0.1)
    assert rows[0]["expected_s"] == pytest.approx(expected_seconds(work, speed_basis(
        [_record("meae", "NVIDIA H200", 36.1)], "meae", "triangles", "paper", "NVIDIA H200")), abs=0.1)
    # fp32 weights and Adam's two moments of the paper's triangles MEAE.
    assert rows[0]["checkpoint_mib_per_model"] == pytest.approx(21.4, abs=0.05)
    text = render_plan([*rows, *plan_rows([work], [], "NVIDIA H200")])
    assert "meae triangles/paper" in text and "unknown" in text and "no speed record" in text
