"""Scoring and statistics: from a method's outputs to per-item values, intervals and verdicts.

- :mod:`benchmark.evaluation.metrics`: the registered metrics;
- :mod:`benchmark.evaluation.assignment`: outputs assigned to sources on validation;
- :mod:`benchmark.evaluation.scoring`: score rows and per-item values of a cell;
- :mod:`benchmark.evaluation.statistics`: bootstrap intervals and paired tests;
- :mod:`benchmark.evaluation.comparisons`: paired comparisons between rows;
- :mod:`benchmark.evaluation.verdicts`: whether a row separates (beats the best trivial baseline);
- :mod:`benchmark.evaluation.respiration`, :mod:`benchmark.evaluation.source_choice`: rates read
  off an output, and which output a rate is read from (respiration suites).
"""
