"""The flow of a user with their own model, end to end from the CLI on trained weights (docs/models-you-bring.md):

fine-tune a timm model on your classes (MobileViT-XXS on the ten digits, scripts/train_digits.py) -> save it as a
state dict, as a timm directory (timm's save_for_hf) and as a transformers directory (save_pretrained of
transformers' TimmWrapper) -> `edgekit export --precision int8` each on its own calibration images ->
`edgekit evaluate` on a labeled folder. The int8 top-1 stays within 1 point of PyTorch fp32, and the three ways of
saving give the same bundle to within 0.1 point.

The hub forms, from a Hugging Face cache the test fills (these machines cannot reach the hub): a transformers
model trained the same way (a small SegFormer on the digit mosaics), saved with save_pretrained, placed in the
cache as a repo and exported int8 as `hf:<repo id>`: its mIoU within 0.01 of PyTorch's; and the fine-tuned
MobileViT's timm directory placed where timm's published weights for `mobilevit_xxs.cvnets_in1k` live, exported
as `timm:mobilevit_xxs.cvnets_in1k --pretrained`: the bundle's top-1 is the trained model's.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from tests.digits import trained

pytestmark = pytest.mark.slow
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # what train_digits normalizes with
LABELS = [f"digit {i}" for i in range(10)]


@contextlib.contextmanager
def transformers_builds_timm():
    """transformers builds a TimmWrapper only where torchvision is installed (a training machine has it; this one
    does not, and building the model needs none of it): let it, for saving the directory a user would have."""
    import transformers.models.timm_wrapper.modeling_timm_wrapper as wrapper
    import transformers.utils.import_utils as imports

    from edgekit.timm_compat import import_timm

    check = imports.BACKENDS_MAPPING["timm"]
    had = hasattr(wrapper, "timm")
    imports.BACKENDS_MAPPING["timm"] = (lambda: True, check[1])
    wrapper.timm = import_timm()
    try:
        yield
    finally:
        imports.BACKENDS_MAPPING["timm"] = check
        if not had:
            del wrapper.timm


def _save_three_ways(tmp_path, checkpoint) -> dict[str, list[str]]:
    """The fine-tuned model as users save it; returns the export arguments for each way."""
    from edgekit.timm_compat import import_timm

    import_timm()  # timm without torchvision (edgekit's scoped stand-in), before any timm submodule
    from timm.models._hub import save_for_hf

    from scripts import train_digits as td

    model = td.load_trained("timm_mobilevit")
    data = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "input_size": (3, td.CLS_SIZE, td.CLS_SIZE),
            "interpolation": "bilinear", "crop_pct": 1.0}
    timm_dir = tmp_path / "timm-dir"
    save_for_hf(model, str(timm_dir), model_config={"label_names": LABELS}, data_config=data, safe_serialization=True)

    from transformers import TimmWrapperConfig, TimmWrapperForImageClassification

    hf_dir = tmp_path / "transformers-dir"
    with transformers_builds_timm():
        config = TimmWrapperConfig(architecture="mobilevit_xxs", num_labels=10, label_names=LABELS,
                                   pretrained_cfg={**data, "input_size": list(data["input_size"])})
        wrapped = TimmWrapperForImageClassification(config)
        wrapped.timm_model.load_state_dict(model.state_dict())
        wrapped.save_pretrained(hf_dir)
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n")
    return {
        "state dict": ["timm:mobilevit_xxs", "--checkpoint", str(checkpoint), "--input-shape", "1x3x64x64",
                       "--mean", ",".join(map(str, IMAGENET_MEAN)), "--std", ",".join(map(str, IMAGENET_STD)),
                       "--resize", "bilinear", "--labels", str(labels)],
        "timm directory": [str(timm_dir)],
        "transformers directory": [str(hf_dir)],
    }


def _export_and_evaluate(cli, tmp_path, name, source_args, calib, val, int8: bool = True) -> tuple[dict, dict]:
    out = tmp_path / name.replace(" ", "-")
    precision = ["--precision", "int8", "--max-drop", "1"] if int8 else ["--precision", "fp32"]
    code, _, err = cli("export", *source_args, "--target", "onnx", *precision, "--calib", calib, "--out", out,
                       "--quiet")
    assert code == 0, err
    code, report, err = cli("evaluate", out, "--data", val, "--json", "--quiet")
    assert code == 0, err
    return json.loads((out / "manifest.json").read_text()), json.loads(report)


def _print_figures(results: dict[str, tuple[dict, dict]]) -> None:
    """The table docs/models-you-bring.md shows (``pytest tests/test_user_flow.py -s`` prints it)."""
    print("\n| saved as | source | precision | metric | PyTorch fp32 | bundle | drop | agreement with fp32 |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (manifest, report) in results.items():
        source = manifest["model"]["source"]
        source = f"{Path(source).name}/" if Path(source).is_absolute() else source  # a directory: its name
        fmt = (lambda v: f"{v * 100:.2f}%") if report["metric"] == "top-1" else (lambda v: f"{v:.4f}")
        print(f"| {name} | `{source}` | {manifest['precision']} | {report['metric']} | "
              f"{fmt(report['reference_value'])} | {fmt(report['value'])} | "
              f"{fmt(report['reference_value'] - report['value'])} | {report['agreement'] * 100:.2f}% |")


def test_a_finetuned_timm_model_saved_three_ways(cli, tmp_path):
    pytest.importorskip("transformers")
    root = trained("timm_mobilevit")
    from scripts import train_digits as td

    ways = _save_three_ways(tmp_path, td.checkpoint_path("timm_mobilevit"))
    results = {name: _export_and_evaluate(cli, tmp_path, name, args, root / "cls" / "calib", root / "cls" / "val")
               for name, args in ways.items()}
    for name, (manifest, report) in results.items():
        source = manifest["model"]["source"]
        source = f"{Path(source).name}/" if Path(source).is_absolute() else source  # a directory: its name
        assert manifest["model"]["num_classes"] == 10 and manifest["model"]["labels"] == LABELS, name
        assert manifest["preprocess"]["mean"] == list(IMAGENET_MEAN) and manifest["preprocess"]["std"] == list(IMAGENET_STD)
        assert report["images"] == 360 and report["reference"].startswith("PyTorch fp32"), name
        assert report["reference_value"] > 0.85, f"{name}: the fine-tuned model is not trained ({report})"
        assert report["value"] >= report["reference_value"] - 0.01, f"{name}: int8 lost more than 1 point ({report})"
    assert results["state dict"][0]["model"]["origin"]["num_classes"].startswith("checkpoint (")
    assert results["timm directory"][0]["preprocess"]["origin"]["mean"] == "model files (config.json)"
    top1 = [report["value"] for _, report in results.values()]
    _print_figures(results)
    assert max(top1) - min(top1) <= 0.001, {name: r["value"] for name, (_, r) in results.items()}


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, offline: what the hub forms read."""
    from tests.sources.models import offline_hub_home

    return offline_hub_home(tmp_path, monkeypatch) / "hub"


