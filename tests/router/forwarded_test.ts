/**
 * A client's `X-Forwarded-Client-Cert` and `X-Forwarded-Proto` (issue 20):
 * `router.forwarded_client_cert` and `sanitize_forwarded_proto` /
 * `force_forwarded_proto_https` follow gorouter's handlers/clientcert.go,
 * handlers/x_forwarded_proto.go and proxy/proxy.go (SkipSanitize,
 * SkipSanitizeXFP, ForceDeleteXFCCHeader), with the defaults of its
 * config/config.go (`always_forward`, both proto switches off). Before, both
 * headers passed through unconditionally and no setting existed. The plain-HTTP
 * rows also run against the real gorouter binary.
 */
import assert from "node:assert/strict";
import https from "node:https";
import { X509Certificate } from "node:crypto";
import { connect } from "@nats-io/transport-node";
import {
  forwardedClientCert,
  forwardedProto,
} from "../../lib/router/_forwarded.ts";
import type { ForwardedClientCertMode } from "../../lib/router/_forwarded.ts";
import { RouterSection } from "../../lib/config/mod.ts";
import { startGorouter } from "../_helpers/gorouter.ts";
import { startNatsServer } from "../_helpers/nats.ts";
import { freePort } from "../_helpers/ports.ts";
import { request, startBackend, startTestRouter, testPki } from "./_helpers.ts";
import type { Backend, TestRouter } from "./_helpers.ts";

const ROUTE = "fwd.test";
const XFCC = 'Hash=abc;Cert="client-said"';

Deno.test("gorouter's defaults: forwarded_client_cert always_forward, sanitize_forwarded_proto and force_forwarded_proto_https off", () => {
  const r = RouterSection.parse({ api: { enabled: false } });
  assert.equal(r.forwarded_client_cert, "always_forward");
  assert.equal(r.sanitize_forwarded_proto, false);
  assert.equal(r.force_forwarded_proto_https, false);
  assert.throws(() =>
    RouterSection.parse({
      api: { enabled: false },
      forwarded_client_cert: "sanitise",
    })
  );
});

Deno.test("forwardedClientCert() has gorouter's handlers/clientcert_test.go 'Client Cert Result' table, mTLS front and route-service rows included", async () => {
  const pki = await testPki();
  const client = await pki.issueClient({ commonName: "lb-client" });
  const der = new Uint8Array(new X509Certificate(client.certPem).raw);
  const b64 = new X509Certificate(client.certPem).raw.toString("base64");
  const modes: ForwardedClientCertMode[] = [
    "sanitize_set",
    "forward",
    "always_forward",
  ];
  // gorouter's table: forceDelete = arrived via route service (mode forward
  // only, as ForceDeleteXFCCHeader), skip = route-service traffic over TLS.
  // Columns: plain HTTP, TLS without a client cert, mTLS.
  const want: Record<string, Record<string, [unknown, unknown, unknown]>> = {
    // dontForceDelete, dontSkip
    plain: {
      sanitize_set: [undefined, undefined, b64],
      forward: [undefined, undefined, XFCC],
      always_forward: [XFCC, XFCC, XFCC],
    },
    // Back from the route service: skip over TLS, and forward force-deletes.
    routeService: {
      sanitize_set: [undefined, XFCC, XFCC],
      forward: [undefined, undefined, undefined],
      always_forward: [XFCC, XFCC, XFCC],
    },
  };
  for (const [kind, byMode] of Object.entries(want)) {
    for (const mode of modes) {
      const got = [
        { tls: false },
        { tls: true },
        { tls: true, peerCert: der },
      ].map((o) =>
        forwardedClientCert(mode, XFCC, {
          ...o,
          fromRouteService: kind === "routeService",
        })
      );
      assert.deepEqual(got, byMode[mode], `${kind} ${mode}`);
    }
  }
  // sanitize_set sets the client's certificate even when it sent no header.
  assert.equal(
    forwardedClientCert("sanitize_set", undefined, {
      tls: true,
      peerCert: der,
      fromRouteService: false,
    }),
    b64,
  );
});

