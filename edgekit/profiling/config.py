"""What `edgekit profile` is asked to do, parsed and validated at the edge (CLI or API entry)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import UsageError


@dataclass(frozen=True)
class Remote:
    """An SSH destination: ``user@host`` or ``user@host:port``, optionally with an ssh config file."""

    destination: str  # user@host, as ssh takes it
    port: int | None = None
    ssh_config: Path | None = None
    python: str = "python3"  # the interpreter on the device that has numpy and the bundle's runtime

    @staticmethod
    def parse(text: str, ssh_config: str | Path | None = None, python: str = "python3") -> Remote:
        m = re.fullmatch(r"(?:([^@\s:]+)@)?([^@\s:]+)(?::(\d+))?", text.strip())
        if not m:
            raise UsageError(f"--remote {text!r} is not of the form user@host or user@host:port")
        user, host, port = m.groups()
        if ssh_config is not None and not Path(ssh_config).is_file():
            raise UsageError(f"--ssh-config {ssh_config} does not exist")
        return Remote(f"{user}@{host}" if user else host, int(port) if port else None,
                      Path(ssh_config) if ssh_config else None, python)

    def __str__(self) -> str:
        return self.destination + (f":{self.port}" if self.port else "")


@dataclass(frozen=True)
class ProfileConfig:
    """Settings of one profile (see `edgekit profile --help`).

    iterations / duration_s: timed runs after ``warmup``, a fixed count or for a duration (at least
    ``min_iterations``). batches, threads: sweeps (None = the runtime's default thread count).
    layer_iters: profiled runs for the per-layer breakdown (0 turns it off). block_depth: how many
    module-path segments name a model block ("stages.1/blocks.0" at 2).
    """

    bundles: tuple[Path, ...]
    warmup: int = 10
    iterations: int | None = 100
    duration_s: float | None = None
    min_iterations: int = 10
    batches: tuple[int, ...] = (1,)
    threads: tuple[int | None, ...] = (None,)
    layer_iters: int = 10
    layer_warmup: int = 2
    top: int = 10
    block_depth: int = 2
    device: str | None = None  # a name from the device registry; None = the CPU the bundle runs on
    calib: Path | None = None  # pinned inputs [default: the bundled photographs]
    remote: Remote | None = None
    baseline: Path | None = None
    fail_over_pct: float | None = None
    input_shape: tuple[int, int] | None = None  # (H, W) to time instead of the export size (a shape envelope's)
    shapes_sweep: bool = False  # time the envelope's MIN, OPT and MAX in one report

    def __post_init__(self):
        if not self.bundles:
            raise UsageError("name at least one bundle directory to profile")
        if self.duration_s is not None and self.duration_s <= 0:
            raise UsageError(f"--duration must be positive, got {self.duration_s}")
        if self.duration_s is None and (self.iterations is None or self.iterations < 2):
            raise UsageError(f"--iterations must be at least 2 (percentiles need samples), got {self.iterations}")
        if self.warmup < 0 or self.layer_iters < 0 or self.top < 1 or self.block_depth < 1:
            raise UsageError("--warmup and --layer-iters must be >= 0, --top and --block-depth >= 1")
        if any(b < 1 for b in self.batches) or any(t is not None and t < 1 for t in self.threads):
            raise UsageError("batch sizes and thread counts must be positive")
        if self.input_shape is not None and self.shapes_sweep:
            raise UsageError("--input-shape times one size and --shapes-sweep the envelope's three: give one")
        if (self.baseline is None) != (self.fail_over_pct is None):
            raise UsageError("--baseline and --fail-over go together: --baseline last.json --fail-over 10%")
        if self.baseline is not None and not self.baseline.is_file():
            raise UsageError(f"baseline {self.baseline} does not exist; write one with --out FILE.json")
        if self.fail_over_pct is not None and self.fail_over_pct < 0:
            raise UsageError(f"--fail-over must be >= 0%, got {self.fail_over_pct}")

    def settings(self) -> dict:
        """What the measurement loop (edgekit.engines.measure.measure / sweep) reads."""
        return {"warmup": self.warmup, "iterations": None if self.duration_s else self.iterations,
                "duration_s": self.duration_s, "min_iterations": self.min_iterations, "batches": list(self.batches),
                "threads": list(self.threads), "layer_iters": self.layer_iters, "layer_warmup": self.layer_warmup}


def parse_percent(text: str | float) -> float:
    """'10%' or '10' or 10 -> 10.0"""
    try:
        return float(str(text).strip().rstrip("%"))
    except ValueError:
        raise UsageError(f"--fail-over {text!r} is not a percentage like 10%") from None


def parse_duration(text: str | float | None) -> float | None:
    """'10s', '500ms', '2m' or a number of seconds -> seconds."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m)?\s*", str(text))
    if not m:
        raise UsageError(f"--duration {text!r} is not a duration like 10s, 500ms or 2m")
    value, unit = float(m.group(1)), m.group(2) or "s"
    return value * {"ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def parse_sweep(text: str | int | tuple | list | None, what: str, allow_default: bool = False) -> tuple:
    """'1,2,4' -> (1, 2, 4); 'default' (threads only) -> None, the runtime's own choice."""
    if text is None:
        return (None,) if allow_default else (1,)
    if isinstance(text, int):
        return (text,)
    items = text if isinstance(text, (tuple, list)) else str(text).split(",")
    out = []
    for item in items:
        if item is None or (allow_default and str(item).strip().lower() in ("default", "auto", "0")):
            out.append(None)
            continue
        try:
            out.append(int(str(item).strip()))
        except ValueError:
            raise UsageError(f"{what} {text!r} must be comma-separated integers, e.g. 1,2,4") from None
    return tuple(dict.fromkeys(out))  # keep order, drop repeats
