/**
 * Route-service signatures, table-tested against what gorouter's own tests
 * expect: `routeservice/routeservice_config_test.go` (ValidateRequest:
 * expired, invalid, current vs previous key), `routeservice/signature_test.go`
 * (metadata carries the nonce) and `handlers/routeservice_test.go` (signature
 * without metadata). The wire format is checked independently with WebCrypto
 * (PBKDF2 and AES-GCM), not with the code under test; the real gorouter
 * checks it in route_service_interop_test.ts.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  buildSignature,
  deriveRouteServiceKey,
  formatGoTime,
  GO_ZERO_TIME,
  parseGoTime,
  readSignature,
  RouteServiceSignatureError,
  RouteServiceSigner,
} from "../../lib/router/_route_service.ts";

const NOW = Date.UTC(2026, 11, 4, 18, 33, 36, 120);
const URL_A = "https://my_host.com/resource+9-9_9?query=dog%0Acat&query$2=345";

/** The AES key derived independently with WebCrypto. */
async function webCryptoKey(secret: string): Promise<CryptoKey> {
  const base = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    "PBKDF2",
    false,
    ["deriveBits"],
  );
  const bits = await crypto.subtle.deriveBits(
    {
      name: "PBKDF2",
      hash: "SHA-256",
      salt: new Uint8Array(0),
      iterations: 100001,
    },
    base,
    128,
  );
  return crypto.subtle.importKey("raw", bits, "AES-GCM", false, [
    "encrypt",
    "decrypt",
  ]);
}

function b64urlPadded(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64").replaceAll("+", "-")
    .replaceAll("/", "_");
}

Deno.test("deriveRouteServiceKey() is PBKDF2-SHA256, empty salt, 100001 rounds, 16 bytes (gorouter main.go createCrypto)", async () => {
  const key = deriveRouteServiceKey("kCvXxNMB0JO2vinxoru9Hg==");
  assert.equal(key.length, 16);
  const base = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode("kCvXxNMB0JO2vinxoru9Hg=="),
    "PBKDF2",
    false,
    ["deriveBits"],
  );
  const bits = await crypto.subtle.deriveBits(
    {
      name: "PBKDF2",
      hash: "SHA-256",
      salt: new Uint8Array(0),
      iterations: 100001,
    },
    base,
    128,
  );
  assert.deepEqual(Buffer.from(key), Buffer.from(bits));
});

Deno.test("sign() writes gorouter's headers: padded base64url, AES-GCM with the tag appended, Go's JSON (signature_test.go)", async () => {
  const signer = new RouteServiceSigner("my-secret");
  const url = "https://app.example.com/a?b=1&c=<2>";
  const h = signer.sign(url, NOW);
  assert.match(h.signature, /^[A-Za-z0-9_-]+=*$/);
  assert.equal(h.signature.length % 4, 0);
  const meta = JSON.parse(Buffer.from(h.metadata, "base64").toString());
  assert.deepEqual(Object.keys(meta), ["nonce"]);
  const nonce = Buffer.from(meta.nonce, "base64");
  assert.equal(nonce.length, 12);
  assert.equal(Buffer.from(nonce).toString("base64"), meta.nonce); // std, padded
  const plain = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: nonce },
    await webCryptoKey("my-secret"),
    Buffer.from(h.signature, "base64"),
  );
  // Field order, Go's HTML escaping of & < >, RFC 3339 with trimmed zeros.
  assert.equal(
    new TextDecoder().decode(plain),
    '{"forwarded_url":"https://app.example.com/a?b=1\\u0026c=\\u003c2\\u003e","requested_time":"2026-12-04T18:33:36.12Z"}',
  );
});

