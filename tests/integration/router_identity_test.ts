/**
 * The `router` identity kind end to end over real TLS: the CA issues it only
 * under a `cert.router` token, `sigil rotator` keeps it fresh, and the router
 * loads each renewed pair without a restart (backend client certificate and
 * API certificate), while it keeps routing.
 */
import assert from "node:assert/strict";
import https from "node:https";
import tls from "node:tls";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { decodeJwt, exportJWK } from "jose";
import { sigil } from "../_helpers/proc.ts";
import { mintToken } from "../../lib/ca/mod.ts";
import { RotatorSection, RouterSection } from "../../lib/config/mod.ts";
import {
  createCsr,
  exportPrivateKeyPem,
  generateKeyPair,
  issueInstanceCertificate,
  parseCertificate,
} from "../../lib/pki/mod.ts";
import { startRotator } from "../../lib/rotator/mod.ts";
import { startRouter } from "../../lib/router/mod.ts";
import { createLogger } from "../../lib/observe/mod.ts";
import { request } from "../router/_helpers.ts";
import { cellGrant, eventually, startTestCa, writeToken } from "./_ca.ts";

const TD = "prod.example";

async function setup(dir: string) {
  const { store, ca, bundle } = await startTestCa(dir, { trustDomain: TD });
  const write = (name: string, token: string) =>
    writeToken(join(dir, name), token);
  const routerToken = await write(
    "router.jwt",
    await mintToken(store, {
      subject: "routers",
      scopes: ["cert.router"],
      apps: [],
      spaces: [],
      orgs: [],
      cidrs: ["127.0.0.0/8"],
      routers: ["router-*"],
    }),
  );
  const cellToken = await mintToken(store, cellGrant("cell-1"));
  return { store, ca, bundle, routerToken, cellToken };
}

async function sign(url: string, bundle: string, token: string, body: object) {
  const client = Deno.createHttpClient({
    caCerts: [await Deno.readTextFile(bundle)],
  });
  try {
    const res = await fetch(`${url}/v1/sign`, {
      method: "POST",
      client,
      headers: {
        authorization: `Bearer ${token}`,
        "content-type": "application/json",
      },
      body: JSON.stringify(body),
    });
    return { status: res.status, json: await res.json() };
  } finally {
    client.close();
  }
}

