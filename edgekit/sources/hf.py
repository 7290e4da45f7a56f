"""transformers model directories (``save_pretrained``): image classification, semantic segmentation, and
universal segmentation exported as per-class semantic scores.

The architecture is built from ``config.json`` through the Auto class for its task and the weights are
loaded strictly: a missing, unexpected or mis-shaped tensor is an error, never a silently random head.
Labels come from ``id2label``, preprocessing from ``preprocessor_config.json``.

Universal segmentation (Mask2Former, MaskFormer, EoMT; DETR's panoptic head) predicts N queries, each a
class distribution and a mask. The exported output is what transformers' ``post_process_semantic_segmentation``
computes before it resizes: per class c and pixel p, ``sum_q softmax(class_q)[c] * sigmoid(mask_q)[p]``
(the "no object" class dropped), a (B, classes, H/4, W/4) map whose argmax is the semantic label.
"""
from __future__ import annotations

import json
import math
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from edgekit.config import SourceOptions, Task
from edgekit.errors import UsageError
from edgekit.preprocess import Preprocess
from edgekit.sources.spec import DEFAULT, IMAGENET_MEAN, IMAGENET_STD, ModelSpec, SourceModel, check_shape

CLASSIFICATION, SEMANTIC, UNIVERSAL = "image classification", "semantic segmentation", "universal segmentation"
BACKBONE, BASE = "backbone", "base model"  # exported as features: feature maps, hidden states
_HEADED = (CLASSIFICATION, SEMANTIC, UNIVERSAL)
# universal-segmentation types whose forward takes more than pixels, or that are not image models
_UNSUPPORTED = {"oneformer": "OneFormer's forward needs its text task tokens (task_inputs), which a vision export "
                             "cannot feed", "videomt": "a video model"}
_PIL_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}
_PIL_NAMES = {1: "LANCZOS", 4: "BOX", 5: "HAMMING"}


def _mappings() -> dict[str, dict[str, str | tuple]]:
    from transformers.models.auto import modeling_auto as auto

    headed = {CLASSIFICATION: dict(auto.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES),
              SEMANTIC: dict(auto.MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES),
              UNIVERSAL: {k: v for k, v in auto.MODEL_FOR_UNIVERSAL_SEGMENTATION_MAPPING_NAMES.items()
                          if k not in _UNSUPPORTED}}
    backbones = dict(auto.MODEL_FOR_BACKBONE_MAPPING_NAMES)
    vision = {t for m in headed.values() for t in m} | set(backbones)  # the base models of vision model types only
    return {**headed, BACKBONE: backbones,
            BASE: {k: v for k, v in auto.MODEL_MAPPING_NAMES.items() if k in vision}}


def supported_model_types() -> list[str]:
    return sorted({t for task, m in _mappings().items() if task in _HEADED for t in m})


def _auto_class(task: str):
    import transformers

    return {CLASSIFICATION: transformers.AutoModelForImageClassification,
            SEMANTIC: transformers.AutoModelForSemanticSegmentation,
            UNIVERSAL: transformers.AutoModelForUniversalSegmentation,
            BACKBONE: transformers.AutoBackbone, BASE: transformers.AutoModel}[task]


def _model_class(task: str, model_type: str, architectures: list[str]):
    """The class that loads a directory saved for ``task``: the Auto class, except for backbones, whose
    AutoBackbone.from_pretrained asks the Hub whether a local path is a repo (and reads timm otherwise);
    their own class (``ConvNextBackbone``) is taken from ``architectures`` or the model type instead."""
    if task != BACKBONE:
        return _auto_class(task)
    import transformers

    known = set(_mappings()[BACKBONE].values())
    name = next((a for a in architectures if a in known), None) or _mappings()[BACKBONE][model_type]
    return getattr(transformers, name)


