"""`edgekit profile` (``edgekit.profile(...)`` in Python): latency done right, per-layer breakdowns from each
runtime's own profiler, roofline figures, remote devices over SSH, JSON / markdown / HTML reports and a
regression check.

    report = edgekit.profile(["bundles/a", "bundles/b"], threads="1,2", html="report.html")
    report.data["results"][0]["runs"][0]["latency_ms"]["median"]

The package imports nothing itself, so that a target can use the runner's layer profilers without
loading the profiler. Where things are: :mod:`.profiler` (``profile_bundles``, ``ProfileReport``),
:mod:`.config` (``ProfileConfig``, ``Remote``), :mod:`.report` (the JSON schema, ``save``),
:mod:`.device_runner` (the one file run on a device), :mod:`.remote`, :mod:`.layers`, :mod:`.roofline`,
:mod:`.regression`, and the renderings :mod:`.terminal`, :mod:`.markdown`, :mod:`.html`.
"""
