"""Training the networks on rendered batches, and their temperature calibration.

- ``config.py``: ``TrainConfig`` (torch-free; the CLI reads its options and defaults from it)
- ``train.py``: the training loop (setup, step, validation, checkpoint, export)
- ``calibration.py``: temperature scaling on held-out items
"""
