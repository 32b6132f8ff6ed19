/**
 * The rotator tests' CA: the real {@linkcode CertificateAuthority} (lib/ca)
 * behind a fault-injecting layer. Used in process (a {@linkcode Signer} for
 * FakeClock tests) or over real loopback HTTPS (the real `createCaApp()` for
 * client tests). The layer only decides what goes wrong; every certificate
 * comes from a real authority:
 *
 * - `wrong-identity` / `wrong-key`: the request is altered before the real CA
 *   signs it (another app; a CSR of another key), so a valid certificate for
 *   the wrong thing comes back.
 * - `expired`: a second authority on the same CA, whose clock runs ten
 *   lifetimes behind.
 * - `untrusted`: an authority of an unrelated CA, answering without a chain.
 * - `down`, `refuse`, `garbage`, and {@linkcode TestCa.failNext}: answers the
 *   real CA never gives (unreachable, 429 with Retry-After, a non-certificate).
 */
import { join } from "node:path";
import {
  CertificateAuthority,
  createCaApp,
  initCa,
  Ledger,
  mintToken,
} from "../../lib/ca/mod.ts";
import type {
  AuthorityOptions,
  CaStore,
  SignResponse,
} from "../../lib/ca/mod.ts";
import { systemClock } from "../../lib/common/mod.ts";
import type { Clock } from "../../lib/common/mod.ts";
import {
  createCsr,
  exportPrivateKeyPem,
  generateKeyPair,
  issueServiceCertificate,
} from "../../lib/pki/mod.ts";
import { CaRequestError, signRequestBody } from "../../lib/rotator/mod.ts";
import type {
  Signer,
  SignRequest,
  SignRequestBody,
  SignResult,
} from "../../lib/rotator/mod.ts";

/** How the test CA misbehaves, on every request until changed. */
export type CaMode =
  | "ok"
  | "down"
  | "refuse"
  | "wrong-identity"
  | "wrong-key"
  | "expired"
  | "untrusted"
  | "garbage";

/** One injected failure (see {@linkcode TestCa.failNext}). */
export type CaFault =
  /** No answer: in process a status-0 error; over HTTPS a 503 (see faultResponse). */
  | { kind: "unreachable" }
  /** An error answer, like a CA under load or a proxy in front of it. */
  | {
    kind: "status";
    status: number;
    code?: string;
    /** Seconds, sent as `Retry-After`. */
    retryAfterS?: number;
  }
  /** Waits, then lets the request through to the real CA. */
  | { kind: "delay"; ms: number };

export interface TestCa {
  rootPem: string;
  intermediatePem: string;
  /** The real CA's store (issuer, token key). */
  store: CaStore;
  /** A bearer token the real CA accepts for any app/space/org/IP. */
  token: string;
  mode: CaMode;
  /** Requests seen (including refused ones). */
  requests: SignRequest[];
  /** Successful issuances. */
  issued: number;
  /** Injects `fault` into the next `n` requests (before `mode` applies). */
  failNext(n: number, fault: CaFault): void;
  /** In-process signer (calls {@linkcode TestCa.sign}). */
  signer(): Signer;
  /** Signs one request in process, faults applied. */
  sign(req: SignRequest, signal?: AbortSignal): Promise<SignResult>;
  /** Answers one HTTP request with the real CA app, faults applied. */
  handle(req: Request): Promise<Response>;
}

/** What a faulty layer does with one request. */
type Decision =
  | { answer: "error"; fault: CaFault }
  | { answer: "garbage" }
  | { answer: "sign"; authority: CertificateAuthority; body: SignRequestBody };

const GARBAGE_PEM =
  "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";

function authorityOptions(
  o: { validityMs: number; backdateMs: number; clock: Clock },
): AuthorityOptions {
  return {
    defaultValidityMs: o.validityMs,
    maxValidityMs: Math.max(o.validityMs, 7 * 86_400_000),
    backdateMs: o.backdateMs,
    rateLimit: { perSecond: 1_000_000, burst: 1_000_000 },
    clock: o.clock,
  };
}

