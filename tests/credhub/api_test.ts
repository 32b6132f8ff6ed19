/**
 * `sigil credhub` over real TLS: broker writes and grants, app instances read
 * by their instance certificate (CredHub PermissionsV2Controller,
 * DefaultInterpolationHandler).
 * @module
 */
import assert from "node:assert/strict";
import { createTestPki } from "../_helpers/pki.ts";
import { credhubCall, startTestCredhub } from "../_helpers/credhub.ts";

const call = credhubCall;

Deno.test("credhub: broker sets and grants; app A reads (200), app B gets 404, unscoped token 403", async () => {
  const t = await startTestCredhub();
  const { pki, ch } = t;
  try {
    const token = t.token;
    const broker = await token("credhub.write credhub.read");
    const appA = crypto.randomUUID(), appB = crypto.randomUUID();
    const name = `/c/broker/svc/${crypto.randomUUID()}/creds`;
    const set = await call(ch.url, "PUT", "/api/v1/data", {
      token: broker,
      ca: pki.rootPem,
      body: { name, type: "json", value: { pw: "s3cret" } },
    });
    assert.equal(set.status, 200);
    assert.deepEqual(Object.keys(set.body), [
      "type",
      "version_created_at",
      "id",
      "name",
      "metadata",
      "value",
    ]);
    assert.match(
      set.body.version_created_at,
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
    );
    const grant = await call(ch.url, "POST", "/api/v2/permissions", {
      token: broker,
      ca: pki.rootPem,
      body: { actor: `mtls-app:${appA}`, path: name, operations: ["read"] },
    });
    assert.equal(grant.status, 201);
    const a = await pki.issueInstance({
      instanceId: crypto.randomUUID(),
      app: appA,
    });
    const b = await pki.issueInstance({
      instanceId: crypto.randomUUID(),
      app: appB,
    });
    const vcap = {
      svc: [{ name: "db", credentials: { "credhub-ref": `((${name}))` } }],
    };
    const ra = await call(ch.url, "POST", "/api/v1/interpolate", {
      cert: a.certPem,
      key: a.keyPem,
      ca: pki.rootPem,
      body: vcap,
    });
    assert.equal(ra.status, 200);
    assert.deepEqual(ra.body.svc[0].credentials, { pw: "s3cret" });
    const rb = await call(ch.url, "GET", `/api/v1/data?name=${name}`, {
      cert: b.certPem,
      key: b.keyPem,
      ca: pki.rootPem,
    });
    assert.equal(rb.status, 404);
    assert.match(
      rb.body.error,
      /does not exist or you do not have sufficient authorization/,
    );
    const other = await createTestPki();
    const foreign = await other.issueInstance({
      instanceId: crypto.randomUUID(),
      app: appA,
    });
    const rf = await call(ch.url, "GET", `/api/v1/data?name=${name}`, {
      cert: foreign.certPem,
      key: foreign.keyPem,
      ca: pki.rootPem,
    });
    assert.equal(rf.status, 401);
    const weak = await token("openid");
    const rw = await call(ch.url, "GET", `/api/v1/data?name=${name}`, {
      token: weak,
      ca: pki.rootPem,
    });
    assert.equal(rw.status, 403);
    const rot = await ch.store.rotateKey();
    assert.equal(rot.rows, 1);
    const again = await call(ch.url, "POST", "/api/v1/interpolate", {
      cert: a.certPem,
      key: a.keyPem,
      ca: pki.rootPem,
      body: vcap,
    });
    assert.equal(again.status, 200);
  } finally {
    await t.close();
  }
});

Deno.test("credhub: an expired instance certificate and one on the deny list are refused (handshake or 401), a valid one reads", async () => {
  const app = crypto.randomUUID();
  const t = await startTestCredhub({ revokedSerials: [] });
  try {
    const broker = await t.token("credhub.write credhub.read");
    const name = `/c/broker/svc/${crypto.randomUUID()}/creds`;
    const ca = t.pki.rootPem;
    const set = await call(t.ch.url, "PUT", "/api/v1/data", {
      token: broker,
      ca,
      body: { name, type: "value", value: "v" },
    });
    assert.equal(set.status, 200);
    const grant = await call(t.ch.url, "POST", "/api/v2/permissions", {
      token: broker,
      ca,
      body: { actor: `mtls-app:${app}`, path: name, operations: ["read"] },
    });
    assert.equal(grant.status, 201);
    const get = (c: { certPem: string; keyPem: string }) =>
      call(t.ch.url, "GET", `/api/v1/data?name=${name}`, {
        cert: c.certPem,
        key: c.keyPem,
        ca,
      }).then((r) => r.status, () => "refused in the handshake");
    const valid = await t.pki.issueInstance({
      instanceId: crypto.randomUUID(),
      app,
    });
    assert.equal(await get(valid), 200);
    const expired = await t.pki.issueInstance(
      { instanceId: crypto.randomUUID(), app },
      { now: Date.now() - 2 * 3_600_000, validityMs: 3_600_000 },
    );
    assert.notEqual(await get(expired), 200);
    assert.ok([401, "refused in the handshake"].includes(await get(expired)));
    // Same app and CA as `valid`; then its serial goes on the deny list, in
    // openssl's notation (upper case, colons).
    const onList = await t.pki.issueInstance({
      instanceId: crypto.randomUUID(),
      app,
    });
    assert.equal(await get(onList), 200);
    const hex = onList.serial.length % 2 ? `0${onList.serial}` : onList.serial;
    const colons = hex.toUpperCase().match(/../g)!.join(":");
    await Deno.writeTextFile(`${t.dir}/revoked.txt`, `${colons}\n`);
    // The list is re-read at most every 5 s.
    let status: number | string = 200;
    for (let i = 0; i < 40 && status === 200; i++) {
      await new Promise((r) => setTimeout(r, 250));
      status = await get(onList);
    }
    assert.equal(status, 401);
    assert.equal(await get(valid), 200, "other instances keep reading");
  } finally {
    await t.close();
  }
});
