"""What every stage shares: errors, digests, profile names, the result store, the environment
and cell provenance.

- :mod:`benchmark.core.errors`: the errors a user sees;
- :mod:`benchmark.core.keys`: short stable digests (cell fingerprints, data keys);
- :mod:`benchmark.core.profiles`: the profile names (quick, paper, tiny);
- :mod:`benchmark.core.store`: finished cells on disk, written atomically;
- :mod:`benchmark.core.environment`: package versions, git state, device descriptions;
- :mod:`benchmark.core.provenance`: where a cell's numbers came from, and whether it is stale.
"""
