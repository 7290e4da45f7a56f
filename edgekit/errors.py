"""Errors edgekit raises for the user: one line saying what is wrong and what to do.

``UsageError`` is a mistake in what the user asked for (exit code 2); ``EdgekitFailure`` is a step
that ran and failed, such as a parity gate or a runtime error (exit code 1). An exception of any
other kind raised inside a pipeline stage is wrapped by :func:`stage` into a :class:`StageFailure`
that names the stage; the CLI prints it as one line and keeps the traceback for ``--debug``.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class EdgekitError(Exception):
    exit_code = 1


class UsageError(EdgekitError):
    exit_code = 2


class EdgekitFailure(EdgekitError):
    exit_code = 1


class ParityError(EdgekitFailure):
    """The built artifact does not match PyTorch within tolerance; carries the figures."""

    def __init__(self, message: str, report=None, locator=None, applied: tuple[str, ...] = ()):
        super().__init__(message)
        self.report = report
        self.locator = locator  # edgekit.debug.locate.LocatorReport, when the divergence was located
        self.applied = applied  # the rewrite rules and swaps the failing export applied


def first_line(exc: BaseException) -> str:
    """``<ExceptionType>: <first line of the message>`` (the type alone when the message is empty)."""
    text = str(exc).strip()
    line = text.splitlines()[0].strip() if text else ""
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


class StageFailure(EdgekitFailure):
    """An unexpected exception inside a pipeline stage (load, prepare, export, rewrite, quantize, build,
    parity, bundle). The original exception is its ``__cause__``."""

    def __init__(self, stage_name: str, cause: BaseException):
        super().__init__(f"{stage_name} failed: {first_line(cause)}")
        self.stage = stage_name
        self.cause = cause


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Bracket one pipeline stage: edgekit's own errors pass through, anything else becomes a
    :class:`StageFailure` naming ``name`` (Ctrl-C and exits are not errors and pass unchanged)."""
    try:
        yield
    except EdgekitError:
        raise
    except Exception as e:  # noqa: BLE001 - any library may raise anything; it is reported, not swallowed
        raise StageFailure(name, e) from e
