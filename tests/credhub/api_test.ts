/**
 * `sigil credhub` over real TLS: broker writes and grants, app instances read
 * by their instance certificate (CredHub PermissionsV2Controller,
 * DefaultInterpolationHandler).
 * @module
 */
import assert from "node:assert/strict";
import { request } from "node:https";
import { createTestPki } from "../_helpers/pki.ts";
import { startTestCredhub } from "../_helpers/credhub.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

function call(
  url: string,
  method: string,
  path: string,
  o: {
    token?: string;
    cert?: string;
    key?: string;
    ca: string;
    body?: unknown;
  },
): Promise<{ status: number; body: Json }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = request({
      hostname: u.hostname,
      port: u.port,
      path,
      method,
      ca: o.ca,
      cert: o.cert,
      key: o.key,
      servername: "localhost",
      agent: false,
      headers: {
        ...(o.token ? { authorization: `bearer ${o.token}` } : {}),
        "content-type": "application/json",
      },
    }, (res) => {
      let t = "";
      res.on("data", (c) => (t += c));
      res.on(
        "end",
        () =>
          resolve({ status: res.statusCode!, body: t ? JSON.parse(t) : null }),
      );
    });
    req.on("error", reject);
    req.end(o.body === undefined ? undefined : JSON.stringify(o.body));
  });
}

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
    const rot = ch.store.rotateKey();
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
