"""The speed benchmark's layouts, concurrent processes and kernel records (CPU, tiny profile)."""

from __future__ import annotations

import pytest

from benchmark.tools.speed import measure, measure_concurrent, parse_layouts

TINY = dict(model="meae", suite="triangles", profile="tiny", batch=4, steps=1, warmup=1, device="cpu")


def test_layouts_parse_and_unknown_ones_are_refused():
    assert len(parse_layouts("all")) == 6 and ("dense", "conv") in parse_layouts("all")
    assert parse_layouts("split, dense/conv") == [("split", "native"), ("dense", "conv")]
    with pytest.raises(ValueError, match="unknown layout 'blocked/native'"):
        parse_layouts("blocked/native")


def test_every_layout_counts_the_model_flops_and_records_its_kernels():
    grouped = measure(**TINY, threads=1, overrides={"decoder_conv": "transposed"}, kernels=True)
    dense = measure(**TINY, threads=1, overrides={"decoder_conv": "transposed"}, layout="dense/conv", kernels=True)
    assert (grouped["encoder_layout"], dense["encoder_layout"], dense["decoder_layout"]) == ("grouped", "dense", "conv")
    # The dense layout runs 3x the encoder FLOPs, but the record counts the model's, as in the grouped one.
    assert dense["gflop_per_sample"] == grouped["gflop_per_sample"] > 0
    assert grouped["cudnn_version"] is None and grouped["onednn"] in (True, False)
    names = [kernel["name"] for kernel in grouped["conv_kernels"]]
    assert "aten::convolution_backward" in names
    assert all(name.startswith("aten::") and "conv" in name for name in names)
    assert all(kernel["calls"] >= 1 and kernel["ms"] >= 0 for kernel in grouped["conv_kernels"])


def test_concurrent_processes_report_their_summed_throughput():
    record = measure_concurrent(2, {**TINY, "steps": 2, "threads": 1, "overrides": {}, "kernels": False})
    assert record["concurrent"] == 2 and record["threads"] == 2
    assert [p["seed"] for p in record["per_process"]] == [0, 1]
    slowest = min(p["samples_per_s"] for p in record["per_process"])
    # Summed over the common span: at least the slowest process's own rate, at most the sum of both.
    assert slowest * 0.5 <= record["samples_per_s"] <= sum(p["samples_per_s"] for p in record["per_process"]) * 1.01
    assert "start_s" not in record and "seed" not in record


def test_library_versions_name_cudnn_on_cuda_and_onednn_on_a_cpu():
    from benchmark.core.environment import library_versions

    cuda = library_versions("cuda:0")  # reads torch's build settings; needs no GPU
    assert set(cuda) == {"cudnn_version", "cudnn_benchmark", "cudnn_deterministic", "cuda_runtime", "tf32_convolutions"}
    assert set(library_versions("cpu")) == {"cudnn_version", "onednn"} and library_versions("cpu")["cudnn_version"] is None
