"""Runloop's official Python SDK (runloop-api-client 3.x) against egress-proxy.

Every client validates answers strictly against the SDK's own models.
"""

import asyncio
import time
import uuid

import pytest
from runloop_api_client import (
    AsyncRunloop,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    Runloop,
)

from conftest import TOKENS

EGRESS_FIELDS = {
    "allow_all",
    "allowed_hostnames",
    "allowed_cidrs",
    "allow_devbox_to_devbox",
    "allow_agent_gateway",
    "allow_mcp_gateway",
    "allow_runloop_mirrors",
}


def client(proxy, account="acct_1", **kw):
    return Runloop(
        bearer_token=TOKENS[account],
        base_url=proxy.base_url,
        _strict_response_validation=True,
        **kw,
    )


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_create_and_retrieve_carry_every_field(proxy):
    c = client(proxy)
    p = c.network_policies.create(
        name=unique("agents"),
        description="for agents",
        allowed_hostnames=["github.com", "*.npmjs.org"],
        allowed_cidrs=[
            {"cidr": "10.12.0.0/16", "ports": [{"port": 443}, {"port": 8000, "end_port": 8100, "protocol": "TCP"}]}
        ],
        allow_mcp_gateway=True,
        allow_all=None,
    )
    assert p.id.startswith("np_")
    assert p.create_time_ms == p.update_time_ms > 0
    assert set(p.egress.model_dump().keys()) == EGRESS_FIELDS
    assert p.egress.allow_mcp_gateway and not p.egress.allow_all
    assert p.egress.allowed_cidrs[0].ports[1].end_port == 8100
    got = c.network_policies.retrieve(p.id)
    assert got == p
    raw = c.network_policies.with_raw_response.retrieve(p.id)
    assert raw.http_request.url.path == f"/v1/network-policies/{p.id}"


def test_list_pages_and_every_filter(proxy):
    c = client(proxy)
    stem = unique("page")
    made = [c.network_policies.create(name=f"{stem}-{i}-{'prod' if i % 2 else 'dev'}") for i in range(7)]
    first = c.network_policies.list(limit=3, name=stem)
    assert len(first.network_policies) == 3
    assert first.has_more is True and first.total_count == 7
    walked = [p.id for p in first]  # the SDK follows starting_after
    assert walked == sorted((p.id for p in made), reverse=True), "stable order, newest first"
    second = first.get_next_page()
    assert [p.id for p in second.network_policies] == walked[3:6]
    last = c.network_policies.list(limit=3, name=stem, starting_after=walked[5])
    assert [p.id for p in last.network_policies] == walked[6:] and last.has_more is False
    assert c.network_policies.list(name=stem.upper() + "-1").total_count == 1
    assert c.network_policies.list(id=made[2].id).network_policies[0].name == made[2].name
    assert c.network_policies.list(search=f"{stem}-3").network_policies[0].id == made[3].id
    assert c.network_policies.list(search=made[4].id).network_policies[0].id == made[4].id
    prod = c.network_policies.list(name=stem, search="prod", limit=5000)
    assert len(prod.network_policies) == 3
    assert c.network_policies.list(name=stem, include_total_count=False).total_count is None
    assert c.network_policies.list(name=stem, include_total_count=True).total_count == 7


def test_update_keeps_absent_and_null_fields(proxy):
    c = client(proxy)
    p = c.network_policies.create(
        name=unique("upd"), description="keep me", allowed_hostnames=["a.com", "b.com"], allow_agent_gateway=True
    )
    u = c.network_policies.update(p.id, description=None, allow_agent_gateway=None, allowed_hostnames=["c.com"])
    assert u.description == "keep me" and u.egress.allow_agent_gateway
    assert u.egress.allowed_hostnames == ["c.com"]
    assert u.update_time_ms > p.update_time_ms and u.create_time_ms == p.create_time_ms
    renamed = c.network_policies.update(p.id, name=p.name + "-2")
    assert renamed.name == p.name + "-2" and renamed.egress == u.egress
    cleared = c.network_policies.update(p.id, allowed_hostnames=[], allowed_cidrs=[{"cidr": "10.0.0.0/8"}])
    assert cleared.egress.allowed_hostnames == [] and cleared.egress.allowed_cidrs[0].cidr == "10.0.0.0/8"


def test_duplicate_name_is_409_without_retries(proxy):
    c = client(proxy)
    name = unique("dup")
    c.network_policies.create(name=name)
    start = time.monotonic()
    with pytest.raises(ConflictError) as e:
        c.network_policies.create(name=name)
    assert time.monotonic() - start < 1.0, "the SDK must not retry"
    assert e.value.response.headers["x-should-retry"] == "false"
    assert name in e.value.body["message"]
    client(proxy, "acct_2").network_policies.create(name=name)  # per account
    with pytest.raises(ConflictError):
        c.network_policies.create(name="file-policy")


