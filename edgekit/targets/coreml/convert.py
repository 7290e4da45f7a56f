"""PyTorch -> CoreML ML Program: the prepared torch model wrapped so the app feeds a camera image.

The wrapper bakes the preprocessing in: the input is an ``ImageType`` (a CVPixelBuffer on the device,
8-bit RGB scaled by 1/255 by CoreML), the per-channel mean/std normalisation runs in the model (CoreML's
image scale is one scalar, so a per-channel std cannot live there), and a segmentation model returns
either its logits or the label map (argmax over classes, int32) at the logits' resolution.

Two ways into coremltools, tried in order, and the manifest records which one converted and why the
other did not (measured on this machine, coremltools 9.0, torch 2.13):

- ``torch.jit.trace``: converts every zoo model, and is the faster of the two (about half the time);
- ``torch.export``: the path coremltools is moving to; its graphs of some timm models (efficientvit_m0)
  carry ``aten.alias`` nodes coremltools has no converter for ("Unsupported fx node alias"), so those
  are removed first (an alias is the identity for an inference graph).
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from edgekit.errors import EdgekitFailure

IMAGE_INPUT = "image"


class Deployed(nn.Module):
    """image in [0, 1] (N, 3, H, W) -> normalised -> model -> logits, int32 labels (N, h, w) for segmentation, or
    a features model's outputs (a tuple, in order)."""

    def __init__(self, model: nn.Module, mean, std, labels: bool = False):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("inv_std", 1.0 / torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.labels = labels

    def forward(self, image: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        out = self.model((image - self.mean) * self.inv_std)
        if isinstance(out, dict):
            out = tuple(out.values())
        if isinstance(out, (tuple, list)):
            return out[0] if len(out) == 1 else tuple(out)
        return out.argmax(1).to(torch.int32) if self.labels else out


@dataclass
class Converted:
    mlmodel: object  # coremltools.models.MLModel
    frontend: str  # "torch.jit.trace" or "torch.export"
    notes: list[str] = field(default_factory=list)
    flexible: str = ""  # a shape envelope's input: "range" (RangeDim) or "enumerated" (EnumeratedShapes)


@contextlib.contextmanager
def quiet():
    """coremltools prints tqdm bars and int64->int32 notices on stderr for every conversion; keep them for errors."""
    buf = io.StringIO()
    ct_logger = logging.getLogger("coremltools")
    level = ct_logger.level
    ct_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(buf):
            warnings.simplefilter("ignore")
            yield buf
    finally:
        ct_logger.setLevel(level)


def drop_aliases(program) -> int:
    """Remove ``aten.alias`` nodes (identity at inference) from an ExportedProgram in place; returns how many."""
    graph = program.graph_module.graph
    aliases = [n for n in graph.nodes if n.op == "call_function" and str(n.target).startswith("aten.alias")]
    for node in aliases:
        node.replace_all_uses_with(node.args[0])
        graph.erase_node(node)
    if aliases:
        program.graph_module.recompile()
    return len(aliases)


def _traced(wrapped: nn.Module, example: torch.Tensor):
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about Python-side int() of sizes: shapes are static here
        return torch.jit.trace(wrapped, example, check_trace=False), []


def _exported(wrapped: nn.Module, example: torch.Tensor):
    program = torch.export.export(wrapped, (example,)).run_decompositions({})
    removed = drop_aliases(program)
    return program, [f"removed {removed} aten.alias node(s) coremltools cannot convert"] if removed else []


FRONTENDS = (("torch.jit.trace", _traced), ("torch.export", _exported))


def flexible_shapes(envelope) -> list[tuple[str, object]]:
    """CoreML input shapes for a shape envelope, in the order tried: a range of heights and widths (``RangeDim``,
    default OPT), then the envelope's corners as ``EnumeratedShapes`` where the converter cannot take a range."""
    import coremltools as ct

    n, c = envelope.opt[:2]
    ranged = ct.Shape(shape=(n, c, ct.RangeDim(envelope.min[2], envelope.max[2], envelope.opt[2]),
                             ct.RangeDim(envelope.min[3], envelope.max[3], envelope.opt[3])))
    corners = [tuple(shape) for _, shape in envelope.corners()]
    enumerated = ct.EnumeratedShapes(shapes=corners, default=tuple(envelope.opt))
    return [("range", ranged), ("enumerated", enumerated)]


def convert(wrapped: Deployed, input_shape: tuple[int, ...], output_names: str | tuple[str, ...],
            compute_precision: str, deployment_target: str, channel_order: str = "RGB", envelope=None) -> Converted:
    """Convert with the first frontend that works; raise EdgekitFailure naming why each failed. Every output of
    the model is kept, named ``output_names`` in order. ``envelope``: a flexible input (see
    :func:`flexible_shapes`); the kind that converted is in ``Converted.flexible``."""
    import coremltools as ct

    wrapped.eval()
    example = torch.rand(*input_shape)
    shapes = flexible_shapes(envelope) if envelope is not None and envelope.dynamic_hw else [("", tuple(input_shape))]
    failures, notes = [], []
    for kind, shape in shapes:
        try:
            converted = _convert(ct, wrapped, example, shape, output_names, compute_precision, deployment_target,
                                 channel_order)
        except EdgekitFailure as e:
            if not kind:
                raise
            failures.append(f"{kind}: {e}")
            notes.append(f"a CoreML input with a {kind} of sizes did not convert ({str(e)[:200]})")
            continue
        converted.notes[:0] = notes
        converted.flexible = kind
        return converted
    raise EdgekitFailure("CoreML conversion failed for the shape envelope: " + " | ".join(failures))


def _convert(ct, wrapped: Deployed, example, shape, output_names, compute_precision: str, deployment_target: str,
             channel_order: str) -> Converted:
    image = ct.ImageType(name=IMAGE_INPUT, shape=shape, scale=1.0 / 255.0, bias=[0.0, 0.0, 0.0],
                         color_layout=ct.colorlayout.BGR if channel_order == "BGR" else ct.colorlayout.RGB)
    precision = {"fp16": ct.precision.FLOAT16, "fp32": ct.precision.FLOAT32}[compute_precision]
    target = getattr(ct.target, deployment_target)
    # fp32 logits (the app reads what every other target gives; ML Program would default fp16 programs to fp16)
    names = (output_names,) if isinstance(output_names, str) else tuple(output_names)
    outputs = [ct.TensorType(name=n, dtype=np.int32 if wrapped.labels else np.float32) for n in names]
    failures, notes = [], []
    for name, frontend in FRONTENDS:
        try:
            with quiet() as log:
                source, frontend_notes = frontend(wrapped, example)
                mlmodel = ct.convert(source, inputs=[image], outputs=outputs,
                                     convert_to="mlprogram", compute_precision=precision,
                                     minimum_deployment_target=target)
        except Exception as e:  # both frontends and the converter raise many kinds; the next may work
            first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
            failures.append(f"{name}: {e.__class__.__name__}: {first[:240]}")
            notes.append(f"{name} did not convert ({failures[-1]})")
            del log
            continue
        return Converted(mlmodel, name, notes + frontend_notes)
    raise EdgekitFailure("CoreML conversion failed with every frontend: " + " | ".join(failures))
