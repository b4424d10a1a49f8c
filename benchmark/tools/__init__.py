"""Standalone tools around the benchmark, each a ``python -m`` entry point.

- :mod:`benchmark.tools.speed`: training-step speed of each network layout (with
  :mod:`benchmark.tools.kernels`: the convolution kernels a step ran);
- :mod:`benchmark.tools.memory`, :mod:`benchmark.tools.process_memory`: peak memory of data
  preparation;
- :mod:`benchmark.tools.sweep`: parameter sweeps of one method;
- :mod:`benchmark.tools.gpu_oneshot`: the prepared plan of a GPU slot, with
  :mod:`benchmark.tools.gpu_plan` (its timing plan from FLOPs and measured speeds) and
  :mod:`benchmark.tools.gpu_pack` (what a slot sends back and what a call takes along).
"""