Deno.test("forwardedProto() has gorouter's handlers/x_forwarded_proto_test.go rows", () => {
  const off = { sanitize: false, forceHttps: false };
  const san = { sanitize: true, forceHttps: false };
  const force = { sanitize: false, forceHttps: true };
  const plain = { tls: false, fromRouteService: false };
  const tls = { tls: true, fromRouteService: false };
  const rs = { tls: false, fromRouteService: true };
  const rows: Array<[typeof off, string | undefined, typeof plain, unknown]> = [
    [off, undefined, plain, "http"],
    [off, undefined, tls, "https"],
    [off, "", plain, "http"], // Go's Header.Get() == ""
    [off, "https", plain, "https"],
    [off, "http", tls, "http"],
    [san, "https", plain, "http"],
    [san, "http", tls, "https"],
    [san, undefined, tls, "https"],
    [force, "http", plain, "https"],
    [force, undefined, plain, "https"],
    [san, "https", rs, "https"], // SkipSanitizeXFP
    [force, "http", rs, "http"],
    [off, undefined, rs, undefined],
  ];
  for (const [s, value, over, expect] of rows) {
    assert.equal(
      forwardedProto(s, value, over),
      expect,
      JSON.stringify({ s, value, over }),
    );
  }
});

interface Row {
  name: string;
  /** Router settings (sigil's keys are gorouter's). */
  config: Record<string, unknown>;
  headers: Record<string, string>;
  xfcc: string | undefined;
  xfp: string;
}

const ROWS: Row[] = [
  {
    name: "default: a client's XFCC and XFP pass",
    config: {},
    headers: { "x-forwarded-client-cert": XFCC, "x-forwarded-proto": "https" },
    xfcc: XFCC,
    xfp: "https",
  },
  {
    name: "default: XFP added when missing",
    config: {},
    headers: {},
    xfcc: undefined,
    xfp: "http",
  },
  {
    name: "forward over plain HTTP: XFCC removed",
    config: { forwarded_client_cert: "forward" },
    headers: { "x-forwarded-client-cert": XFCC },
    xfcc: undefined,
    xfp: "http",
  },
  {
    name: "sanitize_set over plain HTTP: XFCC removed",
    config: { forwarded_client_cert: "sanitize_set" },
    headers: { "x-forwarded-client-cert": XFCC },
    xfcc: undefined,
    xfp: "http",
  },
  {
    name: "sanitize_forwarded_proto: the client's https becomes http",
    config: { sanitize_forwarded_proto: true },
    headers: { "x-forwarded-proto": "https" },
    xfcc: undefined,
    xfp: "http",
  },
  {
    name: "force_forwarded_proto_https",
    config: { force_forwarded_proto_https: true },
    headers: { "x-forwarded-proto": "http" },
    xfcc: undefined,
    xfp: "https",
  },
];

function configKey(c: Record<string, unknown>): string {
  return JSON.stringify(c);
}

async function checkRows(
  send: (headers: Record<string, string>) => Promise<number>,
  backend: Backend,
  rows: Row[],
  who: string,
) {
  for (const row of rows) {
    const before = backend.seen.length;
    const status = await send(row.headers);
    assert.equal(status, 200, `${who}: ${row.name}`);
    const h = backend.seen[before]!.headers;
    assert.equal(
      h["x-forwarded-client-cert"],
      row.xfcc,
      `${who}: ${row.name}: XFCC`,
    );
    assert.equal(h["x-forwarded-proto"], row.xfp, `${who}: ${row.name}: XFP`);
  }
}

