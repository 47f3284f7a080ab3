"""The same scenario with Runloop's npm SDK (@runloop/api-client), when node
and npm are installed: `npm ci` in tests/sdk/npm (from its lock file), then
node drives the running proxy (tests/sdk/npm/scenario.mjs)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import TOKENS

NPM_DIR = Path(__file__).resolve().parent / "npm"


def test_the_npm_sdk(proxy):
    if shutil.which("node") is None or shutil.which("npm") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node and npm are required under CI=true (scripts/test.sh installs them)")
        pytest.skip("node and npm are not installed")
    if not (NPM_DIR / "node_modules" / "@runloop" / "api-client").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NPM_DIR, check=True, timeout=300)
    run = subprocess.run(
        ["node", "scenario.mjs", proxy.base_url, TOKENS["acct_1"], TOKENS["acct_2"]],
        cwd=NPM_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
