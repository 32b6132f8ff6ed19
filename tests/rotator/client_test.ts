import assert from "node:assert/strict";
import { freePort } from "../_helpers/ports.ts";
import { join } from "node:path";
import { createCsr, generateKeyPair } from "../../lib/pki/mod.ts";
import {
  CaEndpoints,
  CaRequestError,
  createCaSigner,
  RotatorError,
} from "../../lib/rotator/mod.ts";
import { createTestCa, serveTestCa } from "./_ca.ts";
import { serveMetrics } from "../../lib/rotator/_metrics.ts";
import { createLogger, MetricsRegistry } from "../../lib/observe/mod.ts";

const ID = {
  instanceId: "i-1",
  app: "app-1",
  space: "space-1",
  org: "org-1",
  ips: ["10.0.0.5"],
};

async function setup() {
  const ca = await createTestCa({ validityMs: 3_600_000 });
  const server = await serveTestCa(ca);
  const base = await Deno.makeTempDir({ prefix: "sigil-client-" });
  const tokenFile = join(base, "token");
  await Deno.writeTextFile(tokenFile, server.token + "\n", { mode: 0o600 });
  const csr = await createCsr(await generateKeyPair(), ID);
  return {
    ca,
    server,
    tokenFile,
    csr,
    async cleanup() {
      await server.close();
      await Deno.remove(base, { recursive: true });
    },
  };
}

Deno.test("createCaSigner() signs over HTTPS trusting only the CA bundle", async () => {
  const t = await setup();
  const signer = createCaSigner({
    caUrl: t.server.url,
    caBundlePem: t.ca.rootPem,
    tokenFile: t.tokenFile,
  });
  try {
    const r = await signer.sign({ csr: t.csr, ...ID, validity: "2h" });
    assert.match(r.certificatePem, /BEGIN CERTIFICATE/);
    assert.equal(r.chainPem, t.ca.intermediatePem);
    assert.equal(r.serial.length, 32);
    assert.ok(r.notAfter.getTime() > Date.now() + 3_500_000);
    assert.equal(t.ca.requests[0]!.validity, "2h");
  } finally {
    signer.close();
    await t.cleanup();
  }
});

Deno.test("createCaSigner() reports refusals with status, CA code and Retry-After, and never the token", async () => {
  const t = await setup();
  const signer = createCaSigner({
    caUrl: t.server.url,
    caBundlePem: t.ca.rootPem,
    tokenFile: t.tokenFile,
  });
  try {
    t.ca.mode = "refuse";
    const e429 = await signer.sign({ csr: t.csr, ...ID }).catch((e) => e);
    assert.ok(e429 instanceof CaRequestError);
    assert.equal(e429.status, 429);
    assert.equal(e429.caCode, "rate_limited");
    assert.equal(e429.retryAfterMs, 7000);
    t.ca.mode = "ok";
    await Deno.writeTextFile(t.tokenFile, "wrong-token-value");
    const e401 = await signer.sign({ csr: t.csr, ...ID }).catch((e) => e);
    assert.ok(e401 instanceof CaRequestError);
    assert.equal(e401.status, 401);
    // The real CA's code (the former stand-in CA answered "unauthorized").
    assert.match(e401.message, /CA answered 401 ERR_CA_UNAUTHENTICATED/);
    assert.ok(!e401.message.includes("wrong-token-value"));
    await Deno.remove(t.tokenFile);
    const eTok = await signer.sign({ csr: t.csr, ...ID }).catch((e) => e);
    assert.ok(eTok instanceof RotatorError);
    assert.equal(eTok.code, "ERR_ROTATOR_TOKEN_UNREADABLE");
  } finally {
    signer.close();
    await t.cleanup();
  }
});

Deno.test("createCaSigner() reports an injected 503 and 500, then signs after an injected delay", async () => {
  const t = await setup();
  const signer = createCaSigner({
    caUrl: t.server.url,
    caBundlePem: t.ca.rootPem,
    tokenFile: t.tokenFile,
  });
  try {
    t.ca.failNext(1, { kind: "status", status: 503, retryAfterS: 2 });
    t.ca.failNext(1, { kind: "status", status: 500 });
    t.ca.failNext(1, { kind: "delay", ms: 200 });
    const e503 = await signer.sign({ csr: t.csr, ...ID }).catch((e) => e);
    assert.ok(e503 instanceof CaRequestError);
    assert.equal(e503.status, 503);
    assert.equal(e503.retryAfterMs, 2000);
    const e500 = await signer.sign({ csr: t.csr, ...ID }).catch((e) => e);
    assert.ok(e500 instanceof CaRequestError);
    assert.equal(e500.status, 500);
    const started = performance.now();
    const r = await signer.sign({ csr: t.csr, ...ID });
    assert.ok(performance.now() - started >= 190, "the delay was applied");
    assert.match(r.certificatePem, /BEGIN CERTIFICATE/);
    assert.equal(t.ca.issued, 1);
    assert.equal(t.ca.requests.length, 3);
  } finally {
    signer.close();
    await t.cleanup();
  }
});