def _task_of(model_type: str, architectures: list[str]) -> str:
    """The task a directory's model was saved for: its ``architectures`` class, else its model type."""
    mappings = _mappings()
    classes = {task: {c for v in m.values() for c in (v if isinstance(v, tuple) else (v,))} for task, m in mappings.items()}
    for arch in architectures:
        for task in (*_HEADED, BACKBONE, BASE):
            if arch in classes[task]:
                return task
    if model_type in _UNSUPPORTED:
        raise UsageError(f"{model_type} is not supported: {_UNSUPPORTED[model_type]}")
    if architectures:
        raise UsageError(f"{architectures[0]} is not a model edgekit exports: it takes image classification, semantic "
                         f"and universal segmentation models, *Backbone models (feature maps) and the base *Model of "
                         f"vision model types (hidden states)")
    for task in (CLASSIFICATION, SEMANTIC, UNIVERSAL):
        if model_type in mappings[task]:
            return task
    raise UsageError(f"config.json model_type {model_type!r} is not a vision model edgekit exports; supported: "
                     f"{', '.join(supported_model_types())}")


@contextmanager
def _quiet_transformers():
    """transformers prints load reports and progress bars; edgekit reports what matters itself."""
    from transformers.utils import logging

    level = logging.get_verbosity()
    bars = logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def _import_transformers():
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise UsageError("reading a transformers model directory needs transformers: pip install transformers") from None


