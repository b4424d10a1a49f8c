"""What every stage shares: errors, digests, profile names, data handles, the result store and
what it keeps for reports, the environment and cell provenance.

- :mod:`benchmark.core.errors`: the errors a user sees;
- :mod:`benchmark.core.keys`: short stable digests (cell fingerprints, data keys);
- :mod:`benchmark.core.profiles`: the profile names (quick, paper, tiny);
- :mod:`benchmark.core.data_handle`: the handle of a prepared data set;
- :mod:`benchmark.core.store`: finished cells on disk, written atomically;
- :mod:`benchmark.core.report_data`: what reports need from the data besides the cells;
- :mod:`benchmark.core.report_layout`: a suite's tables, notes and figures, declared as data;
- :mod:`benchmark.core.environment`: package versions, git state, device descriptions;
- :mod:`benchmark.core.provenance`: where a cell's numbers came from, and whether it is stale.
"""
