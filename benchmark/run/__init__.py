"""Running cells: from a command to finished cells in the store.

- :mod:`benchmark.run.config`: the run configuration (:class:`~benchmark.run.config.RunConfig`);
- :mod:`benchmark.run.planning`: method selection, parameters, cell identities and the cells a cell
  depends on (sim-to-real);
- :mod:`benchmark.run.parameter_checks`: parameter values checked before anything runs;
- :mod:`benchmark.run.fitting`: fitting, reloading and checkpoints of a cell's models;
- :mod:`benchmark.run.executors`: joblib and Dask backends;
- :mod:`benchmark.run.runner`: runs each planned cell, saves it at once, then rebuilds the outputs;
- :mod:`benchmark.run.resume`: continues a time-limited cell's training in a later run
  (``--resume-from``);
- :mod:`benchmark.run.verify`: recomputes finished cells and compares them (``--verify``).
"""