def test_a_trained_transformers_segformer_from_the_hub_cache(cli, tmp_path, hub_cache):
    pytest.importorskip("transformers")
    root = trained("hf_segformer")
    from scripts import train_digits as td
    from tests.sources.models import put_in_hub_cache

    directory = tmp_path / "segformer"
    td.load_trained("hf_segformer").model.save_pretrained(directory)
    (directory / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "SegformerImageProcessor", "do_resize": True,
        "size": {"height": td.SEG_SIZE, "width": td.SEG_SIZE}, "resample": 2, "do_rescale": True,
        "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": list(IMAGENET_MEAN),
        "image_std": list(IMAGENET_STD)}))
    put_in_hub_cache(hub_cache, "edgekit-tests/digits-segformer", directory)
    manifest, report = _export_and_evaluate(cli, tmp_path, "segformer-int8", ["hf:edgekit-tests/digits-segformer"],
                                            root / "seg" / "calib", root / "seg" / "val")
    assert manifest["model"]["origin"]["weights"].startswith("hub edgekit-tests/digits-segformer@")
    assert manifest["model"]["task"] == "segmentation" and manifest["model"]["labels"][:2] == ["background", "digit 0"]
    _print_figures({"transformers directory, in the hub cache": (manifest, report)})
    assert report["metric"] == "mIoU" and report["reference_value"] > 0.5, report
    assert report["value"] >= report["reference_value"] - 0.01, report


def test_timm_pretrained_from_the_hub_cache_is_the_trained_model(cli, tmp_path, hub_cache):
    """`timm:<name>.<tag> --pretrained` reads the weights timm publishes for the tag from the cache; here the
    fine-tuned MobileViT stands where they would be, so the bundle must score what the trained model scores."""
    root = trained("timm_mobilevit")
    from edgekit.timm_compat import import_timm
    from tests.sources.models import put_in_hub_cache

    import_timm()
    from timm.models._hub import save_for_hf

    from scripts import train_digits as td

    data = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "input_size": (3, td.CLS_SIZE, td.CLS_SIZE),
            "interpolation": "bilinear", "crop_pct": 1.0}
    save_for_hf(td.load_trained("timm_mobilevit"), str(tmp_path / "published"), model_config={"label_names": LABELS},
                data_config=data, safe_serialization=True)
    put_in_hub_cache(hub_cache, "timm/mobilevit_xxs.cvnets_in1k", tmp_path / "published")
    manifest, report = _export_and_evaluate(cli, tmp_path, "hub-timm", ["timm:mobilevit_xxs.cvnets_in1k",
                                                                        "--pretrained"],
                                            root / "cls" / "calib", root / "cls" / "val", int8=False)
    _print_figures({"timm directory, in the hub cache": (manifest, report)})
    assert manifest["model"]["origin"]["weights"].startswith("hub timm/mobilevit_xxs.cvnets_in1k@")
    assert manifest["model"]["labels"] == LABELS and manifest["precision"] == "fp32"
    assert report["reference_value"] > 0.85, f"not the trained weights ({report})"
    assert report["value"] == report["reference_value"] and report["agreement"] == 1.0, report
