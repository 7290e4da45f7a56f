"""Options as Enums and frozen dataclasses, validated at the edge (CLI or API entry)."""
from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from edgekit.errors import UsageError


class _Choice(str, enum.Enum):
    @classmethod
    def parse(cls, value: str | _Choice) -> _Choice:
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            choices = ", ".join(m.value for m in cls)
            raise UsageError(f"unknown {cls.__name__.lower()} {value!r}; choose one of: {choices}") from None


class Target(_Choice):
    """The target registry: each target's name (``--target``) and the package of ``edgekit/targets/`` that
    implements it (``package``: its ``options.Options`` and ``backend.Backend``)."""

    ONNX = "onnx", "onnxruntime"  # ONNX Runtime
    OPENVINO = "openvino", "openvino"
    TRT = "trt", "tensorrt"
    COREML = "coreml", "coreml"
    EXECUTORCH = "executorch", "executorch"  # a .pte program (XNNPACK, or another ExecuTorch delegate)
    LITERT = "litert", "litert"  # a .tflite model for LiteRT (TensorFlow Lite's runtime)

    def __new__(cls, value: str, package: str):
        member = str.__new__(cls, value)
        member._value_ = value
        member.package = package
        return member


class Precision(_Choice):
    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"


class Task(_Choice):
    CLASSIFICATION = "classification"
    SEGMENTATION = "segmentation"
    FEATURES = "features"  # outputs that are not class scores: feature maps, token sequences, embeddings


@dataclass(frozen=True)
class Tolerance:
    """Parity thresholds of a built artifact against PyTorch fp32 (defaults per precision in :meth:`default`;
    a zoo model may override them, with its reason, in its config).

    cosine: minimum cosine similarity of the flattened outputs, per image.
    max_abs_rel: maximum abs error as a fraction of the reference output's range (max - min).
    agreement: minimum top-1 (classification) or per-pixel label (segmentation) agreement.
    """

    cosine: float
    max_abs_rel: float | None = None
    agreement: float | None = None

    @staticmethod
    def default(precision: Precision) -> Tolerance:
        if precision is Precision.FP32:
            return Tolerance(cosine=0.99999, max_abs_rel=1e-3)
        if precision in (Precision.FP16, Precision.BF16):
            return Tolerance(cosine=0.999)
        return Tolerance(cosine=0.99, agreement=0.97)

    def overridden(self, overrides: dict[str, tuple[float, str]], precision: Precision) -> Tolerance:
        """Apply a model's per-precision overrides, e.g. {"fp16_cosine": (0.998, "why")}."""
        changes = {}
        for key, (value, _reason) in overrides.items():
            prec, _, fieldname = key.partition("_")
            if prec == precision.value and fieldname in ("cosine", "max_abs_rel", "agreement"):
                changes[fieldname] = value
        return replace(self, **changes) if changes else self

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> Tolerance:
        return Tolerance(cosine=float(d["cosine"]), max_abs_rel=d.get("max_abs_rel"), agreement=d.get("agreement"))


