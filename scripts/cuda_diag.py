"""Find which setting makes the quick triangles MEAE fail on CUDA (illegal memory access).

Each variant runs in its own process (a CUDA error poisons the context):
``python scripts/cuda_diag.py`` runs them all and prints one line each.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

VARIANTS = [
    "amp=1,bench=1,chans=quick", "amp=1,bench=0,chans=quick", "amp=0,bench=1,chans=quick",
    "amp=0,bench=0,chans=quick", "amp=1,bench=1,chans=paper", "amp=1,bench=1,chans=k7",
]


def one(variant: str) -> None:
    import numpy as np
    import torch

    import methods
    import methods.nn.network_method as network_method
    from methods.base import RunContext, Split

    opts = dict(item.split("=") for item in variant.split(","))
    original = network_method.seed_and_threads

    def patched(*args):
        original(*args)
        torch.backends.cudnn.benchmark = opts["bench"] == "1"

    network_method.seed_and_threads = patched
    cls = methods.get("meae")
    params = {**cls.default_params(), **cls.profile_params("triangles", "quick"), "epochs": 1, "amp": opts["amp"] == "1"}
    if opts["chans"] == "paper":
        params.update(channels=(24, 48, 96, 144), hidden=96, kernel_size=7)
    if opts["chans"] == "k7":
        params.update(kernel_size=7)
    rng = np.random.default_rng(0)
    mix = rng.random((2048, 64, 64), dtype=np.float32)
    method = cls(**params).with_context(RunContext(device=os.environ.get("DIAG_DEVICE", "cuda"), n_threads=2))
    phase = "fit"
    try:
        method.fit(Split(mix, ("triangle", "circle"), None))
        phase = "separate"
        out = method.separate(mix[:500])
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        print(f"{variant}: OK {out.shape}", flush=True)
    except Exception as err:  # noqa: BLE001 - diagnostics print every failure
        print(f"{variant}: FAILED in {phase}: {type(err).__name__}: {str(err)[:200]}", flush=True)
        traceback.print_exc(limit=12)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        one(sys.argv[1])
        sys.exit(0)
    for variant in VARIANTS:
        began = time.monotonic()
        env = {**os.environ, "CUDA_LAUNCH_BLOCKING": "1" if variant == VARIANTS[0] else "0"}
        try:
            subprocess.run([sys.executable, __file__, variant], timeout=60, env=env)
        except subprocess.TimeoutExpired:
            print(f"{variant}: timed out", flush=True)
        print(f"  ({time.monotonic() - began:.0f} s)", flush=True)
