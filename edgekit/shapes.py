"""Shape envelopes: one bundle for a range of input sizes (``--shapes MIN:OPT:MAX``, ``--dynamic-hw``).

An envelope is three NCHW shapes: the smallest, the typical and the largest input the bundle takes, plus the step
its height and width move in. The planner (:func:`size_rule`) knows what each model allows:

- the size divisor: the product of the strides (and patch x window sizes) the height and width must divide by;
- windowed attention: a feature grid that is not a multiple of the window is padded inside the graph, as the
  reference model pads (Swin); a grid smaller than one window would change the window itself (the reference
  clamps it at construction), so the envelope's smallest size keeps every stage at least one window wide;
- resolution-dependent constants (bias tables built for one token grid, sequence lengths fixed at construction):
  computed in the graph where edgekit's model does so, otherwise refused, naming the module that fixes the size.

The parity gate runs at each corner (:meth:`Envelope.corners`: MIN, OPT, MAX, and one size in between that
needs padding where the model pads). The runtimes refuse a size outside the envelope before inference.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from edgekit.errors import UsageError

Shape = tuple[int, int, int, int]

_AXES = ("batch", "channels", "height", "width")


def fmt(shape) -> str:
    return "x".join(map(str, shape))


@dataclass(frozen=True)
class SizeRule:
    """What a model allows for its input height and width (see the module doc)."""

    family: str
    varies: bool  # height and width can vary in one bundle
    step: int  # they move in multiples of this
    why: str  # one sentence: what the model does with the size
    window: int = 0  # windowed attention: no stage pads at sizes that are multiples of it (pixels); 0 without
    min_side: int = 0  # the smallest height / width (every stage at least one window wide)
    fixed_by: str = ""  # the module that fixes the resolution, when not varies
    rebuild: bool = False  # the zoo model is built again for a range of sizes (dynamic_size=True) to vary
    step_why: str = "its total stride"  # why the step
    min_why: str = ""  # why the smallest side

    def to_dict(self) -> dict:
        d = {"family": self.family, "varies": self.varies, "step": self.step, "why": self.why,
             "step_why": self.step_why}
        if self.window:
            d["unpadded_multiple"] = self.window
        if self.min_side:
            d["min_side"], d["min_why"] = self.min_side, self.min_why
        if self.fixed_by:
            d["fixed_by"] = self.fixed_by
        return d


@dataclass(frozen=True)
class Envelope:
    """The input shapes one bundle takes: every NCHW with min <= shape <= max per axis, height and width multiples
    of ``step``."""

    min: Shape
    opt: Shape
    max: Shape
    step: int = 1
    window: int = 0  # padding applies at sizes that are not a multiple of it (0: the model does not pad)
    rule: SizeRule | None = field(default=None, compare=False)  # the planner's rule it was checked against

    @property
    def dynamic_batch(self) -> bool:
        return self.min[0] != self.max[0]

    @property
    def dynamic_hw(self) -> bool:
        return self.min[2:] != self.max[2:]

    def corners(self) -> list[tuple[str, Shape]]:
        """(label, shape) the gate runs at: min, opt, max, and a size strictly between min and max that needs
        padding (windowed models) or is simply in between (the others), when there is one; batch 1 except at the
        batch corners."""
        out = [("min", self.min), ("opt", self.opt), ("max", self.max)]
        between = self._between()
        if between is not None:
            out.append(("padded" if self.window else "between", between))
        merged: dict[Shape, list[str]] = {}
        for label, shape in out:  # one run per distinct shape: "min/opt" where they coincide
            merged.setdefault(shape, []).append(label)
        return [("/".join(labels), shape) for shape, labels in merged.items()]

    def _between(self) -> Shape | None:
        taken = {self.min[2:], self.opt[2:], self.max[2:]}
        heights = range(self.min[2], self.max[2] + 1, self.step)
        widths = range(self.min[3], self.max[3] + 1, self.step)
        # OPT with one side moved, or a square: enough to find a padded size near OPT, in linear time
        sizes = {(h, self.opt[3]) for h in heights} | {(self.opt[2], w) for w in widths} | \
            {(v, v) for v in heights if v in widths}
        candidates = []
        for h, w in sizes - taken:
            pads = bool(self.window) and (h % self.window or w % self.window)
            candidates.append((not pads, abs(h - self.opt[2]) + abs(w - self.opt[3]), h, w))
        if not candidates:
            return None
        _, _, h, w = min(candidates)
        return (self.opt[0], self.opt[1], h, w)

    def refusal(self, shape) -> str | None:
        """Why ``shape`` (NCHW) is outside the envelope, or None when it is inside."""
        shape = tuple(int(d) for d in shape)
        if len(shape) != 4:
            return f"input shape {fmt(shape)} is not NCHW; the bundle takes {self.text()}"
        for axis, (v, lo, hi) in enumerate(zip(shape, self.min, self.max)):
            if not lo <= v <= hi:
                return (f"input {_AXES[axis]} {v} is outside the bundle's envelope {lo}..{hi} "
                        f"({self.text()}); resize to a size inside it")
        bad = [v for v in shape[2:] if v % self.step]
        if bad:
            return (f"input size {shape[2]}x{shape[3]} is not a multiple of {self.step}, the model's size step; "
                    f"the nearest inside is {_snap(shape[2], self.step)}x{_snap(shape[3], self.step)}")
        return None

    def text(self) -> str:
        return f"{fmt(self.min)}:{fmt(self.opt)}:{fmt(self.max)}"

    def to_dict(self) -> dict:
        d = {"min": list(self.min), "opt": list(self.opt), "max": list(self.max), "step": self.step,
             "window": self.window}
        if self.rule is not None:
            d["rule"] = self.rule.to_dict()
        return d

    @staticmethod
    def from_dict(d: dict) -> Envelope:
        return Envelope(tuple(d["min"]), tuple(d["opt"]), tuple(d["max"]), int(d.get("step", 1)),
                        int(d.get("window", 0)))


def _snap(v: int, step: int) -> int:
    return max(step, round(v / step) * step)


def parse(text: str) -> tuple[Shape, Shape, Shape]:
    """'1x3x224x224:1x3x384x384:1x3x512x512' -> (min, opt, max); one shape is min = opt = max."""
    text = text.strip()
    name, sep, rest = text.partition("=")
    if sep:  # TensorRT's per-input form: edgekit models have one image input, "input"
        if name.strip() != "input" or "," in rest:
            raise UsageError(f"--shapes {text!r}: the model has one input, 'input'; give MIN:OPT:MAX for it")
        text = rest
    parts = [p.strip() for p in text.split(":")]
    if len(parts) == 1:
        parts *= 3
    if len(parts) != 3 or not all(parts):
        raise UsageError(f"--shapes {text!r}: give MIN:OPT:MAX, three NCHW shapes like "
                         f"1x3x256x256:1x3x512x512:1x3x1024x1024")
    shapes = []
    for p in parts:
        try:
            shape = tuple(int(d) for d in p.lower().split("x"))
        except ValueError:
            raise UsageError(f"--shapes {text!r}: {p!r} is not a shape like 1x3x512x512") from None
        if len(shape) != 4 or any(d <= 0 for d in shape):
            raise UsageError(f"--shapes {text!r}: {p!r} must be four positive dimensions NxCxHxW")
        shapes.append(shape)
    return tuple(shapes)


def check(mn: Shape, opt: Shape, mx: Shape, rule: SizeRule, channels: int, source: str) -> None:
    """UsageError, in one line, when the envelope does not fit the model (module doc)."""
    for axis in range(4):
        lo, mid, hi = mn[axis], opt[axis], mx[axis]
        if not lo <= mid <= hi:
            raise UsageError(f"--shapes: {_AXES[axis]} must satisfy MIN <= OPT <= MAX, got {lo}, {mid}, {hi}")
    if {mn[1], opt[1], mx[1]} != {channels}:
        raise UsageError(f"--shapes: the channel count must be {channels} (the model's input) at MIN, OPT and MAX, "
                         f"got {mn[1]}, {opt[1]}, {mx[1]}")
    if mn[2:] != mx[2:] and not rule.varies:
        raise UsageError(f"--shapes: {source} cannot take more than one input size: the size is fixed by "
                         f"{rule.fixed_by} ({rule.why}); export once per size with --input-shape")
    for which, shape in (("MIN", mn), ("OPT", opt), ("MAX", mx)):
        bad = [v for v in shape[2:] if v % rule.step]
        if bad:
            raise UsageError(f"--shapes: {which} {fmt(shape)}: {bad[0]} is not a multiple of {rule.step}, {source}'s "
                             f"size step ({rule.step_why}); use {_snap(bad[0], rule.step)}")
        if rule.min_side and min(shape[2:]) < rule.min_side:
            raise UsageError(f"--shapes: {which} {fmt(shape)} is below {rule.min_side}, the smallest side {source} "
                             f"takes in one bundle ({rule.min_why})")


def envelope_for(text: str | None, dynamic_hw: bool, dynamic_batch: bool, opt: Shape, rule: SizeRule,
                 source: str) -> Envelope | None:
    """The envelope the user asked for (``--shapes``), or the planner's (``--dynamic-hw``: half to twice the
    model's size, in its steps); None for a fixed-size export."""
    if text:
        if dynamic_hw:
            raise UsageError("--dynamic-hw chooses the envelope itself: drop it, or drop --shapes")
        mn, mid, mx = parse(text)
        if dynamic_batch and mn[0] == mx[0]:
            raise UsageError(f"--dynamic-batch with --shapes {text}: the envelope fixes the batch at {mn[0]}; give its "
                             f"range in --shapes (e.g. N from 1 to 8) and drop --dynamic-batch")
    elif dynamic_hw:
        if dynamic_batch:
            raise UsageError("--dynamic-hw with --dynamic-batch: give the whole envelope, batch range included, with "
                             "--shapes MIN:OPT:MAX instead")
        if not rule.varies:
            raise UsageError(f"--dynamic-hw: {source} cannot take more than one input size: the size is fixed by "
                             f"{rule.fixed_by} ({rule.why}); export once per size with --input-shape")
        lo = [max(rule.min_side, _ceil_to(math.ceil(d / 2), rule.step)) for d in opt[2:]]
        hi = [_ceil_to(d * 2, rule.step) for d in opt[2:]]
        mn, mid, mx = (opt[0], opt[1], *lo), tuple(opt), (opt[0], opt[1], *hi)
        if min(mid[2:]) < rule.min_side:
            raise UsageError(f"--dynamic-hw: {source}'s input {fmt(opt)} is below {rule.min_side}, the smallest "
                             f"side it takes in one bundle ({rule.min_why})")
    else:
        return None
    check(mn, mid, mx, rule, opt[1], source)
    return Envelope(tuple(mn), tuple(mid), tuple(mx), rule.step, rule.window, rule)


