"""Synthetic polysomnography cohort laid out like the MESA Sleep data set.

MESA recordings are not freely redistributable, so this package writes a stand-in cohort with the
same file layout and channel labels, plus the *true* respiratory signal, which real data never
has.  One module per job, each importing only those before it:

- :mod:`datasets.synthetic_psg.config`: :class:`~datasets.synthetic_psg.config.CohortConfig`,
  the parameters of a cohort;
- :mod:`datasets.synthetic_psg.physiology`: the physiological model's pieces (breathing,
  beats, ECG, PPG, nasal pressure, thoracic belt, truth arrays);
- :mod:`datasets.synthetic_psg.realistic`: the ``realistic`` difficulty (irregular breathing,
  movement, ectopic beats, weak coupling, a realistic nasal cannula) built from those pieces;
- :mod:`datasets.synthetic_psg.subject`: :func:`~datasets.synthetic_psg.subject.simulate_subject`,
  one subject at the cohort's difficulty;
- :mod:`datasets.synthetic_psg.edf`: :func:`~datasets.synthetic_psg.edf.write_cohort`, the
  MESA-layout EDF and truth files;
- ``python -m datasets.synthetic_psg``: the command line (:mod:`datasets.synthetic_psg.__main__`).
"""