def transformers_directory(directory: Path, input_shape: tuple[int, ...] | None, options: SourceOptions, source: str,
                           weights_origin: str) -> SourceModel:
    _import_transformers()
    raw = json.loads((directory / "config.json").read_text())
    model_type = raw.get("model_type")
    task = _task_of(str(model_type), list(raw.get("architectures") or []))  # says why when it is none edgekit takes
    if model_type == "timm_wrapper":  # transformers builds the model with timm, which needs its stand-in import
        from edgekit.timm_compat import import_timm

        import_timm()
    _check_pickles(directory)
    with _quiet_transformers():
        try:
            model, info = _model_class(task, str(model_type), list(raw.get("architectures") or [])).from_pretrained(
                str(directory), local_files_only=True, output_loading_info=True)
        except (OSError, RuntimeError, ValueError, KeyError, TypeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
            raise UsageError(f"the weights in {directory} do not fit its config.json: {first}") from None
    _check_loading(directory, info)
    config = model.config
    num_classes = int(config.num_labels) if task in _HEADED else 0
    if options.num_classes is not None and options.num_classes != num_classes:
        raise UsageError(f"--num-classes {options.num_classes} contradicts {directory}: config.json and its weights "
                         f"have {num_classes} classes")
    here = "model files (config.json)"
    origin = {"weights": weights_origin, "num_classes": here}
    pre, pre_origin, size = _preprocessing(directory, config)
    origin.update(pre_origin)
    divisor = size_divisor(config)
    if input_shape is None:
        shape = (1, 3, *size)
        if divisor > 1 and (size[0] % divisor or size[1] % divisor):
            h, w = (max(divisor, round(d / divisor) * divisor) for d in size)
            raise UsageError(f"{directory}/preprocessor_config.json: size {size[0]}x{size[1]} is not a multiple of "
                             f"{divisor}, the size divisor of {model_type}; pass --input-shape 1x3x{h}x{w}")
    else:
        shape = tuple(input_shape)
        origin["size"] = "flag (--input-shape)"
    check_shape(shape, divisor, f"{model_type} ({source})")
    name = Path(source).name if Path(source).exists() else source.split("/")[-1]
    if task not in _HEADED:
        return _features_model(model, task, name, source, shape, pre, origin, divisor, options)
    wrapped = {CLASSIFICATION: ClassifierLogits, SEMANTIC: SegmentationLogits, UNIVERSAL: SemanticFromQueries}[task](model)
    from edgekit.sources.torch_sources import probe_output

    out = probe_output(wrapped, source, shape)
    if out.ndim not in (2, 4) or out.shape[1] != num_classes:
        raise UsageError(f"{source}: the model's output {tuple(out.shape)} is not {num_classes} class scores")
    labels = _labels(config, num_classes)
    if labels:
        origin["labels"] = here
    spec = ModelSpec(name=name, source=source, task=Task.CLASSIFICATION if task == CLASSIFICATION else Task.SEGMENTATION, input_shape=shape,
                     preprocess=Preprocess(size=tuple(shape[2:]), **pre), num_classes=num_classes, labels=labels,
                     output_stride=int(shape[2] // out.shape[2]) if out.ndim == 4 else 1, size_divisor=divisor,
                     origin=origin)
    return SourceModel(wrapped, spec)


def _features_model(model: nn.Module, task: str, name: str, source: str, shape: tuple[int, ...], pre: dict,
                    origin: dict, divisor: int, options: SourceOptions) -> SourceModel:
    """A ``*Backbone`` (its ``out_features`` maps) or a base ``*Model`` (``last_hidden_state``, and
    ``pooler_output`` where the model pools) as a features source."""
    from edgekit.sources.features import BackboneMaps, HiddenStates, features_spec

    if options.labels is not None or options.num_classes is not None:
        raise UsageError(f"{source} outputs features, which have no classes: drop --labels / --num-classes")
    origin = {k: v for k, v in origin.items() if k != "num_classes"}
    if task == BACKBONE:
        wrapped, names = BackboneMaps(model), [str(n) for n in model.config.out_features]
    else:
        with torch.no_grad():
            out = model(pixel_values=torch.zeros(*shape))
        names = [k for k in ("last_hidden_state", "pooler_output") if getattr(out, k, None) is not None]
        wrapped = HiddenStates(model, names)
    spec = ModelSpec(name=name, source=source, task=Task.FEATURES, input_shape=shape,
                     preprocess=Preprocess(size=tuple(shape[2:]), **pre), num_classes=0, size_divisor=divisor,
                     origin=origin)
    return features_spec(SourceModel(wrapped, spec), wrapped, names)


def _check_pickles(directory: Path) -> None:
    """A pytorch_model.bin is read once with weights_only=True first, so a pickle with code in it is refused
    with edgekit's own message whatever transformers version does the loading."""
    from edgekit.sources.weights import weight_files

    from edgekit.checkpoint import read_state_dict

    for f in weight_files(directory):
        if f.suffix == ".bin":
            read_state_dict(f)


def _check_loading(directory: Path, info: dict) -> None:
    problems = []
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        keys = sorted(str(k if not isinstance(k, tuple) else k[0]) for k in info.get(kind) or ())
        keys = [k for k in keys if not k.endswith("num_batches_tracked")]
        if keys:
            problems.append(f"{len(keys)} {kind.replace('_', ' ')}, first: {', '.join(keys[:3])}")
    if info.get("error_msgs"):
        problems.append(str(info["error_msgs"][0]).splitlines()[0])
    if problems:
        raise UsageError(f"the weights in {directory} do not fit its config.json ({'; '.join(problems)}); edgekit "
                         f"loads every tensor or none, never a randomly initialised part")


def _labels(config, num_classes: int) -> tuple[str, ...] | str:
    id2label = getattr(config, "id2label", None) or {}
    names = [id2label.get(i, id2label.get(str(i))) for i in range(num_classes)]
    if any(n is None for n in names) or all(str(n) == f"LABEL_{i}" for i, n in enumerate(names)):
        return ""  # transformers' placeholders say nothing
    return tuple(str(n) for n in names)


def _size_of(value) -> tuple[int, int] | None:
    if isinstance(value, int):
        return value, value
    if isinstance(value, dict):
        if "height" in value and "width" in value:
            return int(value["height"]), int(value["width"])
        if "shortest_edge" in value:
            return int(value["shortest_edge"]), int(value["shortest_edge"])
    return None


def _preprocessing(directory: Path, config) -> tuple[dict, dict, tuple[int, int]]:
    """(Preprocess fields, their origins, (H, W)) from preprocessor_config.json, else the config's image size
    and ImageNet statistics.

    edgekit resizes the whole frame to the model's input size, no crop (what a camera pipeline can do cheaply):
    a processor that resizes the shortest edge and centre-crops is run at its crop size, and one that resizes
    only the shortest edge at a square of that edge."""
    path = directory / "preprocessor_config.json"
    image_size = getattr(config, "image_size", None)
    fallback = _size_of(image_size if isinstance(image_size, (int, dict)) else None) or (224, 224)
    if not path.is_file():
        why = "default (ImageNet; the directory has no preprocessor_config.json)"
        return ({"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "resize": "bilinear"},
                {"mean": why, "std": why, "resize": why,
                 "size": "model files (config.json image_size)" if image_size else "default (224)"}, fallback)
    try:
        p = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"{path} is not valid JSON ({e.__class__.__name__})") from None
    here = "model files (preprocessor_config.json)"
    origin = {"mean": here, "std": here, "resize": here, "size": here, "scale": here}
    crop = _size_of(p.get("crop_size")) if p.get("do_center_crop") else None
    size = crop or _size_of(p.get("size")) or fallback
    if size[0] < 1 or size[1] < 1:
        raise UsageError(f"{path}: size {size[0]}x{size[1]} is not a valid image size")
    if not p.get("do_resize", True):
        origin["size"] = f"{here} (do_resize false: frames must arrive at {size[0]}x{size[1]}; edgekit resizes anyway)"
    resample = p.get("resample", 2)
    resize = _PIL_RESAMPLE.get(resample, "bilinear")
    if resample not in _PIL_RESAMPLE:
        origin["resize"] = (f"{here}: resample {_PIL_NAMES.get(resample, resample)}, run as bilinear (edgekit's "
                            f"runtimes resize with bilinear, bicubic or nearest)")
    normalize = p.get("do_normalize", True)
    mean = tuple(float(v) for v in p.get("image_mean", IMAGENET_MEAN)) if normalize else (0.0, 0.0, 0.0)
    std = tuple(float(v) for v in p.get("image_std", IMAGENET_STD)) if normalize else (1.0, 1.0, 1.0)
    if normalize and ("image_mean" not in p or "image_std" not in p):
        origin["mean"] = origin["std"] = DEFAULT
    if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
        raise UsageError(f"{path}: image_mean / image_std must be three values each, std > 0")
    scale = float(p.get("rescale_factor", 1 / 255)) if p.get("do_rescale", True) else 1.0
    order = "BGR" if p.get("do_flip_channel_order") else "RGB"
    return ({"mean": mean, "std": std, "resize": resize, "scale": scale, "channel_order": order}, origin, size)


def size_divisor(config) -> int:
    """What H and W must be multiples of: the patch size of a plain ViT, the total stride of a hierarchical
    backbone (32 for the usual four stages), a wrapped backbone's for UperNet / Mask2Former / DPT."""
    backbone = getattr(config, "backbone_config", None)
    if backbone is not None and not isinstance(backbone, dict):
        return size_divisor(backbone)
    patch = getattr(config, "patch_size", None)
    patch = patch[0] if isinstance(patch, (list, tuple)) else patch
    depths = getattr(config, "depths", None)
    strides = getattr(config, "strides", None)
    if config.model_type == "segformer" and strides:
        return math.prod(int(s) for s in strides)
    if config.model_type == "hiera":  # patch_size is the patch embedding's kernel; it strides by patch_stride,
        # each later stage pools by query_stride, and the tokens must tile into mask units
        pooled = config.query_stride[0] ** (len(depths) - 1)
        return config.patch_stride[0] * math.lcm(pooled, config.masked_unit_size[0])
    if depths is not None and isinstance(patch, int):
        return patch * 2 ** (len(depths) - 1)  # Swin-style: patch embedding, then a 2x merge per stage
    if depths is not None or getattr(config, "hidden_sizes", None) is not None:
        return 32
    if isinstance(patch, int):
        return patch
    return 32 if config.model_type in ("mobilenet_v1", "mobilenet_v2", "efficientnet") else 1


class ClassifierLogits(nn.Module):
    """A transformers classifier with one tensor output: (B, 3, H, W) -> logits (B, classes)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=x).logits


class SegmentationLogits(ClassifierLogits):
    """A transformers semantic segmenter: (B, 3, H, W) -> logits (B, classes, H / s, W / s)."""


class SemanticFromQueries(ClassifierLogits):
    """Mask2Former / MaskFormer / EoMT (and DETR's panoptic head): per-class semantic scores from the queries,
    (B, 3, H, W) -> (B, classes, H / 4, W / 4), as transformers' semantic post-processing computes them."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=x)
        classes = getattr(out, "class_queries_logits", None)
        masks = getattr(out, "masks_queries_logits", None)
        if classes is None:  # DETR names them logits / pred_masks
            classes, masks = out.logits, out.pred_masks
        scores = classes.softmax(-1)[..., :-1]  # the last class is "no object"
        return torch.einsum("bqc,bqhw->bchw", scores, masks.sigmoid())
