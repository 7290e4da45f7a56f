"""Quantization options: the calibration method and what stays in higher precision."""
from __future__ import annotations

import enum
from dataclasses import dataclass

from edgekit.errors import UsageError


class Method(str, enum.Enum):
    """How an activation's int8 range is chosen from its calibration statistics."""

    MINMAX = "minmax"  # the observed min and max: no clipping, coarse steps when there are outliers
    PERCENTILE = "percentile"  # clip the tails beyond the given percentile on each side
    ENTROPY = "entropy"  # the clip range minimizing KL(P || Q) between float and int8 histograms (TensorRT's)
    MSE = "mse"  # the clip range minimizing the expected squared quantization error

    @classmethod
    def parse(cls, value: str | Method) -> Method:
        if isinstance(value, cls):
            return value
        v = str(value).lower().replace("-", "").replace("_", "")
        aliases = {"kl": "entropy", "max": "minmax"}
        try:
            return cls(aliases.get(v, v))
        except ValueError:
            raise UsageError(f"unknown calibration method {value!r}; choose one of: "
                             f"{', '.join(m.value for m in cls)}") from None


@dataclass(frozen=True)
class QuantOptions:
    """What `edgekit export --precision int8` and `edgekit quantize` take.

    method: range selection for activations (weights are always per-channel symmetric min-max).
    percentile: for Method.PERCENTILE, the percentile kept on each side (99.99 clips 0.01%).
    keep_fp: extra node-name patterns (fnmatch, e.g. ``*/head/*``) or ``op:<OpType>`` kept in float.
    default_islands: keep the ops known to break under int8 in float (LayerNorm, Softmax, attention
        matmuls, GELU, the linear-attention normalizer and division, first and last layers).
    max_drop: accuracy budget in points (agreement with fp32 on the calibration set, in percent):
        keep the most sensitive blocks in float, one by one, until the drop is within it. None: no loop.
    cache: reuse and store calibration ranges (keyed by model hash + set hash + method).
    reference_bundle: the fp32 bundle this model is quantized from (`edgekit quantize`), recorded in
        the manifest so `edgekit evaluate` measures agreement against it.
    """

    method: Method = Method.ENTROPY
    percentile: float = 99.99
    keep_fp: tuple[str, ...] = ()
    default_islands: bool = True
    max_drop: float | None = None
    cache: bool = True
    reference_bundle: str | None = None

    def __post_init__(self):
        if not 50.0 < self.percentile <= 100.0:
            raise UsageError(f"--percentile must be in (50, 100], got {self.percentile}")
        if self.max_drop is not None and not 0.0 <= self.max_drop <= 100.0:
            raise UsageError(f"--max-drop is in points of agreement (0 to 100), got {self.max_drop}")

    def method_key(self) -> str:
        """The method with its parameters, as the calibration cache and the manifest name it."""
        return f"percentile-{self.percentile:g}" if self.method is Method.PERCENTILE else self.method.value