Deno.test("verify() accepts a signature built elsewhere with the same secret (WebCrypto, Go's nanosecond time with an offset)", async () => {
  const nonce = crypto.getRandomValues(new Uint8Array(12));
  const json =
    '{"forwarded_url":"https://a.example.com/x","requested_time":"2026-12-04T14:33:30.123456789-04:00"}';
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv: nonce },
      await webCryptoKey("shared"),
      new TextEncoder().encode(json),
    ),
  );
  const metadata = b64urlPadded(
    new TextEncoder().encode(
      `{"nonce":"${Buffer.from(nonce).toString("base64")}"}`,
    ),
  );
  const c = new RouteServiceSigner("shared").verify(
    b64urlPadded(sealed),
    metadata,
    NOW,
  );
  assert.equal(c.forwardedUrl, "https://a.example.com/x");
  assert.equal(c.requestedAt, Date.UTC(2026, 11, 4, 18, 33, 30, 123));
});

Deno.test("verify() mirrors gorouter's ValidateRequest table (routeservice_config_test.go, handlers/routeservice_test.go)", () => {
  const current = new RouteServiceSigner("current");
  const withPrevious = new RouteServiceSigner("current", {
    previousSecret: "previous",
  });
  const previous = new RouteServiceSigner("previous");
  const other = new RouteServiceSigner("other");
  const fresh = current.sign(URL_A, NOW);
  const old = current.sign(URL_A, NOW - 61_000);
  const byPrevious = previous.sign(URL_A, NOW);
  const oldByPrevious = previous.sign(URL_A, NOW - 120_000);
  const byOther = other.sign(URL_A, NOW);
  const edge = current.sign(URL_A, NOW - 60_000);
  const cases: {
    name: string;
    signer: RouteServiceSigner;
    sig: string;
    meta: string;
    expect: "ok" | "expired" | RegExp;
  }[] = [
    {
      name: "decrypts a valid signature and returns the decrypted signature",
      signer: current,
      sig: fresh.signature,
      meta: fresh.metadata,
      expect: "ok",
    },
    {
      name: "exactly at the timeout is still valid (time.Since > timeout)",
      signer: current,
      sig: edge.signature,
      meta: edge.metadata,
      expect: "ok",
    },
    {
      name: "when the timestamp is expired",
      signer: current,
      sig: old.signature,
      meta: old.metadata,
      expect: "expired",
    },
    {
      name: "when the signature is invalid",
      signer: current,
      sig: "c29tZXRoaW5nZWxzZQ==",
      meta: fresh.metadata,
      expect: /authentication failed/,
    },
    {
      name: "signature but no metadata header (handlers: 502)",
      signer: current,
      sig: fresh.signature,
      meta: "",
      expect: /no metadata found/,
    },
    {
      name: "no previous key in the configuration: rejects the signature",
      signer: current,
      sig: byPrevious.signature,
      meta: byPrevious.metadata,
      expect: /authentication failed/,
    },
    {
      name: "the header key matches the previous key: validates",
      signer: withPrevious,
      sig: byPrevious.signature,
      meta: byPrevious.metadata,
      expect: "ok",
    },
    {
      name: "previous key, expired signature",
      signer: withPrevious,
      sig: oldByPrevious.signature,
      meta: oldByPrevious.metadata,
      expect: "expired",
    },
    {
      name: "the header key matches neither key: rejects the signature",
      signer: withPrevious,
      sig: byOther.signature,
      meta: byOther.metadata,
      expect: /authentication failed/,
    },
    {
      name:
        "signature in standard base64 (+ and /) is refused like Go's URLEncoding",
      signer: current,
      sig: "+/" + fresh.signature.slice(2),
      meta: fresh.metadata,
      expect: /X-CF-Proxy-Signature is not padded base64url/,
    },
    {
      name: "unpadded metadata is refused",
      signer: current,
      sig: fresh.signature,
      meta: fresh.metadata.replace(/=+$/, "") + "A",
      expect: /X-CF-Proxy-Metadata is not padded base64url|not JSON/,
    },
    {
      name: "metadata that is not JSON",
      signer: current,
      sig: fresh.signature,
      meta: b64urlPadded(new TextEncoder().encode("nonce")),
      expect: /X-CF-Proxy-Metadata is not JSON/,
    },
    {
      name: "nonce of the wrong length",
      signer: current,
      sig: fresh.signature,
      meta: b64urlPadded(new TextEncoder().encode('{"nonce":"AAAA"}')),
      expect: /incorrect nonce length/,
    },
  ];
  for (const c of cases) {
    const expect = c.expect;
    if (expect === "ok") {
      const got = c.signer.verify(c.sig, c.meta, NOW);
      assert.equal(got.forwardedUrl, URL_A, c.name);
      continue;
    }
    assert.throws(
      () => c.signer.verify(c.sig, c.meta, NOW),
      (err: unknown) => {
        assert.ok(err instanceof RouteServiceSignatureError, c.name);
        if (expect === "expired") {
          assert.equal(err.code, "ERR_ROUTER_RS_SIGNATURE_EXPIRED", c.name);
          assert.equal(err.message, "route service request expired", c.name);
        } else {
          assert.equal(err.code, "ERR_ROUTER_RS_SIGNATURE_INVALID", c.name);
          assert.match(err.message, expect, c.name);
        }
        return true;
      },
      c.name,
    );
  }
});

