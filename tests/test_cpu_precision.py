"""CPU bf16 (AMX) autocast: opt-in per profile, recorded in provenance, neutral in cell keys."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import methods
import methods.nn.device as device_module
from benchmark.core.provenance import precision
from benchmark.run.planning import CellSpec
from methods.base import RunContext, Split


def test_cpu_bf16_only_where_amx_is(monkeypatch):
    monkeypatch.setattr(device_module, "cpu_has_amx_bf16", lambda: False)
    assert not device_module.uses_cpu_bf16("cpu", True)
    assert precision({"amp": True, "cpu_bf16": True}, "cpu") == "fp32"
    monkeypatch.setattr(device_module, "cpu_has_amx_bf16", lambda: True)
    assert device_module.uses_cpu_bf16("cpu", True)
    assert not device_module.uses_cpu_bf16("cpu", False)
    assert not device_module.uses_cpu_bf16("cuda", True)
    assert precision({"amp": False, "cpu_bf16": True}, "cpu") == "bf16-autocast (CPU AMX)"
    assert precision({"amp": True, "cpu_bf16": False}, "cuda:0") == "bf16-autocast"
    with device_module.autocast("cpu", False, cpu_bf16=True):
        assert torch.is_autocast_enabled("cpu")
    with device_module.autocast("cpu", True, cpu_bf16=False):
        assert not torch.is_autocast_enabled("cpu")


def test_neutral_parameter_leaves_old_cell_keys_unchanged():
    methods.discover()
    params = methods.get("meae").profile_params("mesa", "quick")
    spec = lambda p: CellSpec("mesa", "quick", "meae", 0, p)  # noqa: E731
    without = {k: v for k, v in params.items() if k != "cpu_bf16"}
    assert spec({**without, "cpu_bf16": False}).fingerprint("d") == spec(without).fingerprint("d")
    assert spec({**without, "cpu_bf16": True}).fingerprint("d") != spec(without).fingerprint("d")


@pytest.mark.parametrize("name", ["meae", "supervised_ae"])
def test_cpu_bf16_training_runs_and_stays_close_to_fp32(monkeypatch, name):
    """On an AMX CPU bf16 gives finite, different outputs (training amplifies the rounding, so
    only the untrained forward pass is compared closely); elsewhere it is exactly fp32."""
    methods.discover()
    cls = methods.get(name)
    rng = np.random.default_rng(0)
    x = rng.random((64, 64, 64), dtype=np.float32)
    targets = rng.random((64, 2, 64, 64), dtype=np.float32) if cls.supervised else None
    split = Split(x, ("triangle", "circle"), targets)
    outputs, logits = {}, {}
    for flag in (False, True):
        params = {**cls.default_params(), **cls.profile_params("triangles", "tiny"), "cpu_bf16": flag}
        method = cls(**params).with_context(RunContext(device="cpu", n_threads=1))
        method.setup(split)
        batch = torch.from_numpy(x[:8, None])
        with torch.no_grad(), device_module.autocast("cpu", False, flag):
            first = method.network_.eval()(batch)
        logits[flag] = (first[0] if isinstance(first, tuple) else first).float().numpy()
        outputs[flag] = method.fit(split).separate(x[:8])
    assert np.all(np.isfinite(outputs[True]))
    difference = np.abs(outputs[True] - outputs[False]).max()
    first_difference = np.abs(logits[True] - logits[False]).max()
    if device_module.cpu_has_amx_bf16():
        assert difference > 0
        assert first_difference < 0.05 * np.abs(logits[False]).max()
    else:
        assert difference == 0 and first_difference == 0