Deno.test("createCaSigner() fails as unreachable on a closed port and on an untrusted server", async () => {
  const t = await setup();
  const port = freePort();
  const closed = createCaSigner({
    caUrl: `https://127.0.0.1:${port}`,
    caBundlePem: t.ca.rootPem,
    tokenFile: t.tokenFile,
  });
  const other = await createTestCa();
  const untrusted = createCaSigner({
    caUrl: t.server.url,
    caBundlePem: other.rootPem,
    tokenFile: t.tokenFile,
  });
  try {
    const e1 = await closed.sign({ csr: t.csr, ...ID }).catch((e) => e);
    assert.ok(e1 instanceof CaRequestError);
    assert.equal(e1.code, "ERR_ROTATOR_CA_UNREACHABLE");
    assert.equal(e1.status, 0);
    const e2 = await untrusted.sign({ csr: t.csr, ...ID }).catch((e) => e);
    assert.ok(e2 instanceof CaRequestError);
    assert.equal(e2.code, "ERR_ROTATOR_CA_UNREACHABLE");
    assert.equal(
      t.ca.requests.length,
      0,
      "no request reached an untrusted peer",
    );
  } finally {
    closed.close();
    untrusted.close();
    await t.cleanup();
  }
});

Deno.test("serveMetrics() on a taken port fails naming the address and metrics_listen", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  try {
    await assert.rejects(
      serveMetrics(
        { hostname: "127.0.0.1", port },
        new MetricsRegistry("sigil_rotator"),
        createLogger("rotator", { sink: () => {} }),
      ),
      (e: unknown) =>
        e instanceof RotatorError &&
        e.code === "ERR_ROTATOR_METRICS_LISTEN" &&
        e.message.startsWith(
          `Cannot listen on "127.0.0.1:${port}" (rotator.metrics_listen): address already in use`,
        ),
    );
  } finally {
    taken.close();
  }
});

Deno.test("createCaSigner() with several CA URLs fails over on unreachable and 5xx (not 4xx), starting with the replica that answered last", async () => {
  const t = await setup();
  const second = await serveTestCa(t.ca);
  const dead = `https://127.0.0.1:${freePort()}`;
  const calls: string[] = [];
  const countingFetch: typeof fetch = (input, init) => {
    calls.push(new URL(String(input)).origin);
    return fetch(input, init);
  };
  const endpoints = new CaEndpoints();
  const signer = (urls: string[]) =>
    createCaSigner({
      caUrl: urls,
      caBundlePem: t.ca.rootPem,
      tokenFile: t.tokenFile,
      fetch: countingFetch,
      endpoints,
    });
  const s1 = signer([dead, t.server.url, second.url]);
  try {
    const r = await s1.sign({ csr: t.csr, ...ID });
    assert.match(r.certificatePem, /BEGIN CERTIFICATE/);
    assert.deepEqual(calls, [dead, t.server.url]);

    // A new signer (the rotator makes one per request) starts where the last answer came from.
    calls.length = 0;
    const s2 = signer([dead, t.server.url, second.url]);
    await s2.sign({ csr: t.csr, ...ID });
    s2.close();
    assert.deepEqual(calls, [t.server.url]);

    calls.length = 0;
    t.ca.failNext(1, { kind: "status", status: 503, retryAfterS: 1 });
    await s1.sign({ csr: t.csr, ...ID });
    assert.deepEqual(calls, [t.server.url, second.url], "503 moves on");

    calls.length = 0;
    t.ca.failNext(1, { kind: "status", status: 403, code: "ERR_CA_FORBIDDEN" });
    const refused = await s1.sign({ csr: t.csr, ...ID }).catch((e) => e);
    assert.ok(refused instanceof CaRequestError);
    assert.equal(refused.status, 403);
    assert.deepEqual(calls, [second.url], "a refusal is the same everywhere");

    const dead2 = `https://127.0.0.1:${freePort()}`;
    const s3 = signer([dead, dead2]);
    const down = await s3.sign({ csr: t.csr, ...ID }).catch((e) => e);
    s3.close();
    assert.ok(down instanceof CaRequestError);
    assert.equal(down.status, 0);
    assert.ok(
      down.message.includes(dead) && down.message.includes(dead2),
      down.message,
    );
  } finally {
    s1.close();
    await second.close();
    await t.cleanup();
  }
});