Deno.test("readSignature() leaves a missing requested_time at Go's zero time, so verify() calls it expired", async () => {
  const key = deriveRouteServiceKey("k");
  const nonce = crypto.getRandomValues(new Uint8Array(12));
  const sealed = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv: nonce },
    await webCryptoKey("k"),
    new TextEncoder().encode('{"Forwarded_URL":"https://x.example.com/"}'),
  );
  const meta = b64urlPadded(
    new TextEncoder().encode(
      `{"nonce":"${Buffer.from(nonce).toString("base64")}"}`,
    ),
  );
  const sig = b64urlPadded(new Uint8Array(sealed));
  // Go matches JSON field names case-insensitively.
  assert.deepEqual(readSignature(sig, meta, key), {
    forwardedUrl: "https://x.example.com/",
    requestedAt: GO_ZERO_TIME,
  });
  assert.throws(
    () => new RouteServiceSigner("k").verify(sig, meta, NOW),
    /route service request expired/,
  );
});

Deno.test("formatGoTime() and parseGoTime() follow Go's RFC 3339 JSON time", () => {
  assert.equal(
    formatGoTime(Date.UTC(2026, 0, 2, 3, 4, 5, 0)),
    "2026-01-02T03:04:05Z",
  );
  assert.equal(
    formatGoTime(Date.UTC(2026, 0, 2, 3, 4, 5, 100)),
    "2026-01-02T03:04:05.1Z",
  );
  assert.equal(parseGoTime("0001-01-01T00:00:00Z"), GO_ZERO_TIME);
  assert.equal(
    parseGoTime("2026-01-02T05:04:05.999999999+02:00"),
    Date.UTC(2026, 0, 2, 3, 4, 5, 999),
  );
  assert.throws(() => parseGoTime("2026-01-02 03:04:05Z"), /RFC 3339/);
  // Round trip through buildSignature/readSignature keeps the ms.
  const key = deriveRouteServiceKey("k");
  const h = buildSignature(key, { forwardedUrl: "u", requestedAt: NOW + 7 });
  assert.equal(
    readSignature(h.signature, h.metadata, key).requestedAt,
    NOW + 7,
  );
});

Deno.test("RouteServiceSignatureError messages never contain the secret", () => {
  const secret = "do-not-log-me";
  const signer = new RouteServiceSigner(secret);
  const h = new RouteServiceSigner("x").sign("u", NOW);
  try {
    signer.verify(h.signature, h.metadata, NOW);
    assert.fail("accepted a foreign signature");
  } catch (err) {
    assert.ok(!String((err as Error).message).includes(secret));
  }
});
