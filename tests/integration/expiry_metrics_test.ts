/**
 * "Nothing expires unwatched": every role that holds a token or certificate
 * exports its absolute expiry (`*_not_after_timestamp_seconds`, read here
 * from `/metrics` over real HTTP) and logs `credential-expiring` (without the
 * secret) once it is inside the warning window.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { exportJWK } from "jose";
import { initCa, mintToken } from "../../lib/ca/mod.ts";
import {
  ProxySection,
  RotatorSection,
  RouterSection,
} from "../../lib/config/mod.ts";
import {
  exportPrivateKeyPem,
  generateKeyPair,
  issueInstanceCertificate,
  parseCertificate,
} from "../../lib/pki/mod.ts";
import { startRotator } from "../../lib/rotator/mod.ts";
import { startRouter } from "../../lib/router/mod.ts";
import { startProxy } from "../../lib/proxy/mod.ts";
import { createLogger } from "../../lib/observe/mod.ts";
import {
  cellGrant,
  eventually,
  oneInstanceRotator,
  startTestCa,
  writeToken,
} from "./_ca.ts";

type Line = Record<string, unknown>;

function capture(component: string) {
  const lines: Line[] = [];
  const raw: string[] = [];
  const logger = createLogger(component, {
    sink: (l) => {
      raw.push(l);
      lines.push(JSON.parse(l));
    },
  });
  return { logger, lines, raw };
}

async function scrape(url: string, caPem?: string): Promise<string> {
  const client = caPem
    ? Deno.createHttpClient({ caCerts: [caPem] })
    : undefined;
  try {
    const res = await fetch(url, client ? { client } : {});
    assert.equal(res.status, 200);
    return await res.text();
  } finally {
    client?.close();
  }
}

function gauge(text: string, name: string, labels = ""): number | undefined {
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const m = new RegExp(`^${esc(name)}${esc(labels)} (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : undefined;
}

Deno.test("rotator: token and certificate expiries on /metrics, credential-expiring logged without the token", async () => {
  const dir = await Deno.makeTempDir();
  const { store, ca, bundle } = await startTestCa(dir);
  // A token with 1 h left: inside a 2 h warning window.
  const token = await mintToken(store, cellGrant("cell-1"), {
    ttlMs: 3600_000,
  });
  const tokenFile = await writeToken(join(dir, "cell.jwt"), token);
  const log = capture("rotator");
  const rotator = await startRotator(
    RotatorSection.parse(
      oneInstanceRotator(ca, { bundle, tokenFile, dir }, {
        // Warn once 99.9% of a certificate's life is left: at once, here.
        expiry_warning: { token: "2h", cert_fraction: 0.999 },
      }),
    ),
    { logger: log.logger },
  );
  try {
    await rotator.ready();
    const m = await scrape(
      `http://127.0.0.1:${rotator.metricsAddress!.port}/metrics`,
    );
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const tokenExp = gauge(
      m,
      "sigil_rotator_token_not_after_timestamp_seconds",
    );
    assert.ok(
      tokenExp !== undefined && Math.abs(tokenExp - exp) <= 5,
      `token gauge ${tokenExp}`,
    );
    const cert = parseCertificate(
      await Deno.readTextFile(join(dir, "inst-1", "instance.crt")),
    );
    assert.equal(
      gauge(
        m,
        "sigil_rotator_cert_not_after_timestamp_seconds",
        '{instance="inst-1"}',
      ),
      Math.floor(cert.notAfter.getTime() / 1000),
    );
    await eventually(
      () =>
        log.lines.some((l) =>
          l.event === "credential-expiring" && l.credential === "certificate" &&
          l.instance === "inst-1" && l.serial === cert.serial
        ),
      "the certificate warning",
    );
    const tokenWarnings = log.lines.filter((l) =>
      l.event === "credential-expiring" && l.credential === "cell-token"
    );
    assert.equal(tokenWarnings.length, 1, "one warning per token");
    assert.equal(tokenWarnings[0]!.level, "warn");
    assert.equal(tokenWarnings[0]!.file, tokenFile);
    assert.ok(!log.raw.some((l) => l.includes(token)), "no token in logs");
  } finally {
    await rotator.close();
    await ca.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("router and proxy: certificate and router-token expiries on /metrics over HTTP, with warnings", async () => {
  const dir = await Deno.makeTempDir();
  const store = await initCa(join(dir, "ca"));
  const bundle = join(dir, "root.crt");
  await Deno.writeTextFile(bundle, store.rootPem);
  // A pair with 10 s left of 1 h: far inside the default 20% window.
  const writePair = async (sub: string, id: string) => {
    const keys = await generateKeyPair();
    const leaf = await issueInstanceCertificate(
      keys.publicKey,
      { instanceId: id, app: "a", space: "s", org: "o", ips: ["127.0.0.1"] },
      store.issuer,
      {
        trustDomain: "sigil.internal",
        validityMs: 3600_000,
        backdateMs: 0,
        now: Date.now() - 3590_000,
      },
    );
    await Deno.mkdir(join(dir, sub), { recursive: true });
    await Deno.writeTextFile(
      join(dir, sub, "instance.crt"),
      leaf.pem + store.intermediatePem,
    );
    await Deno.writeTextFile(
      join(dir, sub, "instance.key"),
      await exportPrivateKeyPem(keys),
      { mode: 0o600 },
    );
    return leaf;
  };
  const routerLeaf = await writePair("router", "router-1");
  const instLeaf = await writePair("inst", "inst-1");
  const jwk = join(dir, "token.jwk");
  await Deno.writeTextFile(
    jwk,
    JSON.stringify(await exportJWK(store.tokenKeys.publicKey)),
  );
  const routesToken = await mintToken(store, {
    subject: "cell-routes",
    scopes: ["routes.write"],
    apps: [],
    spaces: [],
    orgs: [],
    cidrs: [],
  }, { ttlMs: 86_400_000 });
  const tokenFile = await writeToken(join(dir, "routes.jwt"), routesToken);

  const rlog = capture("router");
  const router = await startRouter(
    RouterSection.parse({
      listen: "127.0.0.1:0",
      api: {
        listen: "127.0.0.1:0",
        public_key_file: jwk,
        cert: join(dir, "router", "instance.crt"),
        key: join(dir, "router", "instance.key"),
      },
      backends: {
        mode: "mtls",
        ca: bundle,
        cert: join(dir, "router", "instance.crt"),
        key: join(dir, "router", "instance.key"),
      },
      access_log: { enabled: false },
    }),
    { logger: rlog.logger },
  );
  const plog = capture("proxy");
  const app = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("ok"),
  );
  const proxy = await startProxy(
    ProxySection.parse({
      admin_listen: "127.0.0.1:0",
      // The 1-day token is inside a 2-day window.
      expiry_warning: { token: "2d" },
      instances: [{
        credentials_dir: join(dir, "inst"),
        mode: "tls",
        listeners: [{
          listen: "127.0.0.1:0",
          app: `127.0.0.1:${app.addr.port}`,
        }],
        register: {
          routes: ["hello.example.com"],
          host: "127.0.0.1",
          routers: [{
            url: `https://127.0.0.1:${router.apiPort}`,
            token_file: tokenFile,
            ca_bundle: bundle,
          }],
        },
      }],
    }),
    { logger: plog.logger },
  );
  try {
    // Router: scraped from its API listener over HTTPS (loopback: no token).
    const rm = await scrape(
      `https://127.0.0.1:${router.apiPort}/metrics`,
      store.rootPem,
    );
    const routerExp = Math.floor(routerLeaf.notAfter.getTime() / 1000);
    assert.equal(
      gauge(rm, "sigil_router_backend_client_cert_not_after_timestamp_seconds"),
      routerExp,
    );
    assert.equal(
      gauge(rm, "sigil_router_api_cert_not_after_timestamp_seconds"),
      routerExp,
    );
    for (const credential of ["router-client-cert", "router-api-cert"]) {
      const w = rlog.lines.filter((l) =>
        l.event === "credential-expiring" && l.credential === credential
      );
      assert.equal(w.length, 1, credential);
      assert.equal(w[0]!.serial, routerLeaf.serial);
    }

    // Proxy: the instance certificate and the token it registers with.
    await eventually(
      () => router.registry.lookup("hello.example.com", "/") !== undefined,
      "the registration",
    );
    const pm = await scrape(`http://127.0.0.1:${proxy.adminPort}/metrics`);
    assert.equal(
      gauge(
        pm,
        "sigil_proxy_cert_not_after_timestamp_seconds",
        '{instance="inst-1"}',
      ),
      Math.floor(instLeaf.notAfter.getTime() / 1000),
    );
    const tokenExp = gauge(
      pm,
      "sigil_proxy_router_token_not_after_timestamp_seconds",
      `{instance="inst-1",router="https://127.0.0.1:${router.apiPort}"}`,
    );
    const want = Math.floor(Date.now() / 1000) + 86_400;
    assert.ok(
      tokenExp !== undefined && Math.abs(tokenExp - want) <= 5,
      `router token gauge ${tokenExp}\n${pm}`,
    );
    const certWarn = plog.lines.filter((l) =>
      l.event === "credential-expiring" && l.credential === "instance-cert"
    );
    assert.equal(certWarn.length, 1);
    assert.equal(certWarn[0]!.serial, instLeaf.serial);
    const tokenWarn = plog.lines.filter((l) =>
      l.event === "credential-expiring" && l.credential === "router-token"
    );
    assert.equal(tokenWarn.length, 1, "one warning, not one per heartbeat");
    assert.ok(!plog.raw.some((l) => l.includes(routesToken)), "no token");
  } finally {
    await proxy.close({ drainTimeoutMs: 0 });
    await app.shutdown();
    await router.close();
    await Deno.remove(dir, { recursive: true });
  }
});
