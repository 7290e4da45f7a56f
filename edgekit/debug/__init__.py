"""When parity fails: where the export leaves PyTorch and why (:mod:`.locate`, :mod:`.signatures`)."""
