"""The scikit-learn toolkit of the classical decomposition baselines (registers no method).

- :mod:`methods.decomposition_tools.families`: the FastICA, NMF, SparsePCA and KernelPCA
  families, fitted and read out one component at a time;
- :mod:`methods.decomposition_tools.embedding`: the per-segment time-delay (Hankel) embedding.

Method discovery (:func:`methods.discover`) skips packages, so nothing here is taken for a method.
"""
