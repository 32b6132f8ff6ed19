/**
 * Router test fixtures: echo backends (plain and TLS with instance
 * certificates), raw TCP backends, a connection-counting TCP relay, a router
 * on ephemeral ports with a token key, and token minting.
 * @module
 */
import assert from "node:assert/strict";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { RouterSection } from "../../lib/config/mod.ts";
import type { RouterSectionInput } from "../../lib/config/_router.ts";
import { FakeClock } from "../_helpers/fake_clock.ts";
import { createLogger } from "../../lib/observe/mod.ts";
import { startRouter } from "../../lib/router/mod.ts";
import type { RouterDeps, RunningRouter } from "../../lib/router/mod.ts";
import { createTestPki } from "../_helpers/pki.ts";
import type { TestCredential, TestPki } from "../_helpers/pki.ts";

/** What an echo backend saw. */
export interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A test backend. */
export interface Backend {
  port: number;
  name: string;
  seen: Seen[];
  close(): Promise<void>;
}

/** Handler override: return true when the response was handled. */
export type BackendHandler = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  body: string,
) => boolean | void;

/**
 * Starts an echo backend. With `cred` it serves TLS with that certificate;
 * `clientCa` makes it require a client certificate from that CA.
 */
export async function startBackend(options: {
  name: string;
  cred?: TestCredential;
  clientCa?: string;
  handler?: BackendHandler;
}): Promise<Backend> {
  const seen: Seen[] = [];
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Uint8Array[] = [];
    req.on("data", (c: Uint8Array) => chunks.push(c));
    req.on("end", () => {
      const body = new TextDecoder().decode(concat(chunks));
      seen.push({
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body,
      });
      if (options.handler?.(req, res, body)) return;
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({
        backend: options.name,
        method: req.method,
        url: req.url,
        headers: req.headers,
        body,
      }));
    });
  };
  const server = options.cred
    ? https.createServer({
      cert: options.cred.certPem,
      key: options.cred.keyPem,
      ...(options.clientCa
        ? { requestCert: true, rejectUnauthorized: true, ca: options.clientCa }
        : {}),
    }, onRequest)
    : http.createServer(onRequest);
  const sockets = new Set<{ destroy(): void }>();
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  server.on("secureConnection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    name: options.name,
    seen,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** An echo backend serving a fresh certificate for instance `instanceId`. */
export async function instanceBackend(
  t: TestRouter,
  name: string,
  instanceId: string,
): Promise<Backend> {
  return startBackend({
    name,
    cred: await t.pki.issueInstance({ instanceId }),
  });
}

function concat(chunks: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const c of chunks) n += c.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/** A router with a temp dir holding its key and CA files. */
export interface TestRouter {
  router: RunningRouter;
  pki: TestPki;
  dir: string;
  url: string;
  apiUrl: string;
  clock: FakeClock | undefined;
  logs: Record<string, unknown>[];
  access: Record<string, unknown>[];
  /** Mints an ES256 token for the router's API. */
  token(
    scope?: string,
    opts?: { expSecondsFromNow?: number; issuer?: string; audience?: string },
  ): Promise<string>;
  close(): Promise<void>;
}

let sharedPki: Promise<TestPki> | undefined;
/** One PKI per test module (generation is slow-ish). */
export function testPki(): Promise<TestPki> {
  return sharedPki ??= createTestPki();
}

/** Starts a router on 127.0.0.1 ephemeral ports. */
export async function startTestRouter(
  overrides: Partial<RouterSectionInput> & {
    backends?: RouterSectionInput["backends"];
  } = {},
  options: {
    fakeClock?: boolean;
    deps?: RouterDeps;
    clientCred?: TestCredential;
  } = {},
): Promise<TestRouter> {
  const pki = await testPki();
  const dir = await Deno.makeTempDir({ prefix: "sigil-router-test-" });
  const { publicKey, privateKey } = await generateKeyPair("ES256", {
    extractable: true,
  });
  const jwk = await exportJWK(publicKey);
  await Deno.writeTextFile(`${dir}/token.jwk`, JSON.stringify(jwk));
  await Deno.writeTextFile(`${dir}/backend-ca.pem`, pki.rootPem);
  const backends: Record<string, unknown> = {
    ca: `${dir}/backend-ca.pem`,
    ...overrides.backends,
  };
  if (options.clientCred) {
    await Deno.writeTextFile(`${dir}/client.crt`, options.clientCred.certPem);
    await Deno.writeTextFile(`${dir}/client.key`, options.clientCred.keyPem, {
      mode: 0o600,
    });
    backends.cert = `${dir}/client.crt`;
    backends.key = `${dir}/client.key`;
  }
  const config = RouterSection.parse({
    listen: "127.0.0.1:0",
    ...overrides,
    api: {
      listen: "127.0.0.1:0",
      public_key_file: `${dir}/token.jwk`,
      ...overrides.api,
    },
    backends,
  });
  const clock = options.fakeClock ? new FakeClock(Date.now()) : undefined;
  const logs: Record<string, unknown>[] = [];
  const access: Record<string, unknown>[] = [];
  const router = await startRouter(config, {
    clock,
    logger: createLogger("router", {
      level: "debug",
      sink: (l) => logs.push(JSON.parse(l)),
    }),
    accessLogSink: (l) => access.push(JSON.parse(l)),
    ...options.deps,
  });
  return {
    router,
    pki,
    dir,
    url: `http://127.0.0.1:${router.port}`,
    apiUrl: `http://127.0.0.1:${router.apiPort}`,
    clock,
    logs,
    access,
    token: (scope = "routes.write", opts = {}) =>
      new SignJWT({ scope })
        .setProtectedHeader({ alg: "ES256" })
        .setIssuer(opts.issuer ?? "sigil-ca")
        .setAudience(opts.audience ?? "sigil")
        .setSubject("test-proxy")
        .setIssuedAt()
        .setExpirationTime(
          Math.floor(Date.now() / 1000) + (opts.expSecondsFromNow ?? 300),
        )
        .sign(privateKey),
    async close() {
      await router.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** A response read in full. */
export interface TestResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/**
 * A request through the router with a Host header (fetch cannot set Host),
 * on a fresh connection.
 */
export function request(
  url: string,
  host: string,
  init: {
    method?: string;
    path?: string;
    headers?: Record<string, string>;
    body?: string;
  } = {},
): Promise<TestResponse> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: u.hostname,
      port: Number(u.port),
      method: init.method ?? "GET",
      path: init.path ?? "/",
      headers: { host, ...init.headers },
      agent: false,
    }, (res) => {
      const chunks: Uint8Array[] = [];
      res.on("data", (c: Uint8Array) => chunks.push(c));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          text: new TextDecoder().decode(concat(chunks)),
        }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(init.body);
  });
}

