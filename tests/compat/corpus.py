"""The compatibility corpus: models users bring, beyond edgekit's zoo, and the targets each is exported to.

One list, read by the tests (``tests/compat/test_compat.py``) and by ``scripts/compat_matrix.py`` (which
writes docs/compatibility.md). Every model goes through the real pipeline (``edgekit.export``) with random
weights (:mod:`tests.compat.weights`) at the smallest input its architecture accepts:

- every model: ONNX Runtime and OpenVINO, fp32, through the parity gate at its default tolerances;
- the family's representative (``ci=True``, exactly one per family): also the TensorRT-flavoured ONNX
  (``--onnx-only``, its parity measured in ONNX Runtime as a stand-in), CoreML (conversion only:
  CoreML predicts only on macOS, so parity is recorded as not measured), and the two mobile runtimes,
  ExecuTorch (XNNPACK) and LiteRT, whose parity is measured here in their own runtimes.

CI runs each representative on one of ONNX Runtime and OpenVINO (alternating down the list, or the runtime
an edgekit fix for the family is about), and one transformers representative per task on every target but the
two mobile runtimes
(:attr:`Model.ci_targets`); ``EDGEKIT_FULL_COMPAT=1`` runs every pair.

Sources, as users bring them: ``timm:<name>`` (a published architecture, with a checkpoint of random
weights), a timm model directory (``timm-dir:<family>``: a slimmed copy saved by timm's ``save_for_hf``,
:mod:`tests.compat.timm_tiny`), a factory (``tests.compat.timm_tiny:<fn>``, edgekit's "your code" source) and a
transformers model directory (``transformers:<builder>``: a tiny config saved by ``save_pretrained``,
:mod:`tests.compat.hf_models`). A family's representative is its cheapest member: a transformers model where
the family has one, else the slimmed timm copy (a published small variant costs 15-35 s per export here).

A pair that fails because of a bug outside edgekit is declared with :class:`Known` (the error it fails
with and why); the tests assert it still fails that way, so the table stays honest and a fix upstream
is noticed.

Input sizes: 64x64 where the architecture takes any size (timm builds windowed and position-embedding
models for the size asked, ``img_size``); otherwise the native size, said in ``note``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

BASE_TARGETS = ("onnx", "openvino")
MOBILE_TARGETS = ("executorch", "litert")
FAMILY_TARGETS = ("trt", "coreml", *MOBILE_TARGETS)
PRECISION = "fp32"
ZOO_FAMILIES = ("efficientvit", "swin", "segformer", "fastvit", "nextvit", "repvit", "efficientformerv2", "seaformer")


@dataclass(frozen=True)
class Known:
    """A pair that fails because of a bug outside edgekit: ``match`` is in its one-line error."""

    target: str
    match: str
    why: str


@dataclass(frozen=True)
class Model:
    id: str  # the table's row: timm's model name, or ``hf/<builder>`` for a transformers directory
    family: str
    mixes: str  # how the architecture mixes convolution and attention
    input_shape: str
    source: str  # "timm:<name>", "timm-dir:<family>", "tests.compat.timm_tiny:<fn>" or "transformers:<builder>"
    task: str = "classification"
    ci: bool = False  # the family's representative: every target, and run in CI
    all_targets_in_ci: bool = False  # CI exports it to every target (see ci_targets)
    ci_target: str = ""  # the runtime CI checks a representative on; "" alternates (see _alternate_ci_targets)
    known: tuple[Known, ...] = ()
    note: str = ""

    @property
    def library(self) -> str:
        """The library whose architecture it is: "timm" or "transformers"."""
        return "transformers" if self.source.startswith("transformers:") else "timm"

    @property
    def published(self) -> bool:
        """A published architecture as registered (not a slimmed copy for CI)."""
        return self.source.startswith(("timm:", "transformers:"))

    @property
    def targets(self) -> tuple[str, ...]:
        """Every target this model is exported to (the full run)."""
        return BASE_TARGETS + (FAMILY_TARGETS if self.ci else ())

    @property
    def ci_targets(self) -> tuple[str, ...]:
        """What CI exports: each representative to one runtime (:attr:`ci_target`), and one transformers
        representative per task (``all_targets_in_ci``) to every target. Measured on 2 cores: an export of
        a representative costs 1-14 s (4.4 s on average: the slimmed timm copies keep every block kind of their
        graphs, and onnxslim alone takes ~0.4 s per pass over them), so both runtimes for every representative
        took 5.6 min of a suite that must stay within 15; the other runtime, the other TensorRT and CoreML
        pairs, and every published variant run in the full tier."""
        if not self.ci:
            return ()
        # ExecuTorch and LiteRT (a lowering or conversion each, 10-90 s) run in the full tier only
        return tuple(t for t in self.targets if t not in MOBILE_TARGETS) if self.all_targets_in_ci else \
            (self.ci_target,)

    def known_for(self, target: str) -> Known | None:
        return next((k for k in self.known if k.target == target), None)


def _timm(name: str, family: str, mixes: str, shape: int | str = 64, ci: bool = False, known=(), note: str = ""):
    side = shape if isinstance(shape, str) else f"1x3x{shape}x{shape}"
    return Model(name, family, mixes, side, f"timm:{name}", ci=ci, known=tuple(known), note=note)


def _tiny(family: str, mixes: str, shape: int = 64, factory: str = "", known=(), note: str = "", ci_target: str = ""):
    """A family's slimmed timm copy (:mod:`tests.compat.timm_tiny`), its CI representative."""
    source = f"tests.compat.timm_tiny:{factory}" if factory else f"timm-dir:{family}"
    return Model(f"tiny/{family}", family, mixes, f"1x3x{shape}x{shape}", source, ci=True, known=tuple(known),
                 note=note, ci_target=ci_target)


