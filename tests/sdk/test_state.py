"""What the API writes is durable (kill -9 right after a 2xx loses nothing)
and in force for real connections as soon as it is answered."""

import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from runloop_api_client import Runloop

from conftest import TOKENS


def api(proxy, account="acct_1"):
    return httpx.Client(
        base_url=proxy.base_url, headers={"Authorization": f"Bearer {TOKENS[account]}"}, timeout=10
    )


def sdk(proxy, account="acct_1"):
    return Runloop(bearer_token=TOKENS[account], base_url=proxy.base_url)


def test_sigkill_right_after_a_2xx_loses_nothing(fresh_proxy):
    p = fresh_proxy
    made = []
    for round_ in range(3):
        c = sdk(p)
        made += [c.network_policies.create(name=f"durable-{round_}-{i}", allowed_hostnames=["github.com"]) for i in range(5)]
        with api(p) as h:
            r = h.post("/v1/devboxes", json={"id": f"dbx_d{round_}", "addresses": [f"10.77.0.{round_ + 1}"],
                                             "launch_parameters": {"network_policy_id": made[-1].id}})
            assert r.status_code == 200, r.text
        p.kill(signal.SIGKILL)  # straight after the last answer
        p.start()
        c = sdk(p)
        for policy in made:
            assert c.network_policies.retrieve(policy.id) == policy
        with api(p) as h:
            for r in range(round_ + 1):
                got = h.get(f"/v1/devboxes/dbx_d{r}")
                assert got.status_code == 200, got.text
            check = h.get("/v1/check", params={"source": f"10.77.0.{round_ + 1}", "host": "github.com"})
            assert check.json()["verdict"] == "allow", check.text


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        body = b"hello\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def upstream():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield server.server_address[1]
    server.shutdown()


def fetch(proxy, port):
    with httpx.Client(proxy=f"http://127.0.0.1:{proxy.connect_port}", timeout=5) as h:
        return h.get(f"http://127.0.0.1:{port}/").status_code


def test_an_api_change_decides_the_next_connection(fresh_proxy, upstream):
    p = fresh_proxy
    c = sdk(p)
    assert fetch(p, upstream) == 403, "unknown source: denied"
    policy = c.network_policies.create(name="loop", allowed_hostnames=["example.com"])
    with api(p) as h:
        r = h.post("/v1/devboxes", json={"id": "dbx_local", "addresses": ["127.0.0.1"],
                                         "launch_parameters": {"network_policy_id": policy.id}})
        assert r.status_code == 200, r.text
    assert fetch(p, upstream) == 403, "the policy allows no such destination"
    c.network_policies.update(policy.id, allowed_cidrs=[{"cidr": "127.0.0.1/32", "ports": [{"port": upstream}]}])
    answered = time.monotonic()
    deadline = answered + 1.0
    status = fetch(p, upstream)
    while status != 200 and time.monotonic() < deadline:
        time.sleep(0.02)
        status = fetch(p, upstream)
    assert status == 200, "the update is in force within a second"
    c.network_policies.update(policy.id, allowed_cidrs=[])
    assert fetch(p, upstream) == 403
    with api(p) as h:
        assert h.post("/v1/devboxes/dbx_local/delete").status_code == 200
    assert fetch(p, upstream) == 403
