"""ExecuTorch (--target executorch): a ``.pte`` program lowered from the prepared torch model.

The target registry (:class:`edgekit.config.Target`) names this package; it holds ``options.Options`` (light: the
CLI declares its flags from it) and ``backend.Backend`` (the :class:`edgekit.targets.base.TargetBackend`). This
file imports nothing, so reading the options does not load the backend.
"""