def parse_shape(text: str) -> tuple[int, ...]:
    """'1x3x512x512' -> (1, 3, 512, 512)."""
    try:
        shape = tuple(int(p) for p in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise UsageError(f"input shape {text!r} is not of the form 1x3x224x224") from None
    if len(shape) != 4 or any(d <= 0 for d in shape):
        raise UsageError(f"input shape {text!r} must be 4 positive dims NxCxHxW, e.g. 1x3x224x224")
    return shape


RESIZE_METHODS = ("bilinear", "bicubic", "nearest")


@dataclass(frozen=True)
class SourceOptions:
    """What the user says about a model beyond its source: the preprocessing it was trained with, its
    labels and classes, and whether to fetch published weights. None = take it from the model's files,
    its zoo config or the ImageNet default, in that order (see :mod:`edgekit.sources`)."""

    mean: tuple[float, float, float] | None = None  # 0-1 scale, as timm writes them
    std: tuple[float, float, float] | None = None
    resize: str | None = None  # bilinear | bicubic | nearest
    labels: tuple[str, ...] | None = None
    labels_file: str | None = None  # where the labels were read from, for the manifest
    num_classes: int | None = None
    pretrained: bool = False  # timm:<name>[.<tag>]: the published weights, through the Hugging Face cache
    features: tuple[int, ...] | None = None  # --features: these stages' maps (0-based, as timm's out_indices)
    dynamic_size: bool = False  # a zoo model built for a range of input sizes (set by a shape envelope)

    def __post_init__(self):
        if self.resize is not None and self.resize not in RESIZE_METHODS:
            raise UsageError(f"--resize {self.resize!r}: choose one of {', '.join(RESIZE_METHODS)}")
        if self.num_classes is not None and self.num_classes < 1:
            raise UsageError(f"--num-classes must be at least 1, got {self.num_classes}")
        if self.labels is not None and self.num_classes is not None and len(self.labels) != self.num_classes:
            raise UsageError(f"--labels {self.labels_file or ''} has {len(self.labels)} labels but --num-classes is "
                             f"{self.num_classes}; give one label per class")
        if self.features is not None:
            if not self.features or any(i < 0 for i in self.features) or len(set(self.features)) != len(self.features):
                raise UsageError(f"--features {','.join(map(str, self.features))}: give distinct stage indices >= 0, "
                                 f"e.g. --features 1,2,3")
            for flag, given in (("--labels", self.labels), ("--num-classes", self.num_classes)):
                if given is not None:
                    raise UsageError(f"--features exports feature maps, which have no classes: drop {flag}")

    def to_dict(self) -> dict:
        """Only what was given: the manifest records it so a later re-export (edgekit quantize) is the same."""
        d = {"mean": list(self.mean) if self.mean else None, "std": list(self.std) if self.std else None,
             "resize": self.resize, "labels": list(self.labels) if self.labels else None,
             "labels_file": self.labels_file, "num_classes": self.num_classes, "pretrained": self.pretrained or None,
             "features": list(self.features) if self.features is not None else None,
             "dynamic_size": self.dynamic_size or None}
        return {k: v for k, v in d.items() if v is not None}

    @staticmethod
    def from_dict(d: dict | None) -> SourceOptions:
        d = d or {}
        return SourceOptions(mean=tuple(d["mean"]) if d.get("mean") else None,
                             std=tuple(d["std"]) if d.get("std") else None, resize=d.get("resize"),
                             labels=tuple(d["labels"]) if d.get("labels") else None, labels_file=d.get("labels_file"),
                             num_classes=d.get("num_classes"), pretrained=bool(d.get("pretrained", False)),
                             features=tuple(d["features"]) if d.get("features") is not None else None,
                             dynamic_size=bool(d.get("dynamic_size", False)))


def parse_features(text: str | None) -> tuple[int, ...] | None:
    """'1,2,3' -> (1, 2, 3): the stage indices of --features (None when not given)."""
    if text is None:
        return None
    try:
        return tuple(int(p) for p in str(text).replace(" ", ",").split(",") if p)
    except ValueError:
        raise UsageError(f"--features {text!r}: give stage indices separated by commas, e.g. --features 1,2,3") from None


def parse_rgb(text: str | tuple | list, flag: str) -> tuple[float, float, float]:
    """'0.485,0.456,0.406' -> (0.485, 0.456, 0.406), on the 0-1 scale; ``flag`` is --mean or --std."""
    parts = [p for p in text.replace(" ", ",").split(",") if p] if isinstance(text, str) else list(text)
    try:
        values = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        raise UsageError(f"{flag} {text!r}: expected three numbers R,G,B such as 0.485,0.456,0.406") from None
    if len(values) != 3:
        raise UsageError(f"{flag} {text!r} has {len(values)} value(s); give three, R,G,B (e.g. 0.485,0.456,0.406)")
    if any(v != v or v in (float("inf"), float("-inf")) for v in values):
        raise UsageError(f"{flag} {text!r}: values must be finite numbers")
    if any(v > 1 for v in values):
        raise UsageError(f"{flag} {text!r}: values are on the 0-1 scale, as timm writes them; "
                         f"{max(values):g} looks like a 0-255 value: divide by 255")
    if flag == "--std" and any(v <= 0 for v in values):
        raise UsageError(f"{flag} {text!r}: every std must be greater than 0")
    if flag == "--mean" and any(v < 0 for v in values):
        raise UsageError(f"{flag} {text!r}: a mean is between 0 and 1 on the 0-1 scale")
    return values  # type: ignore[return-value]


def read_labels(path: str | Path) -> tuple[str, ...]:
    """One label per line (a final newline is fine; an empty line is a mistake)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--labels {path} does not exist; give a text file with one label per line") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--labels {path} cannot be read ({e.__class__.__name__}); give a UTF-8 text file with one "
                         f"label per line") from None
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise UsageError(f"--labels {path} is empty; give one label per line")
    for i, line in enumerate(lines, 1):
        if not line.strip():
            raise UsageError(f"--labels {path} line {i} is empty; give one label per line, no blank lines")
    return tuple(line.strip() for line in lines)


@dataclass(frozen=True)
class ExportConfig:
    """Everything `edgekit export` needs, parsed and validated."""

    source: str
    target: Target = Target.ONNX
    precision: Precision = Precision.FP32
    out: Path = Path("bundles/model")
    checkpoint: Path | None = None
    input_shape: tuple[int, ...] | None = None
    dynamic_batch: bool = False
    shapes: str | None = None  # --shapes MIN:OPT:MAX, NCHW each (edgekit.shapes)
    dynamic_hw: bool = False  # --dynamic-hw: the planner chooses the envelope
    calib: Path | None = None
    calib_size: int | None = None
    threads: int | None = None
    opset: int = 17
    verify: bool = True
    force: bool = False
    rewrite: bool = True
    explain: bool = False
    tolerance: Tolerance | None = None
    target_options: dict = field(default_factory=dict)
    source_options: SourceOptions = field(default_factory=SourceOptions)
    keep_fp: tuple[str, ...] = ()  # fp16 / bf16 / int8: node-name patterns kept in float beyond the default islands
    auto_fix: bool = False  # a failing gate: locate the first diverging module, keep it in float, export again
    leave_out: tuple[str, ...] = ()  # rewrite rules and module swaps not to apply (--auto-fix fills it)

    def to_dict(self) -> dict:
        """Every field as JSON: the manifest records it (``export_config``) so that `edgekit quantize` re-runs the
        export exactly as it was configured."""
        d = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, enum.Enum):
                value = value.value
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, (Tolerance, SourceOptions)):
                value = value.to_dict()
            elif isinstance(value, dict):
                value = {k: str(v) if isinstance(v, Path) else v for k, v in value.items()}
            d[f.name] = value
        return d

    @staticmethod
    def from_dict(d: dict) -> ExportConfig:
        """The inverse of :meth:`to_dict`; a field the record lacks takes its default."""
        default = ExportConfig(source=d["source"])

        def get(name: str, parse=None):
            value = d.get(name)
            return getattr(default, name) if value is None else (parse(value) if parse else value)

        return ExportConfig(source=d["source"], target=get("target", Target.parse),
                            precision=get("precision", Precision.parse), out=get("out", Path),
                            checkpoint=get("checkpoint", Path), input_shape=get("input_shape", tuple),
                            dynamic_batch=bool(get("dynamic_batch")), shapes=get("shapes"),
                            dynamic_hw=bool(get("dynamic_hw")), calib=get("calib", Path),
                            calib_size=get("calib_size", int), threads=get("threads", int), opset=get("opset", int),
                            verify=bool(get("verify")), force=bool(get("force")), rewrite=bool(get("rewrite")),
                            explain=bool(get("explain")), tolerance=get("tolerance", Tolerance.from_dict),
                            target_options=dict(get("target_options") or {}),
                            source_options=SourceOptions.from_dict(d.get("source_options")),
                            keep_fp=tuple(get("keep_fp") or ()), auto_fix=bool(get("auto_fix")),
                            leave_out=tuple(get("leave_out") or ()))
