"""Training the networks on rendered batches, and temperature calibration."""
