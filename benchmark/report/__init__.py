"""Reports: leaderboards, manifests, figures and the results page, from finished cells.

- :mod:`benchmark.report.reporting`: runs.csv, leaderboard.csv/.md, comparisons, verdicts and the
  manifest of one suite and profile;
- :mod:`benchmark.report.leaderboard`: the tidy leaderboard and its markdown tables;
- :mod:`benchmark.report.markdown`: the markdown leaderboard of a suite's declared layout;
- :mod:`benchmark.report.figures`: figure helpers;
- :mod:`benchmark.report.suite_figures`: the figures a suite's layout declares, from the store;
- :mod:`benchmark.report.results_page`: ``results/README.md``, the index of every leaderboard.
"""
