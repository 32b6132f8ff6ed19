import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { sanAllowed } from "../../lib/proxy/_peer.ts";
import { startProxy } from "../../lib/proxy/mod.ts";
import { ConfigError, parseConfig } from "../../lib/config/mod.ts";
import {
  createTestPki,
  memoryLogger,
  proxySection,
  startHttpApp,
  tempDir,
  waitFor,
} from "./_helpers.ts";

const pki = await createTestPki();
const otherPki = await createTestPki("other.sigil");
const HOUR = 3_600_000;

interface Client {
  name: string;
  certPem?: string;
  keyPem?: string;
  expect: "ok" | "no-cert" | "unknown-ca" | "expired" | "san-not-allowed";
}

async function clients(): Promise<Client[]> {
  const right = await pki.issueClient({
    dnsNames: ["gorouter.service.cf.internal"],
  });
  const uri = await pki.issueClient({
    commonName: "router-uri",
    uris: ["spiffe://test.sigil/router"],
  });
  const other = await otherPki.issueClient({
    dnsNames: ["gorouter.service.cf.internal"],
  });
  const expired = await pki.issueClient({
    dnsNames: ["gorouter.service.cf.internal"],
    now: Date.now() - 3 * HOUR,
    validityMs: HOUR,
  });
  const wrongSan = await pki.issueClient({ dnsNames: ["evil.example.com"] });
  return [
    { name: "right cert (DNS SAN, wildcard)", ...right, expect: "ok" },
    { name: "right cert (URI SAN)", ...uri, expect: "ok" },
    { name: "no cert", expect: "no-cert" },
    { name: "cert from another CA", ...other, expect: "unknown-ca" },
    { name: "expired cert", ...expired, expect: "expired" },
    { name: "wrong SAN", ...wrongSan, expect: "san-not-allowed" },
  ];
}

