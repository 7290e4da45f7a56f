"""What a target declares about its options: the keys it reads from ``target_options`` and the `edgekit export`
flags that set them.

Each target's options are a frozen dataclass with ``KEYS``, ``FLAGS`` and ``parse(dict)``, in a module that
imports nothing heavy: the CLI imports every target's options to declare their flags, and ``edgekit --help``
must not load numpy, ONNX or an SDK. The registry in :mod:`edgekit.targets` hands each target the keys it
declares; a key that another target declares is a usage error naming that target.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Flag:
    """One `edgekit export` option of one target: it sets ``key`` in target_options.

    is_flag: a switch (True when given); otherwise a value of ``type`` (str, int or Path), or one of ``choices``.
    """

    key: str
    help: str
    is_flag: bool = False
    type: type = str
    choices: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return "--" + self.key.replace("_", "-")

    def given(self, value) -> bool:
        """Whether the user set the flag (a switch left off and an absent value are not given)."""
        return value is not None and value is not False

    def record(self, value):
        """The value as target_options holds it: JSON types (a path as text)."""
        return str(value) if isinstance(value, Path) else value
