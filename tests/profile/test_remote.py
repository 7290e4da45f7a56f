"""`edgekit profile --remote` against a real OpenSSH server started on 127.0.0.1 by the test, with a
temporary host key and an authorized key made here. The "device" is this machine reached over SSH,
running the copied one-file runner with a Python that has numpy and the runtime."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

import edgekit
from edgekit.errors import EdgekitFailure
from tests.profile.conftest import FAST
from tests.sshd import SSH_MARKS, free_port

pytestmark = SSH_MARKS


def _stub_python(tmp_path: Path, missing: str) -> Path:
    """A Python launcher for which ``missing`` cannot be imported: the device that lacks it."""
    stub = tmp_path / "stub" / missing
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text(f"raise ImportError('No module named {missing!r}')\n")
    launcher = tmp_path / "python-without-" / missing
    launcher.parent.mkdir(parents=True, exist_ok=True)
    launcher.write_text(f"#!/bin/sh\nPYTHONPATH={tmp_path / 'stub'} exec {sys.executable} \"$@\"\n")
    launcher.chmod(0o755)
    return launcher


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_remote_profile_over_ssh(ssh_host, bundles, target):
    report = edgekit.profile(bundles[target], remote="device", ssh_config=ssh_host, remote_python=sys.executable,
                             **FAST)
    data = report.data
    assert data["where"]["remote"] == "device"
    assert data["where"]["environment"]["cpu"]["cores"] >= 1
    (run,) = data["results"][0]["runs"]
    assert run["latency_ms"]["count"] == FAST["iterations"] and run["latency_ms"]["median"] > 0
    assert run["cold_start"]["load_ms"] > 0 and run["memory"]["peak_rss_mb"] > 10
    # per-layer data from the device's runtime, mapped to modules here with the bundle's names
    blocks = {g["name"] for g in run["layers"]["by_block"]}
    assert "backbone.attn" in blocks, blocks
    assert data["results"][0]["bundle"]["runtime"]["name"] == {"onnx": "onnxruntime", "openvino": "openvino"}[target]


def test_remote_copies_are_removed(ssh_host, bundles, monkeypatch):
    """The folder the bundle, inputs and engines were copied into on the device is gone after the run (the
    device here is this machine over SSH, so the folder's path can be checked directly)."""
    from edgekit.profiling import remote

    uploaded = []

    def upload(*args, **kwargs):
        uploaded.append(Path(real_upload(*args, **kwargs)))
        assert (uploaded[-1] / "engines" / "measure.py").is_file() and (uploaded[-1] / "bundle").is_dir()
        return str(uploaded[-1])

    real_upload = remote.upload
    monkeypatch.setattr(remote, "upload", upload)
    edgekit.profile(bundles["onnx"], remote="device", ssh_config=ssh_host, remote_python=sys.executable,
                    **dict(FAST, layer_iters=0))
    assert len(uploaded) == 1 and uploaded[0].name.startswith("edgekit-profile-") and not uploaded[0].exists()


def test_remote_cli_with_progress_lines(cli, ssh_host, bundles):
    code, out, err = cli("profile", bundles["onnx"], "--remote", "device", "--ssh-config", ssh_host,
                         "--remote-python", sys.executable, "--warmup", "1", "-n", "5", "--layer-iters", "2")
    assert code == 0, err
    assert "latency on device" in out


def test_unreachable_device_is_one_clear_error(ssh_host, bundles):
    with pytest.raises(EdgekitFailure, match=r"cannot reach root@127.0.0.1:\d+ over SSH: .*(refused|closed)"):
        edgekit.profile(bundles["onnx"], remote=f"root@127.0.0.1:{free_port()}", ssh_config=ssh_host, **FAST)


@pytest.mark.parametrize("missing, message", [("onnxruntime", "lacks onnxruntime, the runtime of this onnx bundle"),
                                              ("numpy", "lacks numpy")])
def test_device_without_runtime_is_one_clear_error(ssh_host, bundles, tmp_path, missing, message):
    python = _stub_python(tmp_path, missing)
    with pytest.raises(EdgekitFailure, match=message):
        edgekit.profile(bundles["onnx"], remote="device", ssh_config=ssh_host, remote_python=str(python), **FAST)


def test_device_without_python_is_one_clear_error(ssh_host, bundles):
    with pytest.raises(EdgekitFailure, match="has no /nonexistent/python3.*--remote-python"):
        edgekit.profile(bundles["onnx"], remote="device", ssh_config=ssh_host, remote_python="/nonexistent/python3",
                        **FAST)
