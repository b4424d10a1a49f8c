"""Running cells: from a command to finished cells in the store.

- :mod:`benchmark.run.planning`: method selection, parameters and cell identities;
- :mod:`benchmark.run.parameter_checks`: parameter values checked before anything runs;
- :mod:`benchmark.run.executors`: joblib and Dask backends;
- :mod:`benchmark.run.runner`: runs each planned cell, saves it at once, then rebuilds the outputs;
- :mod:`benchmark.run.verify`: recomputes finished cells and compares them (``--verify``).
"""
