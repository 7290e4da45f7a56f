"""What a loaded model is: :class:`ModelSpec` (input, preprocessing, output, tolerances, and where each
value came from) beside the torch module, and the user's flags applied on top.

Precedence, for every source: a flag (``--mean``, ``--std``, ``--resize``, ``--labels``, ``--num-classes``)
> the model's own files (a checkpoint's classifier shape, ``config.json``, ``preprocessor_config.json``)
> the zoo config > the ImageNet default. ``ModelSpec.origin`` names the winner of each value; the
manifest records it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from torch import nn

from edgekit.config import SourceOptions, Task
from edgekit.errors import UsageError
from edgekit.preprocess import Preprocess

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# origins of values (ModelSpec.origin); a file origin names the file
FLAG = "flag"
DEFAULT = "default (ImageNet)"
ZOO = "zoo config"
PREPROCESS_KEYS = ("size", "mean", "std", "resize", "scale")
MODEL_KEYS = ("num_classes", "labels", "weights", "input_size")


@dataclass(frozen=True)
class OutputSpec:
    """One output of the model, as the manifest lists it.

    kind: "logits" (class scores), "map" (B, C, H, W), "tokens" (B, N, D) or "embedding" (B, D).
    stride: input height / map height, for maps; channels: C of a map, D of tokens or an embedding."""

    name: str
    kind: str
    shape: tuple[int, ...]
    stride: int | None = None
    channels: int | None = None

    @property
    def layout(self) -> str:
        return {4: "NCHW", 3: "NLC", 2: "NC"}.get(len(self.shape), "")

    def to_dict(self) -> dict:
        d = {"name": self.name, "kind": self.kind, "layout": self.layout}
        if self.stride is not None:
            d["stride"] = self.stride
        if self.channels is not None:
            d["channels"] = self.channels
        return d


def describe_outputs(names, tensors, input_shape: tuple[int, ...], task: Task) -> tuple[OutputSpec, ...]:
    """What each of the model's outputs is, from its shape on an input of ``input_shape``: logits for a
    classifier or segmenter; for features a map (4-d, with its stride), tokens (3-d) or an embedding (2-d)."""
    specs = []
    for name, t in zip(names, tensors, strict=True):
        shape = tuple(int(d) for d in t.shape)
        if task is not Task.FEATURES:
            kind = "logits"
        else:
            kind = {4: "map", 3: "tokens", 2: "embedding"}.get(len(shape))
            if kind is None:
                raise UsageError(f"output {name!r} has shape {shape_text(shape)}: a feature output must be an "
                                 f"embedding (B, D), tokens (B, N, D) or a map (B, C, H, W)")
        stride = max(1, round(input_shape[2] / shape[2])) if len(shape) == 4 else None
        channels = shape[-1] if kind in ("tokens", "embedding") else shape[1] if kind == "map" else None
        specs.append(OutputSpec(name, kind, shape, stride, channels))
    return tuple(specs)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: str
    task: Task
    input_shape: tuple[int, int, int, int]  # (N, C, H, W)
    preprocess: Preprocess
    num_classes: int
    labels: str | tuple[str, ...] = ""  # a label set's name ("imagenet"), one label per class, or "" for none
    output_stride: int = 1
    size_divisor: int = 1
    tolerance: dict = field(default_factory=dict)  # {"fp16_cosine": (0.998, "reason")}
    origin: dict = field(default_factory=dict)  # value -> where it came from ("flag", "checkpoint (head.fc.weight)")
    outputs: tuple[OutputSpec, ...] = ()  # every output in order; () = one output named "output"

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs) or ("output",)

    def to_dict(self) -> dict:
        return {"name": self.name, "source": self.source, "task": self.task.value,
                "input_shape": list(self.input_shape), "num_classes": self.num_classes,
                "labels": list(self.labels) if isinstance(self.labels, tuple) else self.labels,
                "output_stride": self.output_stride, "size_divisor": self.size_divisor,
                "origin": {k: v for k, v in self.origin.items() if k in MODEL_KEYS}}

    def preprocess_dict(self) -> dict:
        """The manifest's ``preprocess``: what every runtime applies, and where each value came from."""
        return {**self.preprocess.to_dict(),
                "origin": {k: v for k, v in self.origin.items() if k in PREPROCESS_KEYS}}


@dataclass
class SourceModel:
    model: nn.Module
    spec: ModelSpec
    family: str = ""  # zoo family, for module swaps and checkpoint conversion


def shape_text(shape) -> str:
    return "x".join(map(str, shape))


def check_shape(shape: tuple[int, ...], divisor: int, name: str) -> None:
    if shape[1] != 3:
        raise UsageError(f"input shape {shape_text(shape)}: {name} takes 3-channel RGB images")
    if divisor > 1 and (shape[2] % divisor or shape[3] % divisor):
        h, w = (max(divisor, round(d / divisor) * divisor) for d in shape[2:])
        raise UsageError(f"input shape {shape_text(shape)}: height and width must be multiples of {divisor} "
                         f"for {name}; e.g. {shape[0]}x3x{h}x{w}")


def apply_options(loaded: SourceModel, options: SourceOptions) -> SourceModel:
    """The user's flags over what the source said; a flag that contradicts the model is an error."""
    spec = loaded.spec
    if spec.task is Task.FEATURES:
        for flag, given in (("--labels", options.labels), ("--num-classes", options.num_classes)):
            if given is not None:
                raise UsageError(f"{spec.source} outputs features ({', '.join(spec.output_names)}), which have no "
                                 f"classes: drop {flag}")
    origin = dict(spec.origin)
    pre = {}
    for key in ("mean", "std", "resize"):
        value = getattr(options, key)
        if value is not None:
            pre[key] = tuple(value) if key != "resize" else value
            origin[key] = FLAG
    changes: dict = {"preprocess": replace(spec.preprocess, **pre)} if pre else {}
    if options.num_classes is not None and options.num_classes != spec.num_classes:
        raise UsageError(f"--num-classes {options.num_classes} contradicts the model: it has {spec.num_classes} "
                         f"classes ({origin.get('num_classes', 'its output')}); drop the flag or fix the model")
    if options.labels is not None:
        if len(options.labels) != spec.num_classes:
            raise UsageError(f"--labels {options.labels_file or ''} has {len(options.labels)} labels but the model has "
                             f"{spec.num_classes} classes ({origin.get('num_classes', 'its output')}); give one label "
                             f"per class, in class order")
        changes["labels"] = tuple(options.labels)
        origin["labels"] = f"{FLAG} (--labels {options.labels_file})" if options.labels_file else FLAG
    loaded.spec = replace(spec, origin=origin, **changes)
    return loaded
