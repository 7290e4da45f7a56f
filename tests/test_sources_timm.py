"""timm loads without torchvision, and the stand-in never leaks to other libraries."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm is not installed")


def test_timm_imports_and_stub_is_scoped():
    code = (
        "import importlib.util, sys\n"
        "from edgekit.timm_compat import import_timm, torchvision_available\n"
        "assert not torchvision_available()\n"
        "timm = import_timm()\n"
        "m = timm.create_model('efficientvit_b0', pretrained=False)\n"
        "assert 'torchvision' not in sys.modules, 'stand-in leaked into sys.modules'\n"
        "assert importlib.util.find_spec('torchvision') is None, 'stand-in still findable'\n"
        "try:\n    import torchvision\nexcept ImportError:\n    print('ok')\n"
    )
    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed here; the stand-in is not used")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")


def test_models_cli_lists_zoo(cli, tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "160")
    code, out, _ = cli("models", "--json", "--task", "classification", "--family", "efficientvit")
    assert code == 0
    rows = json.loads(out)
    names = {r["name"] for r in rows}
    assert "efficientvit_b0" in names and all(r["task"] == "classification" for r in rows)
    assert all(r["family"] == "efficientvit" for r in rows) and len(rows) >= 4  # B0-B3, not the seg models
    b0 = next(r for r in rows if r["name"] == "efficientvit_b0")
    assert 3.0 < b0["params_m"] < 3.6 and 0.05 < b0["gmacs"] < 0.2  # EfficientViT-B0: 3.4M params, ~0.1 GMACs at 224
    assert len(list((tmp_path / "model_cost").glob("*.json"))) == len(rows)  # costs cached for the next listing
    code, out, _ = cli("models", "--task", "classification", "--family", "efficientvit")
    assert code == 0 and "efficientvit_b0" in out and "GMACs" in out
    code, _, err = cli("models", "--family", "vgg")
    assert code == 2 and "no zoo family 'vgg'; choose from" in err