async function newAuthority(
  options: {
    now: number;
    validityMs: number;
    backdateMs: number;
    clock: Clock;
  },
): Promise<{ authority: CertificateAuthority; token: string }> {
  // The store is kept in memory; the files initCa writes are not needed.
  const dir = await Deno.makeTempDir({ prefix: "sigil-test-ca-" });
  let store: CaStore;
  try {
    store = await initCa(join(dir, "ca"), {
      trustDomain: "sigil.test",
      now: options.now - 86_400_000,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const authority = new CertificateAuthority(
    store,
    Ledger.open(":memory:"),
    authorityOptions(options),
  );
  const token = await mintToken(store, {
    subject: "test-cell",
    scopes: ["cert.issue"],
    apps: ["*"],
    spaces: ["*"],
    orgs: ["*"],
    cidrs: ["0.0.0.0/0"],
  }, { now: options.now, ttlMs: 365 * 86_400_000 });
  return { authority, token };
}

/**
 * Creates the test CA.
 *
 * @param options `clock` drives the real CA (default the system clock);
 *   `validityMs` is its default leaf lifetime; `backdateMs` its backdating.
 */
export async function createTestCa(
  options: { clock?: Clock; validityMs?: number; backdateMs?: number } = {},
): Promise<TestCa> {
  const clock = options.clock ?? systemClock;
  const validityMs = options.validityMs ?? 60_000;
  const base = {
    now: clock.now(),
    validityMs,
    backdateMs: options.backdateMs ?? 0,
  };
  const main = await newAuthority({ ...base, clock });
  const store = main.authority.store;
  // Same CA, clock ten lifetimes behind: its leaves are expired on arrival.
  const late = new CertificateAuthority(store, Ledger.open(":memory:"), {
    ...authorityOptions({ ...base, clock }),
    clock: { ...clock, now: () => clock.now() - 10 * validityMs },
  });
  const other = await newAuthority({ ...base, clock });
  const faults: CaFault[] = [];

  const decide = async (wire: SignRequestBody): Promise<Decision> => {
    const fault = faults.shift();
    if (fault && fault.kind !== "delay") return { answer: "error", fault };
    if (fault) await new Promise((r) => setTimeout(r, fault.ms));
    switch (ca.mode) {
      case "down":
        return { answer: "error", fault: { kind: "unreachable" } };
      case "refuse":
        return {
          answer: "error",
          fault: {
            kind: "status",
            status: 429,
            code: "rate_limited",
            retryAfterS: 7,
          },
        };
      case "garbage":
        return { answer: "garbage" };
      case "wrong-identity":
        return {
          answer: "sign",
          authority: main.authority,
          body: { ...wire, app: "someone-else" },
        };
      case "wrong-key": {
        const csr = await createCsr(await generateKeyPair(), {
          instanceId: wire.instance_id,
          app: wire.app,
          space: wire.space,
          org: wire.org,
          ips: wire.ips,
        });
        return {
          answer: "sign",
          authority: main.authority,
          body: { ...wire, csr },
        };
      }
      case "expired":
        return { answer: "sign", authority: late, body: wire };
      case "untrusted":
        return { answer: "sign", authority: other.authority, body: wire };
    }
    return { answer: "sign", authority: main.authority, body: wire };
  };
  const tokenFor = (a: CertificateAuthority) =>
    a === other.authority ? other.token : main.token;
  const chainOf = (res: SignResponse) =>
    ca.mode === "untrusted" ? "" : res.chain;

  // Over HTTPS: the real CA app, one per authority.
  const apps = new Map(
    [main.authority, late, other.authority].map((a) => [a, createCaApp(a)]),
  );
  const ca: TestCa = {
    rootPem: store.rootPem,
    intermediatePem: store.intermediatePem,
    store,
    token: main.token,
    mode: "ok",
    requests: [],
    issued: 0,
    failNext(n, fault) {
      for (let i = 0; i < n; i++) faults.push(fault);
    },
    async sign(req) {
      ca.requests.push(req);
      const d = await decide(signRequestBody(req));
      if (d.answer === "error") throw faultError(d.fault, req.instanceId);
      if (d.answer === "garbage") {
        return {
          certificatePem: GARBAGE_PEM,
          chainPem: "",
          serial: "00",
          notAfter: new Date(clock.now()),
        };
      }
      const res = await d.authority.sign(d.body, tokenFor(d.authority));
      ca.issued++;
      return {
        certificatePem: res.certificate,
        chainPem: chainOf(res),
        serial: res.serial,
        notAfter: new Date(res.not_after),
      };
    },
    signer() {
      return (req, signal) => ca.sign(req, signal);
    },
    async handle(req) {
      const url = new URL(req.url);
      if (req.method !== "POST" || url.pathname !== "/v1/sign") {
        return apps.get(main.authority)!.fetch(req);
      }
      const text = await req.text();
      let wire: SignRequestBody | undefined;
      try {
        wire = JSON.parse(text);
      } catch {
        // the real CA answers
      }
      // Only requests that reach this CA are seen: an untrusted or
      // unauthenticated caller is turned away by TLS or the real CA.
      if (
        !wire || req.headers.get("authorization") !== `Bearer ${main.token}`
      ) {
        return apps.get(main.authority)!.fetch(
          new Request(req.url, {
            method: "POST",
            headers: req.headers,
            body: text,
          }),
        );
      }
      ca.requests.push(fromWire(wire));
      const d = await decide(wire);
      if (d.answer === "error") return faultResponse(d.fault);
      if (d.answer === "garbage") {
        return Response.json({
          certificate: GARBAGE_PEM,
          chain: "",
          serial: "00",
          not_after: new Date(clock.now()).toISOString(),
        }, { status: 201 });
      }
      const headers = new Headers(req.headers);
      headers.set("authorization", `Bearer ${tokenFor(d.authority)}`);
      const res = await apps.get(d.authority)!.fetch(
        new Request(req.url, {
          method: "POST",
          headers,
          body: JSON.stringify(d.body),
        }),
      );
      if (res.status !== 201) return res;
      ca.issued++;
      const body = await res.json() as SignResponse;
      return Response.json({ ...body, chain: chainOf(body) }, { status: 201 });
    },
  };
  return ca;
}

function fromWire(w: SignRequestBody): SignRequest {
  return {
    csr: w.csr,
    instanceId: w.instance_id,
    app: w.app,
    space: w.space,
    org: w.org,
    ips: w.ips,
    validity: w.validity,
  };
}

/** The error `createCaSigner()` would raise for this fault. */
function faultError(fault: CaFault, instanceId: string): CaRequestError {
  if (fault.kind === "status") {
    return new CaRequestError(
      "ERR_ROTATOR_CA_REJECTED",
      `Cannot renew "${instanceId}": CA answered ${fault.status} (injected)`,
      {
        status: fault.status,
        caCode: fault.code,
        retryAfterMs: fault.retryAfterS === undefined
          ? undefined
          : fault.retryAfterS * 1000,
      },
    );
  }
  return new CaRequestError(
    "ERR_ROTATOR_CA_UNREACHABLE",
    "Cannot reach CA: connection refused (injected)",
    { status: 0 },
  );
}

function faultResponse(fault: CaFault): Response {
  if (fault.kind !== "status") {
    // A server cannot refuse a connection it has accepted; 503 is the
    // nearest answer a load balancer in front of a dead CA gives.
    return Response.json(
      { error: { code: "unavailable", message: "CA is down (injected)" } },
      { status: 503 },
    );
  }
  return Response.json(
    {
      error: {
        code: fault.code ?? "injected",
        message: `Injected ${fault.status}`,
      },
    },
    {
      status: fault.status,
      headers: fault.retryAfterS === undefined
        ? {}
        : { "retry-after": String(fault.retryAfterS) },
    },
  );
}

/** The real CA app over loopback HTTPS, faults applied. */
export interface TestCaServer {
  url: string;
  /** Bearer token the CA accepts. */
  token: string;
  close(): Promise<void>;
}

export async function serveTestCa(ca: TestCa): Promise<TestCaServer> {
  // The server certificate chains to the test root (so ca_bundle = root).
  const serverKeys = await generateKeyPair();
  const serverCert = await issueServiceCertificate(
    serverKeys.publicKey,
    ca.store.issuer,
    {
      commonName: "test-ca",
      dnsNames: ["localhost"],
      ips: ["127.0.0.1"],
      validityMs: 3_600_000,
    },
  );
  const { promise, resolve } = Promise.withResolvers<number>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: serverCert.pem + ca.intermediatePem,
    key: await exportPrivateKeyPem(serverKeys),
    onListen: (a) => resolve(a.port),
  }, (req) => ca.handle(req));
  const port = await promise;
  return {
    url: `https://127.0.0.1:${port}`,
    token: ca.token,
    close: () => server.shutdown(),
  };
}
