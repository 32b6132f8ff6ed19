/**
 * Property tests of the CA's `POST /v1/sign` over a real socket
 * (lib/ca/_api.ts, `SignRequest` and the CSR checks of lib/ca/_authority.ts,
 * in the shape of Diego's instance identity requests): a valid request with
 * one field replaced by a random value, and CSRs corrupted byte by byte,
 * truncated or replaced. Each is issued (and matches what was asked) or
 * refused with a 4xx ERR_CA_* error naming the field, never a 5xx, and a
 * refusal adds no issued certificate to the ledger.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import fc from "fast-check";
import { Pkcs10CertificateRequest, X509Certificate } from "@peculiar/x509";
import {
  CA_FILES,
  CertificateAuthority,
  createCaApp,
  initCa,
  Ledger,
  mintToken,
} from "../../lib/ca/mod.ts";
import { createCsr, generateKeyPair } from "../../lib/pki/mod.ts";
import { bounded, jsonValue, nastyString, params } from "./_fuzz.ts";

const INSTANCE = "fuzz-instance";
const FIELDS = [
  "csr",
  "instance_id",
  "app",
  "space",
  "org",
  "ips",
  "validity",
] as const;

async function startCa() {
  const dir = await Deno.makeTempDir({ prefix: "sigil-fuzz-ca-" });
  const store = await initCa(join(dir, "ca"), { trustDomain: "fuzz.example" });
  const ledger = Ledger.open(join(dir, "ca", CA_FILES.ledger));
  const ca = new CertificateAuthority(store, ledger, {
    rateLimit: { perSecond: 1e6, burst: 1e6 },
  });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    createCaApp(ca, { maxBodyBytes: 65536 }).fetch,
  );
  const token = await mintToken(store, {
    subject: "fuzz-cell",
    scopes: ["cert.issue"],
    apps: ["*"],
    spaces: ["*"],
    orgs: ["*"],
    cidrs: ["10.0.0.0/8"],
  });
  const csr = await createCsr(await generateKeyPair());
  const issued = async () =>
    (await ledger.list({ limit: 100_000 })).filter((r) => r.result === "issued")
      .length;
  return {
    csr,
    issued,
    async sign(body: string) {
      const res = await bounded(
        "POST /v1/sign",
        () =>
          fetch(`http://127.0.0.1:${server.addr.port}/v1/sign`, {
            method: "POST",
            headers: {
              authorization: `Bearer ${token}`,
              "content-type": "application/json",
            },
            body,
          }),
      );
      const text = await res.text();
      return { status: res.status, json: JSON.parse(text) };
    },
    async close() {
      await server.shutdown();
      ledger.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

function valid(csr: string): Record<string, unknown> {
  return {
    csr,
    instance_id: INSTANCE,
    app: "app-1",
    space: "space-1",
    org: "org-1",
    ips: ["10.0.0.7"],
    validity: "1h",
  };
}

const fieldValue = fc.oneof(
  jsonValue,
  nastyString,
  fc.array(nastyString, { maxLength: 3 }),
  fc.constantFrom("", "0s", "-1h", "999h", ["::1"], ["10.0.0.1", "x"], null),
);

Deno.test("fuzz POST /v1/sign: one field replaced by a random value is issued as asked or refused with a 4xx naming the field, and a refusal issues nothing", async () => {
  const ca = await startCa();
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...FIELDS, "extra"),
        fc.oneof(fieldValue, fc.constant(undefined)),
        async (field, value) => {
          const body = valid(ca.csr);
          if (value === undefined) delete body[field];
          else body[field] = value;
          const before = await ca.issued();
          const { status, json } = await ca.sign(JSON.stringify(body));
          assert.ok(status < 500, `status ${status}: ${JSON.stringify(json)}`);
          if (status === 201) {
            assert.equal(await ca.issued(), before + 1);
            assert.match(json.certificate, /^-----BEGIN CERTIFICATE-----/);
            return;
          }
          assert.ok([400, 403].includes(status), `status ${status}`);
          assert.match(json.error.code, /^ERR_CA_/);
          const named = field === "csr"
            ? /csr|CSR/
            : field === "ips"
            ? /ips|address/
            : new RegExp(field);
          assert.match(json.error.message, named);
          assert.equal(
            await ca.issued(),
            before,
            "a refusal issued a certificate",
          );
        },
      ),
      params(),
    );
  } finally {
    await ca.close();
  }
});

/** The CSR's DER, changed: a byte flipped, cut short, or bytes appended. */
const corruption = fc.oneof(
  fc.record({
    kind: fc.constant("flip" as const),
    at: fc.nat(),
    xor: fc.integer({ min: 1, max: 255 }),
  }),
  fc.record({ kind: fc.constant("cut" as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant("append" as const),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
  }),
  fc.record({
    kind: fc.constant("random" as const),
    bytes: fc.uint8Array({ maxLength: 300 }),
  }),
);

function pemToDer(pem: string): Uint8Array {
  const b64 = pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

function derToPem(der: Uint8Array): string {
  const b64 = btoa(String.fromCharCode(...der));
  return `-----BEGIN CERTIFICATE REQUEST-----\n${
    b64.match(/.{1,64}/g)?.join("\n") ?? ""
  }\n-----END CERTIFICATE REQUEST-----\n`;
}

Deno.test("fuzz POST /v1/sign: corrupted, truncated or random CSRs are refused with 400 ERR_CA_CSR_INVALID and issue nothing (or, changed only in the signature encoding, issue for the original key)", async () => {
  const ca = await startCa();
  const der = pemToDer(ca.csr);
  const originalKey = new Uint8Array(
    new Pkcs10CertificateRequest(ca.csr).publicKey.rawData,
  );
  try {
    await fc.assert(
      fc.asyncProperty(corruption, async (c) => {
        let bad: Uint8Array;
        if (c.kind === "flip") {
          bad = der.slice();
          bad[c.at % der.length]! ^= c.xor;
        } else if (c.kind === "cut") bad = der.slice(0, c.at % der.length);
        else if (c.kind === "append") {
          bad = new Uint8Array([...der, ...c.bytes]);
        } else bad = c.bytes;
        const before = await ca.issued();
        const { status, json } = await ca.sign(
          JSON.stringify({ ...valid(""), csr: derToPem(bad) }),
        );
        if (status === 201) {
          // A change inside the signature's own encoding (outside what it
          // signs) can still verify: the certificate then carries the
          // original key, nothing else.
          assert.deepEqual(
            new Uint8Array(
              new X509Certificate(json.certificate).publicKey.rawData,
            ),
            originalKey,
          );
          return;
        }
        assert.equal(status, 400, JSON.stringify(json));
        assert.match(json.error.code, /^ERR_CA_(CSR|REQUEST)_INVALID$/);
        assert.match(json.error.message, /CSR|csr/);
        assert.doesNotMatch(json.error.message, /BEGIN|[A-Za-z0-9+/]{40}/);
        assert.equal(await ca.issued(), before);
      }),
      params(),
    );
  } finally {
    await ca.close();
  }
});

Deno.test("POST /v1/sign refuses a CSR with bytes after its DER structure, as Go's x509.ParseCertificateRequest (found by the fuzzer)", async () => {
  const ca = await startCa();
  try {
    const der = pemToDer(ca.csr);
    const { status, json } = await ca.sign(JSON.stringify({
      ...valid(""),
      csr: derToPem(new Uint8Array([...der, 0])),
    }));
    assert.equal(status, 400);
    assert.equal(json.error.code, "ERR_CA_CSR_INVALID");
    assert.match(json.error.message, /bytes after the end of its DER/);
    const ok = await ca.sign(JSON.stringify(valid(ca.csr)));
    assert.equal(ok.status, 201);
  } finally {
    await ca.close();
  }
});
