"""Progress reporting for multi-step work. The API is silent by default; the CLI passes a rich one."""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Reporter:
    """No-op reporter. ``step`` brackets a stage; ``advance`` moves its bar when it has a total."""

    @contextmanager
    def step(self, description: str, total: int | None = None) -> Iterator[None]:
        yield

    def advance(self, n: int = 1) -> None:
        return None

    def note(self, message: str) -> None:
        return None

    def close(self) -> None:
        return None


class RichReporter(Reporter):
    """One transient bar for the running step; each finished step leaves a ✓ line with its time."""

    def __init__(self, console=None):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.console = console or Console(stderr=True, highlight=False)
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self.console, transient=True)
        self._task = None

    @contextmanager
    def step(self, description: str, total: int | None = None) -> Iterator[None]:
        if not self.progress.live.is_started:
            self.progress.start()
        outer = self._task  # a step inside another (a target's build quantizing) returns the bar to it after
        self._task = self.progress.add_task(description, total=total if total is not None else 1)
        start = time.perf_counter()
        ok = False
        try:
            yield
            ok = True
        finally:
            self.progress.remove_task(self._task)
            self._task = outer
            mark = "[green]✓[/green]" if ok else "[red]✗[/red]"
            self.console.print(f"{mark} {description} [dim]{time.perf_counter() - start:.1f}s[/dim]")

    def advance(self, n: int = 1) -> None:
        if self._task is not None:
            self.progress.advance(self._task, n)

    def note(self, message: str) -> None:
        self.console.print(f"  [dim]note: {message}[/dim]")

    def close(self) -> None:
        if self.progress.live.is_started:
            self.progress.stop()