Deno.test("CA: a cert.router token signs only router identities, a cell token only instance ones", async () => {
  const dir = await Deno.makeTempDir();
  const { ca, bundle, routerToken, cellToken } = await setup(dir);
  try {
    const rt = (await Deno.readTextFile(routerToken)).trim();
    const keys = await generateKeyPair();
    const csr = await createCsr(keys);
    const router = {
      kind: "router",
      csr,
      name: "router-1",
      ips: ["127.0.0.1"],
    };
    const instance = {
      csr,
      instance_id: "router-1",
      app: "router",
      space: "system",
      org: "system",
      ips: ["127.0.0.1"],
    };
    const ok = await sign(ca.url, bundle, rt, router);
    assert.equal(ok.status, 201);
    const info = parseCertificate(ok.json.certificate);
    assert.equal(info.router?.name, "router-1");
    assert.deepEqual(info.uris, [`spiffe://${TD}/router/router-1`]);
    assert.equal(info.identity, undefined, "no instance identity");

    // A cell token cannot mint a router identity...
    const asCell = await sign(ca.url, bundle, cellToken, router);
    assert.equal(asCell.status, 403);
    assert.match(asCell.json.error.message, /cert\.router/);
    // ...and a router token cannot mint an instance identity.
    const asRouter = await sign(ca.url, bundle, rt, instance);
    assert.equal(asRouter.status, 403);
    assert.match(asRouter.json.error.message, /cert\.issue/);
    // The token's globs and CIDRs bound the router's names and addresses.
    const other = await sign(ca.url, bundle, rt, { ...router, name: "edge-1" });
    assert.equal(other.status, 403);
    assert.match(other.json.error.message, /name "edge-1" is outside/);
    const far = await sign(ca.url, bundle, rt, {
      ...router,
      ips: ["10.0.0.1"],
    });
    assert.equal(far.status, 403);
    assert.match(far.json.error.message, /address "10\.0\.0\.1"/);
    const guid = await sign(ca.url, bundle, rt, {
      ...router,
      name: "router-1",
      dns_names: [crypto.randomUUID()],
    });
    assert.equal(guid.status, 400);
    assert.match(guid.json.error.message, /instance GUID/);
    // The instance-shaped twin a cell token can still mint carries no router SPIFFE ID.
    const twin = await sign(ca.url, bundle, cellToken, instance);
    assert.equal(twin.status, 201);
    assert.ok(
      !parseCertificate(twin.json.certificate).uris.includes(
        `spiffe://${TD}/router/router-1`,
      ),
    );
  } finally {
    await ca.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("rotator keeps a router identity fresh; the router reloads its client and API certificates and keeps routing", async () => {
  const dir = await Deno.makeTempDir();
  const { store, ca, bundle, routerToken } = await setup(dir);
  const routerDir = join(dir, "router-1");
  const rotator = await startRotator(
    RotatorSection.parse({
      ca_url: ca.url,
      ca_bundle: bundle,
      token_file: routerToken,
      validity: "2m",
      routers: [{ name: "router-1", ips: ["127.0.0.1"], dir: routerDir }],
    }),
    { logger: createLogger("rotator", { sink: () => {} }) },
  );
  await rotator.ready();
  const certFile = join(routerDir, "instance.crt");
  const keyFile = join(routerDir, "instance.key");
  const serialOnDisk = async () =>
    parseCertificate(await Deno.readTextFile(certFile)).serial;

  // A backend that requires a client certificate from the CA and echoes its serial.
  const beKeys = await generateKeyPair();
  const beCert = await issueInstanceCertificate(
    beKeys.publicKey,
    { instanceId: "inst-1", app: "a", space: "s", org: "o", ips: [] },
    store.issuer,
    { trustDomain: TD, validityMs: 3600_000 },
  );
  const backend = https.createServer({
    cert: beCert.pem + store.intermediatePem,
    key: await exportPrivateKeyPem(beKeys),
    ca: store.rootPem,
    requestCert: true,
    rejectUnauthorized: true,
  }, (req, res) => {
    const peer = (req.socket as tls.TLSSocket).getPeerCertificate();
    res.end(JSON.stringify({
      serial: peer.serialNumber?.toLowerCase(),
      uri: peer.subjectaltname,
    }));
  });
  await new Promise<void>((r) => backend.listen(0, "127.0.0.1", r));
  const bePort = (backend.address() as AddressInfo).port;

  const jwkFile = join(dir, "token.jwk");
  await Deno.writeTextFile(
    jwkFile,
    JSON.stringify(await exportJWK(store.tokenKeys.publicKey)),
  );
  const logs: Array<Record<string, unknown>> = [];
  const router = await startRouter(
    RouterSection.parse({
      listen: "127.0.0.1:0",
      cert_check_interval: "100ms",
      api: {
        listen: "127.0.0.1:0",
        public_key_file: jwkFile,
        cert: certFile,
        key: keyFile,
      },
      backends: { mode: "mtls", ca: bundle, cert: certFile, key: keyFile },
      access_log: { enabled: false },
    }),
    {
      logger: createLogger("router", {
        sink: (l) => logs.push(JSON.parse(l)),
      }),
    },
  );
  const url = `http://127.0.0.1:${router.port}`;
  let failures = 0;
  let requests = 0;
  let stop = false;
  let traffic: Promise<void> | undefined;
  const apiSerial = () =>
    new Promise<string>((resolve, reject) => {
      const s = tls.connect({
        host: "127.0.0.1",
        port: router.apiPort!,
        ca: store.rootPem,
        servername: "router-1",
      }, () => {
        resolve(s.getPeerCertificate().serialNumber.toLowerCase());
        s.end();
      });
      s.on("error", reject);
    });
  try {
    router.apply("register", {
      host: "127.0.0.1",
      tls_port: bePort,
      uris: ["app.test"],
      server_cert_domain_san: "inst-1",
      private_instance_id: "inst-1",
    });
    const first = await serialOnDisk();
    const r1 = await request(url, "app.test");
    assert.equal(r1.status, 200, r1.text);
    assert.equal(JSON.parse(r1.text).serial, first);
    assert.match(
      JSON.parse(r1.text).uri,
      /URI:spiffe:\/\/prod\.example\/router\/router-1/,
    );
    assert.equal(await apiSerial(), first);

    // Rotate twice while requests keep flowing; none may fail.
    traffic = (async () => {
      while (!stop) {
        requests++;
        try {
          const r = await request(url, "app.test");
          if (r.status !== 200) failures++;
        } catch (err) {
          failures++;
          console.error("traffic", err);
        }
      }
    })();
    for (let round = 0; round < 2; round++) {
      const before = await serialOnDisk();
      assert.deepEqual(await rotator.renewAll(), []);
      const next = await serialOnDisk();
      assert.notEqual(next, before);
      // New backend connections present the new certificate...
      await eventually(async () => {
        const r = await request(url, "app.test");
        return JSON.parse(r.text).serial === next;
      }, `the backend to see client certificate ${next}`);
      // ...and new API handshakes get it too.
      // (A connection attempted while the listener is re-bound is refused.)
      await eventually(
        async () => (await apiSerial().catch(() => "")) === next,
        `the API to serve certificate ${next}`,
      );
      const m = router.metrics();
      const notAfter = Math.floor(
        parseCertificate(await Deno.readTextFile(certFile)).notAfter.getTime() /
          1000,
      );
      assert.match(
        m,
        new RegExp(
          `sigil_router_backend_client_cert_not_after_timestamp_seconds ${notAfter}\n`,
        ),
      );
      assert.match(
        m,
        new RegExp(
          `sigil_router_api_cert_not_after_timestamp_seconds ${notAfter}\n`,
        ),
      );
    }
    assert.ok(
      logs.filter((l) => l.event === "router-cert-reloaded").length >= 4,
      "both pairs reloaded twice",
    );
    stop = true;
    await traffic;
    assert.equal(failures, 0, `${failures} of ${requests} requests failed`);
  } finally {
    stop = true;
    await traffic;
    await router.close();
    await rotator.close();
    await new Promise<void>((r) => backend.close(() => r()));
    await ca.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sigil ca token mints cert.router tokens only with --router and never together with cert.issue", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const ca = join(dir, "ca");
    assert.equal((await sigil(["ca", "init", "--dir", ca])).code, 0);
    const token = (...args: string[]) =>
      sigil(["ca", "token", "--dir", ca, "--subject", "router-1", ...args]);
    const both = await token(
      "--scope",
      "cert.router",
      "--scope",
      "cert.issue",
      "--router",
      "router-*",
      "--app",
      "*",
      "--space",
      "*",
      "--org",
      "*",
    );
    assert.equal(both.code, 2);
    assert.match(both.stderr, /cannot carry both cert\.issue and cert\.router/);
    const bare = await token("--scope", "cert.router");
    assert.equal(bare.code, 2);
    assert.match(bare.stderr, /needs --router/);
    const stray = await token(
      "--router",
      "router-1",
      "--app",
      "*",
      "--space",
      "*",
      "--org",
      "*",
    );
    assert.equal(stray.code, 2);
    assert.match(stray.stderr, /"--router" goes with "--scope cert\.router"/);
    const ok = await token(
      "--scope",
      "cert.router",
      "--router",
      "router-1",
      "--cidr",
      "10.0.0.10/32",
    );
    assert.equal(ok.code, 0, ok.stderr);
    const claims = decodeJwt(ok.stdout.trim());
    assert.equal(claims.scope, "cert.router");
    assert.deepEqual(claims.routers, ["router-1"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
