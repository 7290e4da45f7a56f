"""Quantization: calibration methods, precision islands, per-target INT8/FP16 recipes."""
