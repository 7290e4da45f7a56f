"""Hub names as users type them, hf:<repo id> and timm:<name>[.<tag>] --pretrained, resolved through the
Hugging Face cache. These machines cannot reach the hub, so each test fills a cache directory of its own in
the hub's layout (what `hf download` leaves) and points HF_HOME at it."""
from __future__ import annotations

import json

import pytest
import torch

import edgekit
from tests.sources.models import COMMIT, offline_hub_home, put_in_hub_cache, segformer_dir, timm_dir

CLOSED = "http://127.0.0.1:9"  # nothing listens there: a hub that cannot be reached, at once


def _one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    return offline_hub_home(tmp_path, monkeypatch)


def test_hf_repo_from_the_cache(tmp_path, hf_home):
    pytest.importorskip("transformers")
    put_in_hub_cache(hf_home / "hub", "edgekit-tests/tiny-segformer", segformer_dir(tmp_path / "seg"))
    bundle = edgekit.export("hf:edgekit-tests/tiny-segformer", "onnx", tmp_path / "b", calib_size=2)
    m = bundle.manifest
    assert m["model"]["source"] == "hf:edgekit-tests/tiny-segformer" and m["model"]["task"] == "segmentation"
    assert m["model"]["origin"]["weights"] == f"hub edgekit-tests/tiny-segformer@{COMMIT[:12]}"
    assert m["model"]["input_shape"] == [1, 3, 64, 64]  # from the repo's preprocessor_config.json
    assert bundle.parity["passed"] is True


@pytest.mark.parametrize("name", ["timm:edgenext_xx_small.in1k", "timm:edgenext_xx_small"])
def test_timm_pretrained_from_the_cache(tmp_path, hf_home, name):
    """The published weights of a tag (or of the default tag) are what the bundle computes with."""
    published = timm_dir(tmp_path / "published", num_classes=1000, mean=(0.485, 0.456, 0.406),
                         std=(0.229, 0.224, 0.225))
    put_in_hub_cache(hf_home / "hub", "timm/edgenext_xx_small.in1k", published)
    bundle = edgekit.export(name, "onnx", tmp_path / "b", pretrained=True, input_shape="1x3x64x64", calib_size=2)
    m = bundle.manifest
    assert m["model"]["origin"]["weights"] == f"hub timm/edgenext_xx_small.in1k@{COMMIT[:12]}"
    assert m["model"]["num_classes"] == 1000 and m["model"]["labels"] == "imagenet"
    assert m["model"]["source_options"] == {"pretrained": True}
    # the weights are the published ones, not a fresh random init
    from edgekit.sources import load_source

    loaded = load_source(name, input_shape=(1, 3, 64, 64), options=edgekit.api.source_options_from(pretrained=True))
    from safetensors.torch import load_file

    saved = load_file(published / "model.safetensors")
    assert all(torch.equal(v, saved[k]) for k, v in loaded.model.state_dict().items() if k in saved)


def test_not_in_the_cache_and_offline(cli, tmp_path, hf_home):
    code, _, err = cli("export", "hf:nobody/nothing", "--out", tmp_path / "b")
    line = _one_line(err)
    assert code == 2
    assert f"hf:nobody/nothing is not in the Hugging Face cache {hf_home / 'hub'} and offline (HF_HUB_OFFLINE=1)" in line
    assert "hf download nobody/nothing" in line and not (tmp_path / "b").exists()


def test_hub_unreachable_falls_back_to_the_cache_or_says_so(cli, tmp_path, hf_home, monkeypatch):
    pytest.importorskip("transformers")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", CLOSED)
    code, _, err = cli("export", "hf:nobody/nothing", "--out", tmp_path / "b")
    assert code == 2 and "and the hub cannot be reached" in _one_line(err)
    put_in_hub_cache(hf_home / "hub", "edgekit-tests/tiny-segformer", segformer_dir(tmp_path / "seg"))
    code, out, err = cli("export", "hf:edgekit-tests/tiny-segformer", "--out", tmp_path / "b", "--calib-size", "1",
                         "--json")
    assert code == 0, err
    assert json.loads(out)["model"]["origin"]["weights"].startswith("hub edgekit-tests/tiny-segformer@")


def test_unknown_tag_lists_the_real_ones(cli, tmp_path, hf_home):
    code, _, err = cli("export", "timm:edgenext_xx_small.nope", "--pretrained", "--out", tmp_path / "b")
    assert code == 2 and "timm has no pretrained tag 'nope' for edgenext_xx_small; it has: in1k" in _one_line(err)


def test_pretrained_and_checkpoint_together_is_a_mistake(cli, tmp_path, hf_home):
    ckpt = tmp_path / "c.pt"
    torch.save({"w": torch.zeros(1)}, ckpt)
    code, _, err = cli("export", "timm:edgenext_xx_small", "--pretrained", "--checkpoint", ckpt, "--out", tmp_path / "b")
    assert code == 2 and "give --pretrained or --checkpoint, not both" in _one_line(err)