def _hf(builder: str, family: str, mixes: str, task: str = "classification", shape: int = 64, ci: bool = False,
        known=(), note: str = "", all_targets_in_ci: bool = False, ci_target: str = ""):
    return Model(f"hf/{builder}", family, mixes, f"1x3x{shape}x{shape}", f"transformers:{builder}", task=task, ci=ci,
                 all_targets_in_ci=all_targets_in_ci, known=tuple(known), note=note, ci_target=ci_target)


CORPUS: tuple[Model, ...] = (
    # --- timm: published variants (full run) and each family's slimmed copy (CI) ---------------------
    _timm("mobilevit_xxs", "mobilevit", "conv + global attention over unfolded patches"),
    _timm("mobilevitv2_050", "mobilevit", "conv + separable linear attention"),
    _timm("efficientformer_l1", "efficientformer", "pooling mixer + global attention (last stage)", 224,
          note="224: the last stage's attention bias is fixed at 7x7 tokens"),
    _tiny("efficientformer", "pooling mixer + global attention", 224, note="224, as efficientformer_l1"),
    _timm("edgenext_xx_small", "edgenext", "depthwise conv + transposed (channel) attention"),
    _tiny("edgenext", "depthwise conv + transposed (channel) attention"),
    _timm("tiny_vit_5m_224", "tiny_vit", "MBConv + windowed attention with local conv"),
    _tiny("tiny_vit", "MBConv + windowed attention with local conv"),
    _timm("maxvit_pico_rw_256", "maxvit", "MBConv + block and grid (multi-axis) attention"),
    _timm("maxxvitv2_nano_rw_256", "maxvit", "ConvNeXt blocks + multi-axis attention"),
    _timm("coatnet_pico_rw_224", "maxvit", "MBConv stages + relative-position attention stages (CoAtNet)"),
    _tiny("maxvit", "MBConv + block and grid attention (timm's test_maxvit)"),
    _timm("levit_128s", "levit", "conv stem + attention with attention bias and subsampling"),
    _timm("levit_conv_128s", "levit", "LeViT written with 1x1 convolutions"),
    _timm("efficientvit_m0", "efficientvit_msra", "depthwise conv + cascaded group attention"),
    _tiny("efficientvit_msra", "depthwise conv + cascaded group attention"),
    _timm("pvt_v2_b0", "pvt_v2", "overlapping conv patches + spatial-reduction (pooled) attention"),
    _timm("poolformerv2_s12", "metaformer", "pooling token mixer"),
    _timm("convformer_s18", "metaformer", "separable-conv token mixer"),
    _timm("caformer_s18", "metaformer", "conv stages + attention stages"),
    _tiny("metaformer", "conv stages + attention stages (CAFormer)", factory="caformer"),
    _timm("coat_lite_mini", "coat", "conv-attentional factorized attention + conv position encoding"),
    _tiny("coat", "conv-attentional factorized attention + conv position encoding", factory="coat_lite"),
    _timm("crossvit_tiny_240", "crossvit", "two patch sizes + cross attention", "1x3x240x240",
          note="240: the two branches' position embeddings fix the size"),
    _tiny("crossvit", "two patch sizes + cross attention", 240, note="240, as crossvit_tiny_240",
          known=[Known("coreml", "upsample_bicubic2d", "coremltools 9 has no converter for bicubic interpolation, "
                                                        "which CrossViT uses to resize the image for its second "
                                                        "branch (240 -> 224)")]),
    _timm("convit_tiny", "convit", "gated positional self-attention (soft convolutional bias)"),
    _tiny("convit", "gated positional self-attention (soft convolutional bias)"),
    _timm("davit_tiny", "davit", "conv position encoding + spatial window and channel-group attention"),
    _tiny("davit", "conv position encoding + spatial window and channel-group attention"),
    _timm("nest_tiny", "nest", "nested block-local attention + conv-pool aggregation"),
    _tiny("nest", "nested block-local attention + conv-pool aggregation", factory="nest"),
    _timm("twins_svt_small", "twins", "locally-grouped + global sub-sampled attention"),
    _timm("twins_pcpvt_small", "twins", "conditional position encoding + sub-sampled attention"),
    _tiny("twins", "locally-grouped + global sub-sampled attention (SVT)"),
    _timm("xcit_nano_12_p16_224", "xcit", "cross-covariance (channel) attention + local patch interaction"),
    _tiny("xcit", "cross-covariance (channel) attention + local patch interaction"),
    _timm("mvitv2_tiny", "mvitv2", "pooling attention with decomposed relative positions"),
    _tiny("mvitv2", "pooling attention with decomposed relative positions", factory="mvitv2"),
    _timm("hiera_tiny_224", "hiera", "mask-unit attention + query pooling"),
    _timm("focalnet_tiny_srf", "focalnet", "focal modulation (gated depthwise-conv context)"),
    _timm("swinv2_cr_tiny_ns_224", "swinv2", "shifted-window cosine attention with continuous position bias"),
    _timm("swinv2_tiny_window8_256", "swinv2", "shifted-window cosine attention, log-spaced CPB"),
    _timm("gcvit_xxtiny", "gcvit", "local window + global-query attention, fused-MBConv downsampling"),
    _tiny("gcvit", "local window + global-query attention, fused-MBConv downsampling", factory="gcvit",
          ci_target="openvino"),  # square_transpose_rank5
    _timm("vit_tiny_r_s16_p8_224", "vit_hybrid", "ResNet stem + ViT"),
    _timm("vit_small_r26_s32_224", "vit_hybrid", "ResNet-26 backbone + ViT"),
    _tiny("vit_hybrid", "ResNet stem + ViT"),
    _timm("mobilenetv4_hybrid_medium", "mobilenetv4", "UIB conv blocks + mobile multi-query attention"),
    _tiny("mobilenetv4", "UIB conv blocks + mobile multi-query attention", factory="mobilenetv4_hybrid",
          ci_target="openvino"),  # square_transpose_rank5
    _timm("mambaout_femto", "mambaout", "gated conv blocks (Mamba without the SSM)"),
    _tiny("mambaout", "gated conv blocks (timm's test_mambaout)"),
    _timm("vitamin_small_224", "vitamin", "MBConv stages + ViT stage"),
    _tiny("vitamin", "MBConv stages + ViT stage (GeGLU)", factory="vitamin"),
    _timm("volo_d1_224", "volo", "outlook attention + class attention"),
    _tiny("volo", "outlook attention + class attention", factory="volo",
          known=[Known("litert", "Only update, Add, Multiply, Maximum and Minimum operations are currently supported "
                                 "for stablehlo.scatter", "LiteRT cannot run the scatter litert-torch makes of VOLO's "
                                                          "fold (col2im); the transposed-convolution form that "
                                                          "ExecuTorch and CoreML run does not legalize in "
                                                          "litert-torch 0.10 (mhlo.convolution)")]),
    _timm("shvit_s1", "shvit", "single-head attention on a channel split + conv"),
    _tiny("shvit", "single-head attention on a channel split + conv"),
    _timm("cait_xxs24_224", "cait", "ViT + talking heads + class attention"),
    _tiny("cait", "ViT + talking heads + class attention"),
    _timm("pit_ti_224", "pit", "ViT with depthwise-conv pooling between stages"),
    _tiny("pit", "ViT with depthwise-conv pooling between stages"),
    # --- transformers model directories (save_pretrained) ------------------------------------------
    _hf("vit", "vit (transformers)", "patch conv + global attention", ci=True, all_targets_in_ci=True),
    _hf("deit", "vit (transformers)", "ViT with distillation token"),
    _hf("dinov2", "vit (transformers)", "ViT with layer scale and interpolated position embedding"),
    _hf("swinv2", "swinv2", "shifted-window cosine attention", ci=True),
    _hf("levit", "levit", "conv stem + attention with bias", ci=True),
    _hf("pvt_v2", "pvt_v2", "spatial-reduction attention", ci=True),
    _hf("focalnet", "focalnet", "focal modulation", ci=True),
    _hf("cvt", "cvt (transformers)", "convolutional token embedding + conv projections", ci=True),
    _hf("hiera", "hiera", "mask-unit attention + query pooling", ci=True,
        known=[Known("executorch", "amax.default only supports keep_dim == True",
                     "ExecuTorch 1.5's XNNPACK lowering raises on transformers Hiera's amax without keepdim (its "
                     "query pooling) instead of leaving that node to the portable kernels")]),
    _hf("swiftformer", "swiftformer (transformers)", "conv encoders + efficient additive attention", ci=True),
    _hf("segformer", "segformer (transformers)", "efficient attention encoder + MLP decoder", "segmentation",
        ci=True, all_targets_in_ci=True),
    _hf("mobilevit_seg", "mobilevit", "MobileViT + DeepLabV3 ASPP", "segmentation", ci=True),
    _hf("mobilevitv2_seg", "mobilevit", "MobileViTv2 + DeepLabV3 ASPP", "segmentation"),
    _hf("upernet_convnext", "upernet (transformers)", "ConvNeXt + UperNet (PPM + FPN)", "segmentation"),
    _hf("upernet_swin", "upernet (transformers)", "Swin + UperNet (PPM + FPN)", "segmentation", ci=True),
    _hf("dpt", "dpt (transformers)", "ViT + reassemble/fusion conv neck", "segmentation", ci=True),
    _hf("beit_seg", "beit (transformers)", "BEiT (relative position bias) + UperNet", "segmentation", ci=True,
        known=[Known("coreml", "updates tensor should have shape", "coremltools 9 cannot convert the index-table "
                                                                   "assignments transformers' BEiT traces for its "
                                                                   "relative position index (torch_tensor_assign: "
                                                                   "update shape [] vs (1,), and an int32/fp32 "
                                                                   "mismatch through torch.export)")]),
    _hf("data2vec_vision_seg", "beit (transformers)", "data2vec-vision (BEiT) + UperNet", "segmentation"),
    _hf("deeplabv3_mobilenet_v2", "deeplabv3 (transformers)", "MobileNetV2 + DeepLabV3 ASPP (conv only)",
        "segmentation", ci=True),
    _hf("mask2former", "maskformer (transformers)", "Swin + deformable-attention pixel decoder + masked-attention "
        "decoder", "segmentation", ci=True, ci_target="onnx",  # cast_grid_sample_grid
        known=[Known("coreml", "meshgrid received non-1d tensor", "coremltools 9 cannot convert the meshgrid of "
                                                                  "traced linspaces that transformers' Mask2Former "
                                                                  "uses for its deformable-attention reference "
                                                                  "points (and torch.export's graph has a type it "
                                                                  "does not support)")]),
    _hf("maskformer", "maskformer (transformers)", "Swin + FPN + DETR query decoder", "segmentation"),
    _hf("eomt", "eomt (transformers)", "ViT encoder with query tokens in the last blocks (masked attention "
        "annealed away, as trained)", "segmentation", ci=True, all_targets_in_ci=True,
        known=[Known(t, "Could not guard on data-dependent expression", "transformers' EoMT branches on a tensor's "
                                                                        "value (its mask-annealing probability), "
                                                                        "which torch.export cannot capture: a "
                                                                        "data-dependent guard Eq(u0, 1)")
               for t in ("executorch", "litert")]),
    _hf("eomt_masked_attention", "eomt (transformers)", "EoMT with its mask-guided attention on (as initialised)",
        "segmentation"),
)


def _alternate_ci_targets(models: tuple[Model, ...]) -> tuple[Model, ...]:
    """Representatives without a :attr:`Model.ci_target` get ONNX Runtime and OpenVINO in turn."""
    out, turn = [], 0
    for m in models:
        if m.ci and not m.all_targets_in_ci and not m.ci_target:
            m, turn = replace(m, ci_target=BASE_TARGETS[turn % len(BASE_TARGETS)]), turn + 1
        out.append(m)
    return tuple(out)


CORPUS = _alternate_ci_targets(CORPUS)


def by_id(model_id: str) -> Model:
    for m in CORPUS:
        if m.id == model_id:
            return m
    raise KeyError(model_id)


def pairs(full: bool) -> list[tuple[Model, str]]:
    """(model, target) in corpus order: every pair with ``full``, CI's (:attr:`Model.ci_targets`) otherwise."""
    return [(m, t) for m in CORPUS for t in (m.targets if full else m.ci_targets)]
