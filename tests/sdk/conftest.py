"""Fixtures: a running egress-proxy with the API on an ephemeral loopback port.

The binary is $EGRESS_PROXY_BIN, else $CARGO_TARGET_DIR/debug/egress-proxy,
else target/debug/egress-proxy (build it first: `cargo build`).
"""

import hashlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOKENS = {"acct_1": "tok-acct-1", "acct_2": "tok-acct-2", "acct_3": "tok-acct-3"}


def binary() -> Path:
    if os.environ.get("EGRESS_PROXY_BIN"):
        return Path(os.environ["EGRESS_PROXY_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "debug" / "egress-proxy"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Proxy:
    """One egress-proxy process over a state directory that outlives it."""

    def __init__(self, workdir: Path, extra: str = ""):
        self.workdir = workdir
        self.admin_port = free_port()
        self.connect_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.admin_port}"
        tokens = "".join(
            f'[[api.tokens]]\naccount = "{a}"\ntoken_sha256 = "{sha256(t)}"\n\n'
            for a, t in TOKENS.items()
        )
        (workdir / "proxy.toml").write_text(
            f"""
unknown_source = "deny"

[listen]
connect = ["127.0.0.1:{self.connect_port}"]
admin = "127.0.0.1:{self.admin_port}"

[api]
state_dir = "state"

{tokens}
[[policies]]
id = "np_file"
name = "file-policy"
egress = {{ allowed_hostnames = ["example.com"] }}
{extra}
"""
        )
        self.proc = None
        self.log = None

    def start(self) -> "Proxy":
        self.log = open(self.workdir / "proxy.log", "ab")
        self.proc = subprocess.Popen(
            [str(binary()), "run", "--config", str(self.workdir / "proxy.toml")],
            cwd=self.workdir,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"proxy exited: {self.logs()}")
            try:
                with urllib.request.urlopen(self.base_url + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.05)
        self.kill()  # never leave a half-started proxy behind
        raise RuntimeError(f"proxy not ready (no API on {self.base_url}?): {self.logs()}")

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        if self.log:
            self.log.close()

    def logs(self) -> str:
        return (self.workdir / "proxy.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    if not binary().exists():
        pytest.fail(f"{binary()} missing: run `cargo build` first")
    p = Proxy(tmp_path_factory.mktemp("proxy")).start()
    yield p
    p.kill(signal.SIGTERM)


@pytest.fixture
def fresh_proxy(tmp_path):
    """A proxy of the test's own (for restarts and kills)."""
    if not binary().exists():
        pytest.fail(f"{binary()} missing: run `cargo build` first")
    p = Proxy(tmp_path).start()
    yield p
    p.kill(signal.SIGTERM)
