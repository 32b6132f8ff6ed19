/**
 * The registration API over HTTPS (`router.api.cert`/`key`): proxies on other
 * hosts send bearer tokens to it, so it must be able to serve TLS.
 */
import assert from "node:assert/strict";
import { HttpRouteSink } from "../../lib/proxy/_http_sink.ts";
import { startTestRouter, testPki } from "./_helpers.ts";
import type { TestRouter } from "./_helpers.ts";

const MSG = {
  host: "10.0.0.5",
  tls_port: 61001,
  uris: ["tls-api.example.com"],
  server_cert_domain_san: "inst-tls",
  private_instance_id: "inst-tls",
  app: "app-1",
};

/** A router whose API serves HTTPS with a cert for 127.0.0.1. */
async function startTlsApiRouter(): Promise<
  { t: TestRouter; dir: string; url: string; caFile: string; caPem: string }
> {
  const pki = await testPki();
  const cred = await pki.issueClient({
    commonName: "router-api",
    ips: ["127.0.0.1"],
    dnsNames: ["localhost"],
  });
  const dir = await Deno.makeTempDir({ prefix: "sigil-router-api-tls-" });
  await Deno.writeTextFile(`${dir}/api.crt`, cred.certPem);
  await Deno.writeTextFile(`${dir}/api.key`, cred.keyPem, { mode: 0o600 });
  await Deno.writeTextFile(`${dir}/ca.pem`, pki.rootPem);
  const t = await startTestRouter({
    api: { cert: `${dir}/api.crt`, key: `${dir}/api.key` },
  });
  return {
    t,
    dir,
    url: `https://127.0.0.1:${t.router.apiPort}`,
    caFile: `${dir}/ca.pem`,
    caPem: pki.rootPem,
  };
}

async function readAll(conn: Deno.Conn): Promise<string> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(16384);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    chunks.push(buf.slice(0, n));
  }
  return new TextDecoder().decode(
    chunks.reduce((a, c) => {
      const o = new Uint8Array(a.length + c.length);
      o.set(a);
      o.set(c, a.length);
      return o;
    }, new Uint8Array(0)),
  );
}

Deno.test("router API with api.cert/key accepts HttpRouteSink registrations over HTTPS (ca_bundle)", async () => {
  const { t, dir, url, caFile } = await startTlsApiRouter();
  await Deno.writeTextFile(
    `${dir}/token`,
    await t.token("routes.write"),
    { mode: 0o600 },
  );
  const sink = new HttpRouteSink({
    url,
    tokenFile: `${dir}/token`,
    caBundle: caFile,
  });
  try {
    await sink.register(MSG);
    assert.equal(t.router.registry.endpointCount, 1);
    await sink.unregister(MSG);
    assert.equal(t.router.registry.endpointCount, 0);
  } finally {
    await sink.close();
    await t.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("router API over HTTPS answers /healthz, streams bodies, and refuses plain HTTP", async () => {
  const { t, dir, url, caPem } = await startTlsApiRouter();
  const client = Deno.createHttpClient({ caCerts: [caPem] });
  try {
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${url}/healthz`, { client });
      assert.equal(res.status, 200);
      assert.equal(await res.text(), "ok\n");
    }
    const routes = await fetch(`${url}/routes`, { client });
    assert.equal(routes.status, 200);
    assert.deepEqual(await routes.json(), {});

    // Raw response: chunked, no Content-Length (see oneSegment in _router.ts).
    const conn = await Deno.connectTls({
      hostname: "127.0.0.1",
      port: t.router.apiPort!,
      caCerts: [caPem],
    });
    await conn.write(
      new TextEncoder().encode(
        "GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n",
      ),
    );
    const raw = await readAll(conn);
    conn.close();
    assert.match(raw, /^HTTP\/1\.1 200/);
    assert.match(raw, /transfer-encoding: chunked/i);
    assert.doesNotMatch(raw, /content-length/i);

    // A client that does not trust the API's CA fails the handshake.
    await assert.rejects(fetch(`${url}/healthz`));
    // Plain HTTP to the TLS port gets no HTTP answer.
    await assert.rejects(
      fetch(`http://127.0.0.1:${t.router.apiPort}/healthz`),
    );
  } finally {
    client.close();
    await t.close();
    await Deno.remove(dir, { recursive: true });
  }
});
