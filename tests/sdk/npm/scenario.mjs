// Runloop's official npm SDK (@runloop/api-client) against a running
// egress-proxy: node scenario.mjs BASE_URL TOKEN OTHER_ACCOUNT_TOKEN
// Exits 0 when every step behaves; prints the failing step otherwise.
import assert from 'node:assert/strict';
import Runloop from '@runloop/api-client';

const [baseURL, token, otherToken] = process.argv.slice(2);
const c = new Runloop({ bearerToken: token, baseURL });
const other = new Runloop({ bearerToken: otherToken, baseURL });
const stem = `npm-${Date.now().toString(36)}`;
const egressFields = [
  'allow_agent_gateway', 'allow_all', 'allow_devbox_to_devbox', 'allow_mcp_gateway',
  'allow_runloop_mirrors', 'allowed_cidrs', 'allowed_hostnames',
];

async function rejects(promise, status) {
  const started = Date.now();
  try {
    await promise;
  } catch (e) {
    assert.equal(e.status, status, String(e));
    assert.ok(e.error?.message, 'a non-empty message');
    assert.ok(Date.now() - started < 1000, 'no retries');
    return e;
  }
  assert.fail(`expected ${status}`);
}

const p = await c.networkPolicies.create({
  name: `${stem}-a`,
  description: 'from npm',
  allowed_hostnames: ['github.com', '*.npmjs.org'],
  allowed_cidrs: [{ cidr: '10.12.0.0/16', ports: [{ port: 443, protocol: 'TCP' }] }],
  allow_all: null,
});
assert.match(p.id, /^np_/);
assert.deepEqual(Object.keys(p.egress).sort(), egressFields);
assert.deepEqual(await c.networkPolicies.retrieve(p.id), p);

const made = [p];
for (let i = 0; i < 4; i++) made.push(await c.networkPolicies.create({ name: `${stem}-${i}` }));
const seen = [];
for await (const item of c.networkPolicies.list({ limit: 2, name: stem })) seen.push(item.id);
assert.deepEqual(seen, made.map((m) => m.id).sort().reverse(), 'every page, newest first');
const page = await c.networkPolicies.list({ limit: 2, name: stem });
assert.equal(page.has_more, true);
assert.equal(page.total_count, 5);
assert.equal((await c.networkPolicies.list({ search: p.id })).network_policies[0].id, p.id);
// (the npm page defaults an absent total_count to 0)
const byId = await c.networkPolicies.list({ id: p.id, include_total_count: false });
assert.deepEqual(byId.network_policies.map((x) => x.id), [p.id]);

const u = await c.networkPolicies.update(p.id, { description: null, allowed_hostnames: ['gitlab.com'] });
assert.equal(u.description, 'from npm');
assert.deepEqual(u.egress.allowed_hostnames, ['gitlab.com']);
assert.deepEqual(u.egress.allowed_cidrs, p.egress.allowed_cidrs);
assert.ok(u.update_time_ms > p.update_time_ms);

await rejects(c.networkPolicies.create({ name: `${stem}-a` }), 409);
const bad = await rejects(c.networkPolicies.create({ name: `${stem}-bad`, allowed_hostnames: ['a.*.com'] }), 400);
assert.match(bad.error.message, /allowed_hostnames\[0\]/);
await rejects(c.networkPolicies.create({ name: `${stem}-cidr`, allowed_cidrs: [{ cidr: '10.0.0.1/8' }] }), 400);
await rejects(new Runloop({ bearerToken: 'nope', baseURL }).networkPolicies.list(), 401);
await rejects(other.networkPolicies.retrieve(p.id), 404);
await rejects(c.networkPolicies.update('np_file', { name: 'x' }), 409);

for (const m of made) assert.equal((await c.networkPolicies.delete(m.id)).id, m.id);
await rejects(c.networkPolicies.retrieve(p.id), 404);
console.log('npm sdk scenario: ok');
