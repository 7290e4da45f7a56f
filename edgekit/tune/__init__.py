"""`edgekit tune` (the fastest deployment of one model within an accuracy budget, on one device) and
`edgekit sweep` (models x targets x precisions x devices from a YAML spec, on a local process pool or a Ray
cluster).

Both are made of the same three steps (:mod:`.cells`): a candidate is exported once (cached by content hash),
its accuracy is measured (a labeled folder, as `edgekit evaluate`, or its parity gate's agreement with PyTorch),
and only the candidates inside the budget are timed (as `edgekit profile` times, here or over SSH).
:mod:`.report` turns the rows into the table, the Pareto front and the plots.
"""
