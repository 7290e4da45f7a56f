"""The targets: one package each under ``edgekit/targets/`` (``options.Options``, ``backend.Backend``), named by
:class:`edgekit.config.Target`, which is the registry.

Adding a target: its folder ``edgekit/targets/<package>/`` (``__init__.py`` importing nothing, ``options.py``
with ``Options`` declaring ``KEYS``, ``FLAGS`` and ``parse``, ``backend.py`` with ``Backend`` subclassing
:class:`TargetBackend`) and its line in :class:`edgekit.config.Target`. See docs/architecture.md.
"""
from __future__ import annotations

import importlib

from edgekit.config import Target
from edgekit.errors import UsageError
from edgekit.targets.base import BuildResult, TargetBackend
from edgekit.targets.options import Flag


def _module(target: Target, name: str):
    return importlib.import_module(f"edgekit.targets.{target.package}.{name}")


# each target's options class; the options modules are light, so the CLI builds its flags from them
OPTIONS = {target: _module(target, "options").Options for target in Target}


def get_backend(target: Target, options: dict | None = None) -> TargetBackend:
    """The backend of ``target`` with its ``options`` (target_options) parsed, here, at the edge."""
    parsed = parse_options(target, options)
    return _module(target, "backend").Backend(parsed)


def parse_options(target: Target, options: dict | None):
    """``target``'s options from a target_options dict (see :func:`check_keys`)."""
    return OPTIONS[target].parse(check_keys(target, options))


def check_keys(target: Target, options: dict | None) -> dict:
    """The keys of ``options`` that are set (not None or False); one that ``target`` does not read is a usage
    error, naming the target that does."""
    given = {k: v for k, v in (options or {}).items() if v is not None and v is not False}
    own = OPTIONS[target]
    for key in given:
        if key not in own.KEYS:
            owner = next((t for t, o in OPTIONS.items() if key in o.KEYS), None)
            flag = next((f for o in OPTIONS.values() for f in o.FLAGS if f.key == key), None)
            name = flag.name if flag else f"target option {key!r}"
            if owner is None:
                raise UsageError(f"unknown {name}; --target {target.value} reads {', '.join(own.KEYS)}")
            raise UsageError(f"{name} applies to --target {owner.value}, not {target.value}")
    return given


def target_flags() -> list[tuple[Target, Flag]]:
    """Every target's `edgekit export` flags, in registry order."""
    return [(target, flag) for target, options in OPTIONS.items() for flag in options.FLAGS]


def options_from_flags(target: Target, values: dict) -> dict:
    """target_options from the CLI's flag values (key -> value, None or False when not given); a flag of another
    target is a usage error naming it."""
    flags = {flag.key: flag for _, flag in target_flags()}
    given = {key: flags[key].record(value) for key, value in values.items() if flags[key].given(value)}
    return check_keys(target, given)


__all__ = ["OPTIONS", "BuildResult", "TargetBackend", "check_keys", "get_backend", "options_from_flags",
           "parse_options", "target_flags"]