async function setup() {
  const dir = await tempDir();
  await pki.writeInstance(`${dir}/creds`, { instanceId: "inst-1" });
  await Deno.writeTextFile(`${dir}/router-ca.pem`, pki.rootPem);
  let hits = 0;
  const app = startHttpApp((req) => {
    hits++;
    return `hello ${new URL(req.url).pathname}`;
  });
  const { logger, lines } = memoryLogger();
  const proxy = await startProxy(
    proxySection({
      admin_listen: "127.0.0.1:0",
      instances: [{
        credentials_dir: `${dir}/creds`,
        mode: "mtls",
        trusted_client_cas: [`${dir}/router-ca.pem`],
        allowed_client_sans: [
          "*.service.cf.internal",
          "spiffe://test.sigil/router",
        ],
        listeners: [{ listen: "127.0.0.1:0", app: `127.0.0.1:${app.port}` }],
      }],
    }),
    { logger, watch: false },
  );
  return {
    dir,
    proxy,
    port: proxy.port("inst-1"),
    lines,
    hits: () => hits,
    async [Symbol.asyncDispose]() {
      await proxy.close({ drainTimeoutMs: 0 });
      await app.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function writeClient(dir: string, c: Client): Promise<string[]> {
  if (!c.certPem) return [];
  const base = `${dir}/${c.name.replace(/\W+/g, "_")}`;
  await Deno.writeTextFile(`${base}.crt`, c.certPem);
  await Deno.writeTextFile(`${base}.key`, c.keyPem!);
  return [`${base}.crt`, `${base}.key`];
}

async function curl(
  port: number,
  dir: string,
  files: string[],
): Promise<{ code: number; body: string }> {
  const args = [
    "-sS",
    "--max-time",
    "5",
    "--cacert",
    `${dir}/root.pem`,
    "--resolve",
    `inst-1:${port}:127.0.0.1`,
  ];
  if (files.length) args.push("--cert", files[0]!, "--key", files[1]!);
  args.push(`https://inst-1:${port}/curl`);
  const out = await new Deno.Command("curl", {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, body: new TextDecoder().decode(out.stdout) };
}

async function sClient(
  port: number,
  dir: string,
  files: string[],
): Promise<string> {
  const args = [
    "s_client",
    "-connect",
    `127.0.0.1:${port}`,
    "-servername",
    "inst-1",
    "-CAfile",
    `${dir}/root.pem`,
    "-verify_hostname",
    "inst-1",
    "-ign_eof",
  ];
  if (files.length) {
    // s_client sends only the leaf unless -cert_chain names the intermediates.
    args.push("-cert", files[0]!, "-key", files[1]!, "-cert_chain", files[0]!);
  }
  const child = new Deno.Command("openssl", {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(
    new TextEncoder().encode(
      "GET /s_client HTTP/1.1\r\nhost: inst-1\r\nconnection: close\r\n\r\n",
    ),
  );
  await w.close();
  const timer = setTimeout(() => child.kill(), 5000);
  const out = await child.output();
  clearTimeout(timer);
  return new TextDecoder().decode(out.stdout);
}

Deno.test("startProxy() in mtls mode accepts only trusted, valid clients with an allowed SAN (curl and openssl s_client)", async () => {
  await using p = await setup();
  await Deno.writeTextFile(`${p.dir}/root.pem`, pki.rootPem);
  const expected: Record<string, number> = {};
  for (const c of await clients()) {
    const files = await writeClient(p.dir, c);
    const hitsBefore = p.hits();
    const viaCurl = await curl(p.port, p.dir, files);
    const viaOpenssl = await sClient(p.port, p.dir, files);
    if (c.expect === "ok") {
      assert.equal(viaCurl.code, 0, `${c.name}: curl failed`);
      assert.equal(viaCurl.body, "hello /curl", c.name);
      assert.match(viaOpenssl, /hello \/s_client/, c.name);
      assert.equal(p.hits(), hitsBefore + 2, c.name);
    } else {
      assert.notEqual(viaCurl.code, 0, `${c.name}: curl got through`);
      assert.doesNotMatch(viaOpenssl, /hello/, c.name);
      assert.equal(p.hits(), hitsBefore, `${c.name}: reached the app`);
      expected[c.expect] = (expected[c.expect] ?? 0) + 2;
    }
  }
  const st = p.proxy.stats().instances[0]!.listeners[0]!;
  await waitFor(
    () =>
      Object.entries(expected).every(([r, n]) =>
        p.proxy.stats().instances[0]!.listeners[0]!.handshake_failures[
          r as keyof typeof st.handshake_failures
        ] === n
      ),
    3000,
    "refusal counters",
  ).catch((err) => {
    throw new Error(
      `${err.message}: want ${JSON.stringify(expected)}, got ${
        JSON.stringify(
          p.proxy.stats().instances[0]!.listeners[0]!.handshake_failures,
        )
      }`,
    );
  });
  const refusals = p.lines.filter((l) => l.event === "client-refused");
  assert.equal(refusals.length, 8);
  for (const l of refusals) {
    assert.match(String(l.peer), /^127\.0\.0\.1:\d+$/);
    assert.ok(expected[String(l.reason)]);
    assert.doesNotMatch(JSON.stringify(l), /BEGIN|PRIVATE/);
  }
  assert.match(
    p.proxy.metrics(),
    /sigil_proxy_handshake_failures_total\{instance="inst-1",listener="[^"]+",reason="unknown-ca"\} 2/,
  );
  assert.equal(st.total, 4);
});

Deno.test("parseConfig() refuses mode mtls without trusted_client_cas", () => {
  assert.throws(
    () =>
      parseConfig(
        [
          "proxy:",
          "  instances:",
          "    - credentials_dir: /tmp/x",
          "      mode: mtls",
          "      listeners: [{ listen: '127.0.0.1:0', app: '127.0.0.1:8080' }]",
        ].join("\n"),
      ),
    (err: unknown) =>
      err instanceof ConfigError &&
      /proxy\.instances\.0\.trusted_client_cas: mode "mtls" needs at least one trusted client CA/
        .test(err.message),
  );
});

Deno.test("the proxy config refuses an allowed_client_sans pattern with two wildcard labels, before the proxy starts", () => {
  assert.throws(
    () =>
      parseConfig(
        'proxy:\n  instances:\n    - credentials_dir: /nonexistent\n      mode: mtls\n      trusted_client_cas: [/nonexistent/ca.pem]\n      allowed_client_sans: ["*.*.internal"]\n      listeners: [{listen: "127.0.0.1:0", app: "127.0.0.1:1"}]\n',
      ),
    (err: unknown) =>
      err instanceof ConfigError &&
      /proxy\.instances\.0\.allowed_client_sans\.0: "\*\.\*\.internal": "\*" is allowed in one label only/
        .test(err.message),
  );
});

Deno.test('sanAllowed() reads SANs from the certificate itself, so a DNS name containing ", DNS:" cannot smuggle in an allowed one', async () => {
  const pki2 = await createTestPki();
  const asPeer = (pem: string) => {
    const x = new X509Certificate(pem);
    return {
      raw: new Uint8Array(x.raw),
      fingerprint256: x.fingerprint256,
      // What node (and Deno) print for it: the embedded ", DNS:" reads as more names.
      subjectaltname: x.subjectAltName ?? "",
    } as unknown as import("node:tls").PeerCertificate;
  };
  const evil = await pki2.issueClient({
    dnsNames: ["evil, DNS:router-1, DNS:z"],
  });
  assert.equal(sanAllowed(asPeer(evil.certPem), ["router-1"]), false);
  const good = await pki2.issueClient({ dnsNames: ["router-1"] });
  assert.equal(sanAllowed(asPeer(good.certPem), ["router-1"]), true);
  const uri = await pki2.issueClient({ uris: ["spiffe://t/router"] });
  assert.equal(sanAllowed(asPeer(uri.certPem), ["spiffe://t/router"]), true);
  assert.equal(sanAllowed(asPeer(uri.certPem), ["router-1"]), false);
});
