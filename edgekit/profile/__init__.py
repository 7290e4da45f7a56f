"""Profiling: latency statistics, per-layer breakdowns, roofline, reports."""
