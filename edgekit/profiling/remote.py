"""Profiling on a device over SSH: copy the bundle, the pinned inputs and edgekit's engines folder (the
measurement loop, :mod:`edgekit.engines.measure`) there, run it with the device's own Python, bring the JSON back, remove what was copied.

Only the OpenSSH client is needed here (``ssh``; the user's ~/.ssh/config applies), and only
python3, numpy and the bundle's runtime on the device. Every command runs with BatchMode, so a
missing key fails at once instead of waiting for a password.
"""
from __future__ import annotations

import json
import shlex
import subprocess
import tarfile
import tempfile
import threading
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitFailure, UsageError
from edgekit.manifest import Manifest, as_manifest
from edgekit.profiling.config import Remote

ENGINES = Path(__file__).resolve().parent.parent / "engines"  # imports nothing from edgekit: it runs as `engines`

_PROBE = """
import json, sys
out = {"python": sys.version.split()[0], "numpy": None, "runtime": None}
try:
    import numpy
    out["numpy"] = numpy.__version__
except Exception as e:
    out["numpy_error"] = str(e).splitlines()[0] if str(e) else e.__class__.__name__
name = sys.argv[1]
try:
    if name == "openvino":
        import openvino
        out["runtime"] = openvino.get_version().split("-")[0]
    else:
        out["runtime"] = getattr(__import__(name), "__version__", "?")
except Exception as e:
    out["runtime_error"] = str(e).splitlines()[0] if str(e) else e.__class__.__name__
print(json.dumps(out))
"""

_UNPACK = """
import sys, tarfile, tempfile
d = tempfile.mkdtemp(prefix="edgekit-profile-")
with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as t:
    t.extractall(d, filter="data") if hasattr(tarfile, "data_filter") else t.extractall(d)
print(d)
"""

_REMOVE = "import shutil, sys; shutil.rmtree(sys.argv[1], ignore_errors=True)"


def ssh_command(remote: Remote, command: str) -> list[str]:
    cmd = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15"]
    if remote.ssh_config:
        cmd += ["-F", str(remote.ssh_config)]
    if remote.port:
        cmd += ["-p", str(remote.port)]
    return cmd + [remote.destination, command]


def _python(remote: Remote, code: str, *args: str) -> str:
    return " ".join(shlex.quote(a) for a in (remote.python, "-c", code, *args))


def _check(remote: Remote, proc, what: str) -> None:
    err = (proc.stderr.decode() if isinstance(proc.stderr, bytes) else proc.stderr or "").strip()
    last = err.splitlines()[-1] if err else f"exit status {proc.returncode}"
    if proc.returncode == 255:
        raise EdgekitFailure(f"cannot reach {remote} over SSH: {last}; check the address, that sshd runs there and "
                             f"that `ssh {remote.destination}` logs in without a password")
    if proc.returncode == 127:
        raise EdgekitFailure(f"{remote} has no {remote.python} ({last}); install Python 3 there or pass "
                             f"--remote-python PATH")
    if proc.returncode != 0:
        raise EdgekitFailure(f"{what} on {remote} failed: {last}")


