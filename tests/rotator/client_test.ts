import assert from "node:assert/strict";
import { freePort } from "../_helpers/ports.ts";
import { join } from "node:path";
import { createCsr, generateKeyPair } from "../../lib/pki/mod.ts";
import {
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
    assert.match(e401.message, /CA answered 401 unauthorized/);
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
