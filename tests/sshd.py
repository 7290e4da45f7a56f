"""A real OpenSSH server on 127.0.0.1 for the tests that reach a "device" over SSH (`edgekit profile
--remote`, `edgekit tune --remote`, sweeps): a temporary host key and an authorized key made here; the device
is this machine, reached as root with that key."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

SSHD = shutil.which("sshd") or next((p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if Path(p).exists()), None)

SSH_MARKS = [
    pytest.mark.skipif(SSHD is None, reason="sshd is not installed (Debian: apt-get install openssh-server)"),
    pytest.mark.skipif(shutil.which("ssh") is None or shutil.which("ssh-keygen") is None,
                       reason="the OpenSSH client (ssh, ssh-keygen) is not installed"),
    pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                       reason="the test sshd runs as root to log in as root with a temporary key"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sshd(tmp_path_factory):
    """An sshd on 127.0.0.1:<free port>; yields an ssh config file whose host alias 'device' reaches it
    (the ``ssh_host`` fixture of tests/conftest.py)."""
    d = tmp_path_factory.mktemp("sshd")
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True)
    shutil.copy(d / "client_key.pub", d / "authorized_keys")
    port = free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n"
        f"AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nLogLevel ERROR\n")
    (d / "ssh_config").write_text(
        f"Host device\n  HostName 127.0.0.1\n  Port {port}\n  User root\n  IdentityFile {d}/client_key\n"
        f"  IdentitiesOnly yes\n  UserKnownHostsFile {d}/known_hosts\n  StrictHostKeyChecking accept-new\n")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    server = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stdout=subprocess.DEVNULL,
                              stderr=open(d / "sshd.log", "w"))
    deadline = time.monotonic() + 20
    while True:
        ok = subprocess.run(["ssh", "-F", str(d / "ssh_config"), "-o", "BatchMode=yes", "device", "true"],
                            capture_output=True).returncode == 0
        if ok:
            break
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"test sshd did not come up: {(d / 'sshd.log').read_text()[-500:]}")
        time.sleep(0.2)
    yield d / "ssh_config"
    server.terminate()
    server.wait(timeout=10)


