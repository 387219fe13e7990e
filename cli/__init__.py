"""The ``csn`` command line."""
