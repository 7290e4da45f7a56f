"""`edgekit profile` (``edgekit.profile(...)`` in Python): latency done right, per-layer breakdowns from each
runtime's own profiler, roofline figures, remote devices over SSH, JSON / markdown / HTML reports and a
regression check.

    report = edgekit.profile(["bundles/a", "bundles/b"], threads="1,2", html="report.html")
    report.data["results"][0]["runs"][0]["latency_ms"]["median"]

The package imports nothing itself. The measurement loop and the runtimes' own layer profilers live in
:mod:`edgekit.engines` (:mod:`edgekit.engines.measure` is what runs on a device). Where things are: :mod:`.profiler` (``profile_bundles``, ``ProfileReport``),
:mod:`.config` (``ProfileConfig``, ``Remote``), :mod:`.report` (the JSON schema, ``save``),
:mod:`.remote` (copies the engines folder to a device and runs it there), :mod:`.layers`, :mod:`.roofline`,
:mod:`.regression`, and the report formats :mod:`.markdown`, :mod:`.html` (the terminal tables are the CLI's,
:mod:`edgekit.cli.render_profile`).
"""
