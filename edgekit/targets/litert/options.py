"""LiteRT's target options (kept light: the CLI declares its flags from here). LiteRT has none yet: the model
runs on LiteRT's CPU kernels with the XNNPACK delegate, which the interpreter applies itself."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from edgekit.targets.options import Flag


@dataclass(frozen=True)
class LiteRtOptions:
    KEYS: ClassVar[tuple[str, ...]] = ()
    FLAGS: ClassVar[tuple[Flag, ...]] = ()

    @staticmethod
    def parse(options: dict | None) -> LiteRtOptions:
        return LiteRtOptions()


Options = LiteRtOptions
