/**
 * A test CA for rotator tests, built on lib/pki: an in-process signer (for
 * FakeClock tests) and an HTTPS server speaking the `/v1/sign` API over real
 * loopback TLS (for client and subprocess tests).
 */
import {
  createIntermediateCa,
  createRootCa,
  exportPrivateKeyPem,
  generateKeyPair,
  issueInstanceCertificate,
  issueServiceCertificate,
  verifyCsr,
} from "../../lib/pki/mod.ts";
import type { Issuer } from "../../lib/pki/mod.ts";
import { CaRequestError } from "../../lib/rotator/mod.ts";
import type { Signer, SignRequest, SignResult } from "../../lib/rotator/mod.ts";
import { parseDuration } from "../../lib/common/mod.ts";

/** How the test CA misbehaves on the next requests. */
export type CaMode =
  | "ok"
  | "down"
  | "refuse"
  | "wrong-identity"
  | "wrong-key"
  | "expired"
  | "untrusted"
  | "garbage";

export interface TestCa {
  rootPem: string;
  intermediatePem: string;
  /** The intermediate, able to sign. */
  issuer: Issuer;
  /** Validity of issued leaves (ms). */
  validityMs: number;
  /** Backdating of notBefore (ms). */
  backdateMs: number;
  mode: CaMode;
  /** Requests seen (including refused ones). */
  requests: SignRequest[];
  /** Successful issuances. */
  issued: number;
  /** In-process signer using `now()` as the time. */
  signer(now: () => number): Signer;
  /** Issues for a request; used by both the signer and the HTTPS server. */
  sign(req: SignRequest, now: number): Promise<SignResult>;
}

export async function createTestCa(
  options: { now?: number; validityMs?: number; backdateMs?: number } = {},
): Promise<TestCa> {
  const now = options.now ?? Date.now();
  const rootKeys = await generateKeyPair();
  const root = await createRootCa(rootKeys, {
    commonName: "Test Root",
    now: now - 86_400_000,
    validityMs: 20 * 365 * 86_400_000,
  });
  const rootIssuer: Issuer = {
    certPem: root.pem,
    keys: rootKeys,
    chainPem: "",
  };
  const interKeys = await generateKeyPair();
  const inter = await createIntermediateCa(interKeys.publicKey, rootIssuer, {
    commonName: "Test Intermediate",
    now: now - 86_400_000,
    validityMs: 10 * 365 * 86_400_000,
  });
  const issuer: Issuer = { certPem: inter.pem, keys: interKeys, chainPem: "" };
  // A second, unrelated hierarchy for "untrusted" answers.
  const otherKeys = await generateKeyPair();
  const other = await createRootCa(otherKeys, {
    commonName: "Other Root",
    now: now - 86_400_000,
    validityMs: 20 * 365 * 86_400_000,
  });
  const otherIssuer: Issuer = {
    certPem: other.pem,
    keys: otherKeys,
    chainPem: "",
  };

  const ca: TestCa = {
    rootPem: root.pem,
    intermediatePem: inter.pem,
    issuer,
    validityMs: options.validityMs ?? 60_000,
    backdateMs: options.backdateMs ?? 0,
    mode: "ok",
    requests: [],
    issued: 0,
    async sign(req, t) {
      ca.requests.push(req);
      switch (ca.mode) {
        case "down":
          throw new CaRequestError(
            "ERR_ROTATOR_CA_UNREACHABLE",
            "Cannot reach CA: connection refused (test)",
            { status: 0 },
          );
        case "refuse":
          throw new CaRequestError(
            "ERR_ROTATOR_CA_REJECTED",
            "Cannot renew: CA answered 403 (test)",
            { status: 403 },
          );
        case "garbage":
          return {
            certificatePem:
              "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            chainPem: "",
            serial: "00",
            notAfter: new Date(t),
          };
      }
      const { publicKey } = await verifyCsr(req.csr);
      const identity = {
        instanceId: req.instanceId,
        app: ca.mode === "wrong-identity" ? "someone-else" : req.app,
        space: req.space,
        org: req.org,
        ips: req.ips,
      };
      const key = ca.mode === "wrong-key"
        ? (await generateKeyPair()).publicKey
        : publicKey;
      const validityMs = req.validity
        ? parseDuration(req.validity)
        : ca.validityMs;
      const leaf = await issueInstanceCertificate(
        key,
        identity,
        ca.mode === "untrusted" ? otherIssuer : issuer,
        {
          trustDomain: "sigil.test",
          now: ca.mode === "expired" ? t - 10 * validityMs : t,
          validityMs,
          backdateMs: ca.backdateMs,
        },
      );
      ca.issued++;
      return {
        certificatePem: leaf.pem,
        chainPem: ca.mode === "untrusted" ? "" : inter.pem,
        serial: leaf.serial,
        notAfter: leaf.notAfter,
      };
    },
    signer(now) {
      return (req) => ca.sign(req, now());
    },
  };
  return ca;
}

/** An HTTPS `/v1/sign` server in front of a {@linkcode TestCa}. */
export interface TestCaServer {
  url: string;
  /** Bearer token the server accepts. */
  token: string;
  close(): Promise<void>;
}

export async function serveTestCa(ca: TestCa): Promise<TestCaServer> {
  // The server certificate chains to the test root (so ca_bundle = root).
  const serverKeys = await generateKeyPair();
  const serverCert = await issueServiceCertificate(
    serverKeys.publicKey,
    ca.issuer,
    {
      commonName: "test-ca",
      dnsNames: ["localhost"],
      ips: ["127.0.0.1"],
      validityMs: 3_600_000,
    },
  );
  const token = crypto.randomUUID();
  const { promise, resolve } = Promise.withResolvers<number>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: serverCert.pem + ca.intermediatePem,
    key: await exportPrivateKeyPem(serverKeys),
    onListen: (a) => resolve(a.port),
  }, async (req) => {
    const url = new URL(req.url);
    if (req.method !== "POST" || url.pathname !== "/v1/sign") {
      return Response.json({ error: { code: "not_found", message: "no" } }, {
        status: 404,
      });
    }
    if (req.headers.get("authorization") !== `Bearer ${token}`) {
      await req.body?.cancel();
      return Response.json(
        { error: { code: "unauthorized", message: "bad token" } },
        { status: 401 },
      );
    }
    const b = await req.json();
    const sreq: SignRequest = {
      csr: b.csr,
      instanceId: b.instance_id,
      app: b.app,
      space: b.space,
      org: b.org,
      ips: b.ips,
      validity: b.validity,
    };
    if (ca.mode === "refuse") {
      ca.requests.push(sreq);
      return Response.json(
        { error: { code: "rate_limited", message: "slow down" } },
        { status: 429, headers: { "retry-after": "7" } },
      );
    }
    try {
      const r = await ca.sign(sreq, Date.now());
      return Response.json({
        certificate: r.certificatePem,
        chain: r.chainPem,
        serial: r.serial,
        not_after: r.notAfter.toISOString(),
      }, { status: 201 });
    } catch (err) {
      return Response.json(
        { error: { code: "internal", message: (err as Error).message } },
        { status: 500 },
      );
    }
  });
  const port = await promise;
  return {
    url: `https://127.0.0.1:${port}`,
    token,
    close: () => server.shutdown(),
  };
}