def probe(remote: Remote, manifest: Manifest) -> dict:
    """Python, numpy and the bundle's runtime on the device; one clear error for what is missing."""
    manifest = as_manifest(manifest)
    import shutil

    if shutil.which("ssh") is None:
        raise UsageError("--remote needs the OpenSSH client (ssh) on this machine: apt-get install openssh-client")
    name = manifest.runtime.name
    proc = subprocess.run(ssh_command(remote, _python(remote, _PROBE, name)), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    _check(remote, proc, "probing Python")
    try:
        found = json.loads(proc.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise EdgekitFailure(f"{remote} answered the probe with {proc.stdout.strip()[:200]!r}; "
                             f"is {remote.python} Python 3?") from None
    if found.get("numpy") is None:
        raise EdgekitFailure(f"{remote} lacks numpy ({found.get('numpy_error')}); the device runner needs it: "
                             f"{remote.python} -m pip install numpy on the device")
    if found.get("runtime") is None:
        raise EdgekitFailure(f"{remote} lacks {name}, the runtime of this {manifest.target} bundle "
                             f"({found.get('runtime_error')}); install it on the device "
                             f"({remote.python} -m pip install {name}, or JetPack for tensorrt)")
    built = manifest.runtime.version
    if built and _major_minor(found["runtime"]) < _major_minor(built):
        raise EdgekitFailure(f"the bundle was built with {name} {built} but {remote} has {found['runtime']}; "
                             f"upgrade {name} on the device to >= {'.'.join(map(str, _major_minor(built)))}")
    return found


def _major_minor(version: str) -> tuple[int, ...]:
    parts = []
    for p in version.split("+")[0].split(".")[:2]:
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def upload(remote: Remote, bundle: Path, manifest: Manifest, images: np.ndarray) -> str:
    """Copy bundle files, inputs and the engines package into a fresh temporary directory on the device."""
    manifest = as_manifest(manifest)
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "inputs.npy", images.astype(np.float32))
        archive = Path(tmp) / "upload.tar"
        with tarfile.open(archive, "w") as tar:
            for source in sorted(ENGINES.glob("*.py")):
                tar.add(source, f"engines/{source.name}")
            tar.add(Path(tmp) / "inputs.npy", "inputs.npy")
            tar.add(bundle / "manifest.json", "bundle/manifest.json")
            for f in manifest.file_paths:
                tar.add(bundle / f, f"bundle/{f}")
        with open(archive, "rb") as stream:
            proc = subprocess.run(ssh_command(remote, _python(remote, _UNPACK)), stdin=stream, capture_output=True)
    _check(remote, proc, "copying the bundle")
    return proc.stdout.decode().strip().splitlines()[-1]


def run(remote: Remote, remote_dir: str, settings: dict, progress=None) -> dict:
    """Run the device runner there; progress lines it writes on stderr drive ``progress``."""
    d = remote_dir.rstrip("/")
    command = f"cd {shlex.quote(d)} && " + " ".join(shlex.quote(a) for a in (
        remote.python, "-m", "engines", "bundle", "--inputs", "inputs.npy", "--settings", json.dumps(settings)))
    proc = subprocess.Popen(ssh_command(remote, command), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    other: list[str] = []

    def pump():
        for line in proc.stderr:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                other.append(line.rstrip())
                continue
            if progress and isinstance(event, dict) and "progress" in event:
                progress(event["progress"], event["done"], event["total"])

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    stdout = proc.stdout.read()
    proc.wait()
    reader.join()
    result = None
    if stdout.strip():
        try:
            result = json.loads(stdout.strip().splitlines()[-1])
        except json.JSONDecodeError:
            pass
    if result and result.get("error"):
        raise EdgekitFailure(f"profiling on {remote} failed: {result['error']}")
    if proc.returncode != 0 or result is None:
        proc.stderr = "\n".join(other)
        _check(remote, proc, "the device runner")
        raise EdgekitFailure(f"the device runner on {remote} printed no result: {' '.join(other[-3:])[:300]}")
    return result


def remove(remote: Remote, remote_dir: str) -> None:
    subprocess.run(ssh_command(remote, _python(remote, _REMOVE, remote_dir)), capture_output=True,
                   stdin=subprocess.DEVNULL)


def profile_remote(remote: Remote, bundle: Path, manifest: Manifest, images: np.ndarray, settings: dict,
                   progress=None) -> dict:
    """probe -> upload -> run -> remove. Returns the runner's JSON (environment, runtime, runs)."""
    probe(remote, manifest)
    remote_dir = upload(remote, bundle, manifest, images)
    try:
        return run(remote, remote_dir, settings, progress)
    finally:
        remove(remote, remote_dir)