Deno.test("sigil router: forwarded_client_cert and sanitize_forwarded_proto rows over plain HTTP and over its HTTPS listener", async () => {
  const backend = await startBackend({ name: "b" });
  const pki = await testPki();
  const dir = await Deno.makeTempDir({ prefix: "sigil-fwd-" });
  const front = await pki.issueClient({
    commonName: "localhost",
    dnsNames: ["localhost"],
  });
  await Deno.writeTextFile(`${dir}/front.crt`, front.certPem);
  await Deno.writeTextFile(`${dir}/front.key`, front.keyPem, { mode: 0o600 });
  const groups = new Map<string, Row[]>();
  for (const r of ROWS) {
    groups.set(configKey(r.config), [
      ...(groups.get(configKey(r.config)) ?? []),
      r,
    ]);
  }
  // Over TLS without a client certificate (Deno.serve's front asks for none).
  const tlsRows: Row[] = [
    {
      name: "TLS, forward: XFCC removed (no client certificate)",
      config: { forwarded_client_cert: "forward" },
      headers: { "x-forwarded-client-cert": XFCC },
      xfcc: undefined,
      xfp: "https",
    },
    {
      name: "TLS, sanitize_set: XFCC removed, none set",
      config: { forwarded_client_cert: "sanitize_set" },
      headers: { "x-forwarded-client-cert": XFCC },
      xfcc: undefined,
      xfp: "https",
    },
    {
      name: "TLS, default: XFCC kept, XFP https",
      config: {},
      headers: { "x-forwarded-client-cert": XFCC },
      xfcc: XFCC,
      xfp: "https",
    },
    {
      name: "TLS, sanitize_forwarded_proto: the client's http becomes https",
      config: { sanitize_forwarded_proto: true },
      headers: { "x-forwarded-proto": "http" },
      xfcc: undefined,
      xfp: "https",
    },
  ];
  for (const r of tlsRows) {
    groups.set("tls" + configKey(r.config), [
      ...(groups.get("tls" + configKey(r.config)) ?? []),
      r,
    ]);
  }
  try {
    for (const [key, rows] of groups) {
      const overTls = key.startsWith("tls");
      const t: TestRouter = await startTestRouter({
        ...rows[0]!.config,
        https: {
          listen: "127.0.0.1:0",
          cert: `${dir}/front.crt`,
          key: `${dir}/front.key`,
        },
      });
      try {
        t.router.apply("register", {
          host: "127.0.0.1",
          port: backend.port,
          uris: [ROUTE],
        });
        const send = overTls
          ? (headers: Record<string, string>) =>
            httpsGet(t.router.httpsPort!, pki.rootPem, headers)
          : async (headers: Record<string, string>) =>
            (await request(t.url, ROUTE, { headers })).status;
        await checkRows(send, backend, rows, "sigil");
      } finally {
        await t.close();
      }
    }
  } finally {
    await backend.close();
    await Deno.remove(dir, { recursive: true });
  }
});

function httpsGet(
  port: number,
  ca: string,
  headers: Record<string, string>,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: "127.0.0.1",
      port,
      servername: "localhost",
      ca,
      path: "/",
      headers: { host: ROUTE, ...headers },
      agent: false,
    }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
    req.end();
  });
}

Deno.test("the real gorouter (April 2023) gives the same plain-HTTP rows", async () => {
  const backend = await startBackend({ name: "b" });
  const dir = await Deno.makeTempDir({ prefix: "sigil-fwd-gorouter-" });
  await using nats = await startNatsServer();
  const nc = await connect({ servers: nats.url });
  const groups = new Map<string, Row[]>();
  for (const r of ROWS) {
    groups.set(configKey(r.config), [
      ...(groups.get(configKey(r.config)) ?? []),
      r,
    ]);
  }
  try {
    let n = 0;
    for (const rows of groups.values()) {
      const port = freePort();
      const sub = `${dir}/${n++}`;
      await Deno.mkdir(sub);
      await using gorouter = await startGorouter(sub, {
        port,
        natsPort: nats.port,
        extra: rows[0]!.config,
      });
      const url = `http://127.0.0.1:${port}`;
      // gorouter subscribes a moment after it serves.
      for (let i = 0;; i++) {
        nc.publish(
          "router.register",
          JSON.stringify({
            host: "127.0.0.1",
            port: backend.port,
            uris: [ROUTE],
          }),
        );
        await nc.flush();
        if ((await request(url, ROUTE)).status === 200) break;
        if (i >= 300) throw new Error("gorouter never routed");
        await new Promise((r) => setTimeout(r, 100));
      }
      try {
        await checkRows(
          async (headers) => (await request(url, ROUTE, { headers })).status,
          backend,
          rows,
          "gorouter",
        );
      } catch (e) {
        throw new Error(`${e}\n${gorouter.output().slice(-2000)}`);
      }
    }
  } finally {
    await nc.close();
    await backend.close();
    await Deno.remove(dir, { recursive: true });
  }
});
