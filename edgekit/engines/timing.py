"""One timing harness: candidates timed run by run in alternation, with an A/A control as the noise floor and a
bootstrap confidence interval on every ratio.

Wall-clock medians on a shared 2-core machine move by up to +-30% between runs, so a ratio of two separately
timed medians says little. Here every candidate runs in the same process, after its warm-up, one run each in
turn, in an order shuffled every round (seeded). A fixed or merely rotated order would give every candidate the
same predecessor each time, and a predecessor leaves traces the next run pays for (runtime thread pools still
spinning, caches holding its weights): measured here, PyTorch timed right after itself (a rotated A/A control)
ran up to twice as fast as PyTorch timed after OpenVINO. With ``settle`` runs, each turn starts with that many
untimed runs, so the timed ones never pay for the previous candidate (two ONNX Runtime sessions at 2 threads
on 2 cores: the A/A interval of naive vs naive spread to [0.82, 1.37] without). Each run records wall time
and this process's CPU time. The baseline is also timed a second time under another name (the A/A control):
the same artifact timed twice, whose ratio interval is the noise floor of this measurement. A candidate's
ratio to the baseline is a speedup (or a slowdown) only when its 95% bootstrap interval excludes 1.0;
otherwise it is "within noise".

Standard library and numpy only (like the rest of this package): the bench scripts, quantization's candidate
timing and the profiler's device side import it alike.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

CONTROL_SUFFIX = " (A/A)"


@dataclass
class Samples:
    """One candidate's timed runs, in ms."""

    wall_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)

    def median(self, clock: str = "wall") -> float:
        return float(np.median(self.wall_ms if clock == "wall" else self.cpu_ms))


@dataclass(frozen=True)
class Ratio:
    """baseline / candidate of the medians (above 1: the candidate is faster), with its bootstrap interval."""

    value: float
    low: float
    high: float

    @property
    def verdict(self) -> str:
        if self.low > 1.0:
            return "faster"
        if self.high < 1.0:
            return "slower"
        return "within noise"

    def text(self) -> str:
        return f"{self.value:.2f}x [{self.low:.2f}, {self.high:.2f}]"

    def cell(self) -> str:
        """:meth:`text`, marked "within noise" when the interval holds 1: a table cell."""
        return self.text() + (" within noise" if self.verdict == "within noise" else "")

    def against(self, goal: float) -> str:
        """A speed goal judged on the interval: met only when even its low end reaches the goal."""
        if self.low >= goal:
            return "meets"
        return "MISSES" if self.high < goal else "cannot tell (the interval holds)"


def interleave(candidates: dict[str, Callable[[], object]], baseline: str | None = None, rounds: int = 20,
               per_round: int = 1, warmup: int = 3, progress: Callable[[int, int], None] | None = None,
               seed: int = 0, settle: int = 0) -> dict[str, Samples]:
    """Time every candidate ``rounds x per_round`` times, alternating run by run after ``warmup`` runs each.

    ``baseline`` (a key of ``candidates``): it is also timed as ``baseline + " (A/A)"``, the control.
    ``settle``: untimed runs at the start of every turn (after a switch from another candidate).
    ``progress(done, total)``: optional, called after every round.
    """
    runs = dict(candidates)
    if baseline is not None:
        if baseline not in runs:
            raise ValueError(f"baseline {baseline!r} is not one of the candidates ({', '.join(runs)})")
        runs[baseline + CONTROL_SUFFIX] = runs[baseline]
    for run in runs.values():
        for _ in range(warmup):
            run()
    names = list(runs)
    samples = {name: Samples() for name in names}
    rng = random.Random(seed)
    for r in range(rounds):
        order = rng.sample(names, len(names))  # shuffled: no candidate always follows the same one
        for name in order:
            for _ in range(settle):
                runs[name]()
            for _ in range(per_round):
                w0, c0 = time.perf_counter(), time.process_time()
                runs[name]()
                c1, w1 = time.process_time(), time.perf_counter()
                samples[name].wall_ms.append((w1 - w0) * 1e3)
                samples[name].cpu_ms.append((c1 - c0) * 1e3)
        if progress:
            progress(r + 1, rounds)
    return samples


def ratio(baseline: list[float], candidate: list[float], resamples: int = 2000, confidence: float = 0.95,
          seed: int = 0) -> Ratio:
    """median(baseline) / median(candidate) with a percentile bootstrap interval (both samples resampled)."""
    a, b = np.asarray(baseline, np.float64), np.asarray(candidate, np.float64)
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, a.size, (resamples, a.size))
    ib = rng.integers(0, b.size, (resamples, b.size))
    boot = np.median(a[ia], axis=1) / np.median(b[ib], axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(boot, [tail, 100 - tail])
    return Ratio(float(np.median(a) / np.median(b)), float(low), float(high))


@dataclass(frozen=True)
class Row:
    name: str
    median_ms: float  # of the chosen clock
    ratio: Ratio | None  # to the baseline; None for the baseline itself


@dataclass(frozen=True)
class Comparison:
    clock: str  # "wall" or "cpu"
    baseline: str
    rows: list[Row]
    noise: Ratio  # the A/A control: the baseline against itself

    @property
    def noise_floor(self) -> float:
        """How far from 1.0 the A/A interval reaches: a ratio closer to 1 than this is not a finding."""
        return max(1.0 - self.noise.low, self.noise.high - 1.0)


def compare(samples: dict[str, Samples], baseline: str, clock: str = "wall") -> Comparison:
    """Each candidate against ``baseline`` on ``clock`` (``interleave`` must have been given that baseline)."""
    pick = (lambda s: s.wall_ms) if clock == "wall" else (lambda s: s.cpu_ms)
    control = baseline + CONTROL_SUFFIX
    if control not in samples:
        raise ValueError(f"no A/A control for {baseline!r}: pass baseline={baseline!r} to interleave()")
    base = pick(samples[baseline])
    rows = [Row(name, samples[name].median(clock), None if name == baseline else ratio(base, pick(samples[name])))
            for name in samples if name != control]
    return Comparison(clock, baseline, rows, ratio(base, pick(samples[control])))


def markdown(comparison: Comparison, environment: str = "") -> str:
    """The comparison as a markdown table, the noise floor and the machine under it."""
    lines = [f"| candidate | median {comparison.clock} ms | vs {comparison.baseline} [95% CI] | verdict |",
             "|---|---|---|---|"]
    for row in comparison.rows:
        if row.ratio is None:
            lines.append(f"| {row.name} | {row.median_ms:.3f} | baseline | |")
        else:
            lines.append(f"| {row.name} | {row.median_ms:.3f} | {row.ratio.text()} | {row.ratio.verdict} |")
    lines.append("")
    lines.append(f"A/A control (the baseline timed twice): {comparison.noise.text()}; noise floor "
                 f"+-{comparison.noise_floor * 100:.1f}%.")
    if environment:
        lines.append(environment)
    return "\n".join(lines)


def environment_line(runtimes: dict[str, str | None], threads: int | str | None) -> str:
    """CPU model and ISA flags, runtime versions and threads (a count, or words such as "threads per row" for a
    table that varies them): what every timing table states."""
    from .measure import cpu_info

    cpu = cpu_info()
    versions = ", ".join(f"{k} {v}" for k, v in runtimes.items() if v)
    return (f"Measured on {cpu['model']} ({cpu['cores']} cores; {' '.join(cpu['flags']) or 'no ISA flags read'}), "
            f"{versions}, {f'{threads} thread(s)' if isinstance(threads, int) else threads or 'default thread(s)'}.")