@pytest.mark.parametrize(
    "kwargs,path,value",
    [
        ({"allowed_hostnames": ["ok.com", "*"]}, "allowed_hostnames[1]", "*"),
        ({"allowed_hostnames": ["a.*.com"]}, "allowed_hostnames[0]", "a.*.com"),
        ({"allowed_hostnames": ["10.0.0.1"]}, "allowed_hostnames[0]", "10.0.0.1"),
        ({"allowed_cidrs": [{"cidr": "10.0.0.1/8"}]}, "allowed_cidrs[0].cidr", "10.0.0.1/8"),
        ({"allowed_cidrs": [{"cidr": "nope"}]}, "allowed_cidrs[0].cidr", "nope"),
        ({"allowed_cidrs": [{"cidr": "10.0.0.0/8", "ports": [{"port": 0}]}]}, "allowed_cidrs[0].ports[0].port", "0"),
        (
            {"allowed_cidrs": [{"cidr": "10.0.0.0/8", "ports": [{"port": 90, "end_port": 80}]}]},
            "allowed_cidrs[0].ports[0].end_port",
            "80",
        ),
    ],
)
def test_bad_patterns_and_cidrs_are_400(proxy, kwargs, path, value):
    c = client(proxy)
    start = time.monotonic()
    with pytest.raises(BadRequestError) as e:
        c.network_policies.create(name=unique("bad"), **kwargs)
    assert time.monotonic() - start < 1.0
    assert path in e.value.body["message"] and value in e.value.body["message"]
    assert e.value.body["issues"][0]["path"] == path


def test_unknown_token_is_401(proxy):
    bad = Runloop(bearer_token="not-a-token", base_url=proxy.base_url)
    with pytest.raises(AuthenticationError) as e:
        bad.network_policies.list()
    assert e.value.status_code == 401 and e.value.body["message"]


def test_another_accounts_policy_is_404(proxy):
    mine = client(proxy).network_policies.create(name=unique("mine"))
    other = client(proxy, "acct_2")
    with pytest.raises(NotFoundError):
        other.network_policies.retrieve(mine.id)
    with pytest.raises(NotFoundError):
        other.network_policies.update(mine.id, name="stolen")
    with pytest.raises(NotFoundError):
        other.network_policies.delete(mine.id)
    assert mine.id not in [p.id for p in other.network_policies.list(limit=5000)]


def test_the_per_account_limit(proxy):
    c = client(proxy, "acct_3")
    made = [c.network_policies.create(name=f"limit-{i}") for i in range(100)]
    with pytest.raises(ConflictError) as e:
        c.network_policies.create(name="limit-100")
    assert "limit" in e.value.body["message"]
    c.network_policies.delete(made[0].id)
    c.network_policies.create(name="limit-100")
    for p in c.network_policies.list(limit=5000):
        if p.id != "np_file":
            c.network_policies.delete(p.id)


def test_delete_answers_the_policy(proxy):
    c = client(proxy)
    p = c.network_policies.create(name=unique("gone"), allowed_hostnames=["x.com"])
    assert c.network_policies.delete(p.id) == p
    with pytest.raises(NotFoundError):
        c.network_policies.retrieve(p.id)
    with pytest.raises(NotFoundError):
        c.network_policies.delete(p.id)


def test_config_policies_are_read_only(proxy):
    c = client(proxy, "acct_2")
    f = c.network_policies.retrieve("np_file")
    assert f.name == "file-policy" and f.egress.allowed_hostnames == ["example.com"]
    with pytest.raises(ConflictError):
        c.network_policies.update("np_file", name="mine-now")
    with pytest.raises(ConflictError):
        c.network_policies.delete("np_file")


def test_the_async_client(proxy):
    async def scenario():
        c = AsyncRunloop(bearer_token=TOKENS["acct_2"], base_url=proxy.base_url, _strict_response_validation=True)
        stem = unique("async")
        made = [await c.network_policies.create(name=f"{stem}-{i}", allowed_hostnames=["github.com"]) for i in range(3)]
        seen = [p.id async for p in c.network_policies.list(limit=2, name=stem)]
        assert seen == sorted((p.id for p in made), reverse=True)
        u = await c.network_policies.update(made[0].id, allow_runloop_mirrors=True, description=None)
        assert u.egress.allow_runloop_mirrors and u.egress.allowed_hostnames == ["github.com"]
        assert (await c.network_policies.retrieve(made[0].id)) == u
        with pytest.raises(ConflictError):
            await c.network_policies.create(name=f"{stem}-1")
        for p in made:
            await c.network_policies.delete(p.id)
        assert (await c.network_policies.list(name=stem)).total_count == 0

    asyncio.run(scenario())