def _ceil_to(v: int, step: int) -> int:
    return -(-v // step) * step


# What each zoo family does with the input size (docs/shapes.md has the table).
_ZOO = {
    "efficientvit": ("any", "convolutions and ReLU linear attention, whose cost grows with the token count but "
                            "whose weights do not depend on it"),
    "segformer": ("any", "overlapping patch embeddings and spatial-reduction attention; the decoder resizes every "
                         "stage to the stage-1 size it reads from the input"),
    "repvit": ("any", "convolutions only"),
    "fastvit": ("any", "RepMixer convolutions, a convolutional position encoding and global attention in the last "
                       "stage: no position table"),
    "swin": ("window", "shifted 7x7 windows: a feature grid that is not a multiple of 7 is padded inside the graph "
                       "(as Swin pads) and the shift mask is computed there for the padded grid"),
    "nextvit": ("rebuild", "E-MHSA's reshapes use sequence lengths fixed at construction; built for a range of "
                           "sizes, it reads them from the input, so the graph computes them"),
    "seaformer": ("rebuild", "the axial position embeddings are resized to each stage's axis lengths; built for a "
                             "range of sizes, F.interpolate does it in the graph (as the original does at run time) "
                             "instead of a matrix built for one size"),
    "efficientformerv2": ("fixed", "the attention-bias tables hold one learned value per token offset of the grid "
                                   "the model is built for (as the reference builds them)"),
}
# The module that fixes the size, per family whose rule is "fixed" (a path in the zoo model)
_FIXED_BY = {"efficientformerv2": "the attention-bias tables of Attention2d (stages.2/3 token mixers)"}
SWIN_WINDOW, SWIN_STRIDE = 7, 32


def zoo_rule(family: str, divisor: int, window: int = 0) -> SizeRule | None:
    """The rule of a zoo family (``window``: the model's attention window, for Swin); None for another family."""
    kind_why = _ZOO.get(family)
    if kind_why is None:
        return None
    kind, why = kind_why
    if kind in ("any", "rebuild"):
        return SizeRule(family, True, divisor, why, rebuild=kind == "rebuild")
    if kind == "window":
        window = window or SWIN_WINDOW
        # stride 32 at the last stage; every stage grid at least one window wide (the reference clamps a window
        # to a smaller grid at construction, which one graph cannot); no stage pads at multiples of 32 x window
        return SizeRule(family, True, SWIN_STRIDE, why.replace("7x7", f"{window}x{window}").replace("of 7", f"of {window}"),
                        window=SWIN_STRIDE * window, min_side=SWIN_STRIDE * window, rebuild=True,
                        step_why="patch 4, then three 2x2 patch merges",
                        min_why=f"every stage's grid at least one {window}x{window} window: the last stage is at stride "
                                f"32; a smaller grid would change the window itself, as the reference clamps it")
    return SizeRule(family, False, divisor, why, fixed_by=_FIXED_BY.get(family, family))


def probe_rule(model, spec, family: str = "") -> SizeRule:
    """A model edgekit does not know (timm, transformers, your code): it is run in PyTorch at its size plus one
    step; a model that refuses names the module that raised. The gate at the envelope's corners then checks
    that the exported graph did not freeze the size."""
    import torch

    # a segmenter's label map stays aligned with the image at multiples of its output stride
    step = max(1, spec.size_divisor, spec.output_stride)
    n, c, h, w = spec.input_shape
    other = (1, c, h + step, w + step)
    try:
        with torch.no_grad():
            model(torch.zeros(other))
    except Exception as e:  # noqa: BLE001 - any failure says the size is fixed; the message names where
        where = _raising_module(model, e) or "the model"
        text = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        return SizeRule(family or "model", False, step, f"at {fmt(other)} it fails: {text}", fixed_by=where,
                        step_why="its size divisor and output stride")
    return SizeRule(family or "model", True, step, f"ran in PyTorch at {h}x{w} and {h + step}x{w + step}",
                    step_why="its size divisor and output stride")


def _raising_module(model, error: BaseException) -> str:
    """The path of the innermost module whose forward was running when ``error`` was raised."""
    paths = {id(m): name for name, m in model.named_modules()}
    found = ""
    tb = error.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if owner is not None and id(owner) in paths:
            found = paths[id(owner)] or type(owner).__name__
        tb = tb.tb_next
    return found


def size_rule(loaded) -> SizeRule:
    """The rule for a loaded source (:class:`edgekit.sources.spec.SourceModel`): its zoo family's, or probed."""
    spec = loaded.spec
    if spec.source == spec.name and loaded.family:  # a zoo name
        from edgekit.models import _registry as reg

        rule = zoo_rule(loaded.family, spec.size_divisor, reg.get_cfg(spec.name).window)
        if rule is not None:
            return rule
    return probe_rule(loaded.model, spec, loaded.family)


def mixed_sizes(calib, envelope: Envelope, preprocess):
    """An int8 calibration set over the envelope: item i preprocessed at corner i mod the corner count (MIN, OPT,
    MAX, the size in between), so activation ranges cover every size the bundle takes; the set unchanged when it
    holds no images to resize (tensors read from files) or the size does not vary."""
    from dataclasses import replace

    if not envelope.dynamic_hw or len(calib.images) != len(calib.inputs) or not calib.inputs:
        return calib
    sizes = [shape[2:] for _, shape in envelope.corners()]
    inputs = [replace(preprocess, size=tuple(sizes[i % len(sizes)]))(image) if i % len(sizes) else x
              for i, (x, image) in enumerate(zip(calib.inputs, calib.images))]
    import hashlib

    described = ", ".join(fmt(s) for s in sizes)
    # a set of its own: the calibration cache is keyed by this digest, and these inputs are not the OPT-only ones
    digest = hashlib.sha256(f"{calib.sha256} at {described}".encode()).hexdigest()
    return replace(calib, inputs=inputs, sha256=digest,
                   source=f"{calib.source}, at the envelope's corners in turn ({described})")


def at_size(images, preprocess, size) -> list | None:
    """The items of a set (:class:`edgekit.calib.CalibrationSet`) preprocessed at ``size``, (H, W), from the decoded
    images it holds; None for a set of tensors read from files, which holds none."""
    from dataclasses import replace

    if len(images.images) != len(images.inputs):
        return None
    pre = replace(preprocess, size=tuple(size))
    return [pre(image) for image in images.images]
