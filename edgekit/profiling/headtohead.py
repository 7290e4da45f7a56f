"""Several bundles profiled together are also timed head to head, by edgekit's one timing harness.

Each bundle's own measurement (:mod:`edgekit.engines.measure`) runs alone, one bundle after another, so their
medians come from different minutes of the machine's life; on a shared 2-core machine that alone moves a
median by tens of percent. For a comparison that means something, the bundles are opened together and timed
run by run in a shuffled order after warm-up, each turn after one untimed run so no timed run pays for the
previous bundle's threads (:func:`edgekit.engines.timing.interleave`), the first bundle
also a second time as the A/A control: each other bundle gets its ratio to the first with a 95% bootstrap
interval, "faster" or "slower" only when the interval lies wholly above or below 1, and the A/A interval is
printed beside it as the noise floor. Local only: a remote device measures one bundle per session.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.engines import measure
from edgekit.engines.timing import compare, interleave
from edgekit.manifest import Manifest
from edgekit.profiling.config import ProfileConfig


def label(path: Path, manifest: Manifest) -> str:
    """How reports name a bundle: "model target precision"."""
    return f"{manifest.model.name or path.name} {manifest.target} {manifest.precision}"


def labels(bundles: list[tuple[Path, Manifest]]) -> list[str]:
    """:func:`label` per bundle, with the folder name added where two would read the same."""
    plain = [label(p, m) for p, m in bundles]
    return [f"{name} ({p.name})" if plain.count(name) > 1 else name for name, (p, _) in zip(plain, bundles)]


def rounds(config: ProfileConfig) -> int:
    """Interleaved rounds: ``--iterations``, or for a ``--duration`` run its minimum count, at least 30."""
    return config.iterations if config.iterations else max(config.min_iterations, 30)


def head_to_head(bundles: list[tuple[Path, Manifest]], images: list[np.ndarray], config: ProfileConfig,
                 advance=None) -> list[dict]:
    """For each thread count of the sweep (at the first batch size): every bundle against the first.

    images: each bundle's pinned inputs (N, 1, C, H, W), as :func:`edgekit.profiling.profiler.pinned_inputs` gives.
    """
    import edgekit.runtime

    names = labels(bundles)
    n_rounds = rounds(config)
    batch = config.batches[0]
    out = []
    for threads in config.threads:
        runners, calls = [], {}
        try:
            for name, (path, manifest), imgs in zip(names, bundles, images):
                runner = edgekit.runtime.load(path, threads, check_files=False).runner
                runners.append(runner)
                spec = manifest.inputs[0]
                feed = measure.make_feeds(imgs, batch, spec.name, spec.dtype)[0]
                calls[name] = (lambda r=runner, f=feed: r.infer(f))
            samples = interleave(calls, baseline=names[0], rounds=n_rounds, warmup=config.warmup, settle=1,
                                 progress=(lambda done, total: advance(1)) if advance else None)
        finally:
            for runner in runners:
                runner.close()
        result = compare(samples, names[0])
        out.append({"batch": batch, "threads": threads, "clock": result.clock, "rounds": n_rounds,
                    "baseline": names[0],
                    "noise": {"ratio": result.noise.value, "low": result.noise.low, "high": result.noise.high},
                    "rows": [{"bundle": row.name, "median_ms": row.median_ms,
                              **({"ratio": row.ratio.value, "low": row.ratio.low, "high": row.ratio.high,
                                  "verdict": row.ratio.verdict} if row.ratio else {})} for row in result.rows]})
    return out