/** A header value as one string. */
export function header(res: TestResponse, name: string): string {
  const v = res.headers[name];
  return Array.isArray(v) ? v.join(", ") : v ?? "";
}

/** A raw TCP backend (see {@linkcode rawBackend}). */
export interface RawBackend {
  port: number;
  /** Every request head received, in order. */
  heads: string[];
  /** Connections accepted so far. */
  accepted(): number;
  close(): Promise<void>;
}

/**
 * A raw TCP backend answering each request head with `reply(head, sock)`.
 * Without `reply` it reads and never answers (a backend that hangs, or a TLS
 * peer that never completes its handshake).
 */
export async function rawBackend(
  reply?: (head: string, sock: net.Socket) => void,
): Promise<RawBackend> {
  const heads: string[] = [];
  const socks = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((sock) => {
    accepted++;
    socks.add(sock);
    sock.on("close", () => socks.delete(sock));
    sock.on("error", () => {}); // the router may reset a connection it gave up on
    let buf = "";
    sock.on("data", (c) => {
      buf += c.toString("latin1");
      for (;;) {
        const end = buf.indexOf("\r\n\r\n");
        if (end === -1) return;
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        heads.push(head);
        reply?.(head, sock);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as AddressInfo).port,
    heads,
    accepted: () => accepted,
    close: () =>
      new Promise<void>((r) => {
        for (const s of socks) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A TCP relay that counts the connections made through it. */
export interface CountingRelay {
  port: number;
  /** `opened`: connections so far (tests may reset it); `open`: open now. */
  counts: { opened: number; open: number };
  close(): Promise<void>;
}

/**
 * Relays every connection to `targetPort` on 127.0.0.1, counting them, so a
 * test sees how many backend connections the router opens and keeps.
 */
export async function countingRelay(
  targetPort: number,
): Promise<CountingRelay> {
  const counts = { opened: 0, open: 0 };
  const server = net.createServer((client) => {
    counts.opened++;
    counts.open++;
    const upstream = net.connect({ host: "127.0.0.1", port: targetPort });
    client.pipe(upstream).pipe(client);
    client.once("close", () => {
      counts.open--;
      upstream.destroy();
    });
    upstream.once("close", () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as AddressInfo).port,
    counts,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** Polls `fn` until true; fails after `ms` of real time. */
export async function until(
  fn: () => boolean,
  what: string,
  ms = 10_000,
): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Asserts the router's answer to a backend silent past `request_timeout`. */
export function assertRequestTimedOut(res: TestResponse): void {
  assert.equal(res.status, 504);
  assert.equal(
    header(res, "x-cf-routererror"),
    "endpoint_failure (ERR_ROUTER_REQUEST_TIMEOUT)",
  );
}
