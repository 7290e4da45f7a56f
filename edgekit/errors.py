"""Errors edgekit raises for the user: one line saying what is wrong and what to do.

``UsageError`` is a mistake in what the user asked for (exit code 2); ``EdgekitFailure`` is a step
that ran and failed, such as a parity gate or a runtime error (exit code 1). Anything else is a bug
and keeps its traceback.
"""
from __future__ import annotations


class EdgekitError(Exception):
    exit_code = 1


class UsageError(EdgekitError):
    exit_code = 2


class EdgekitFailure(EdgekitError):
    exit_code = 1


class ParityError(EdgekitFailure):
    """The built artifact does not match PyTorch within tolerance; carries the figures."""

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report
