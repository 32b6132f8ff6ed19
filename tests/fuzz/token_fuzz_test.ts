/**
 * Property tests of the bearer-token verifier (lib/token/_verify.ts) that
 * the CA, the router API and credhub share: random text, corrupted tokens,
 * and tokens correctly signed with the CA key but carrying arbitrary claims
 * and headers. Each is accepted with well-typed claims or refused with a
 * TokenError that never quotes the token; nothing else escapes.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { base64url, SignJWT } from "jose";
import type { JWTPayload } from "jose";
import {
  createTokenVerifier,
  mintToken,
  TokenError,
} from "../../lib/token/mod.ts";
import type { TokenClaims, TokenVerifier } from "../../lib/token/mod.ts";
import { bounded, jsonValue, nastyString, params } from "./_fuzz.ts";

const tokenKeys = await crypto.subtle.generateKey(
  { name: "ECDSA", namedCurve: "P-256" },
  true,
  ["sign", "verify"],
);

async function withVerifier(fn: (v: TokenVerifier) => Promise<void>) {
  const v = await createTokenVerifier({
    publicKey: tokenKeys.publicKey,
    requiredClaims: ["exp", "sub"],
  });
  try {
    await fn(v);
  } finally {
    v.close();
  }
}

function assertClaims(c: TokenClaims) {
  assert.equal(typeof c.subject, "string");
  assert.equal(typeof c.id, "string");
  for (const list of [c.scopes, c.apps, c.spaces, c.orgs, c.cidrs]) {
    assert.ok(Array.isArray(list));
    for (const x of list) assert.equal(typeof x, "string");
  }
  assert.ok(!Number.isNaN(c.expiresAt.getTime()), "expiresAt is a date");
}

/** Verifies; returns the claims or the refusal; fails on anything else. */
async function check(
  v: TokenVerifier,
  header: string | undefined,
  token: string,
): Promise<TokenClaims | TokenError> {
  return await bounded("verify", async () => {
    try {
      return await v.verifyAuthorization(header, { scopes: ["routes.write"] });
    } catch (err) {
      assert.ok(err instanceof TokenError, String(err));
      assert.ok([401, 403].includes(err.status), err.message);
      if (token.length >= 12) {
        assert.ok(!err.message.includes(token), "the message quotes the token");
      }
      for (const part of token.split(".")) {
        if (part.length >= 12) {
          assert.ok(
            !err.message.includes(part),
            "the message quotes a token part",
          );
        }
      }
      return err;
    }
  });
}

Deno.test("fuzz token verifier: random Authorization values are refused with a TokenError that does not quote them", async () => {
  await withVerifier(async (v) => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          nastyString,
          nastyString.map((s) => `Bearer ${s}`),
          fc.tuple(nastyString, nastyString, nastyString).map((p) =>
            `Bearer ${p.join(".")}`
          ),
          fc.tuple(jsonValue, jsonValue).map(([h, p]) =>
            `Bearer ${base64url.encode(JSON.stringify(h))}.${
              base64url.encode(JSON.stringify(p))
            }.${base64url.encode(crypto.getRandomValues(new Uint8Array(64)))}`
          ),
        ),
        async (header) => {
          const r = await check(v, header, header.replace(/^Bearer /, ""));
          assert.ok(r instanceof TokenError, "random text was accepted");
        },
      ),
      params(2),
    );
  });
});

Deno.test("fuzz token verifier: a valid token with one character changed is refused (or still means the same claims)", async () => {
  const jwt = await mintToken({ tokenKeys }, {
    subject: "fuzz",
    scopes: ["routes.write"],
    apps: ["*"],
    spaces: ["*"],
    orgs: ["*"],
    cidrs: [],
  });
  await withVerifier(async (v) => {
    const good = await v.verify(jwt);
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: jwt.length - 1 }),
        fc.constantFrom(..."AZaz09-_.=+/ \u0000"),
        async (at, ch) => {
          const bad = jwt.slice(0, at) + ch + jwt.slice(at + 1);
          const r = await check(v, `Bearer ${bad}`, bad);
          if (!(r instanceof TokenError)) {
            // Base64url's last character carries unused bits.
            assert.deepEqual(r, good);
          }
        },
      ),
      params(2),
    );
  });
});

const claimName = fc.constantFrom(
  "iss",
  "aud",
  "sub",
  "exp",
  "nbf",
  "iat",
  "jti",
  "scope",
  "apps",
  "spaces",
  "orgs",
  "cidrs",
);
const claimValue = fc.oneof(
  jsonValue,
  nastyString,
  fc.array(nastyString, { maxLength: 3 }),
  fc.integer(),
  fc.double(),
  fc.constantFrom("sigil-ca", "sigil", "routes.write", ["sigil"]),
);

Deno.test("fuzz token verifier: tokens signed with the CA key but carrying arbitrary claims are accepted with well-typed claims or refused with a TokenError", async () => {
  await withVerifier(async (v) => {
    await fc.assert(
      fc.asyncProperty(
        fc.dictionary(claimName, claimValue),
        fc.boolean(),
        async (extra, base) => {
          const claims: Record<string, unknown> = base
            ? {
              iss: "sigil-ca",
              aud: "sigil",
              sub: "fuzz",
              exp: Math.floor(Date.now() / 1000) + 300,
              scope: "routes.write",
              ...extra,
            }
            : extra;
          // jose will not sign some claims (an infinite nbf): nothing to send.
          const jwt = await new SignJWT(claims as JWTPayload)
            .setProtectedHeader({ alg: "ES256" })
            .sign(tokenKeys.privateKey).catch((e) => {
              if (e instanceof TypeError) return undefined;
              throw e;
            });
          if (jwt === undefined) return;
          const r = await check(v, `Bearer ${jwt}`, jwt);
          if (!(r instanceof TokenError)) assertClaims(r);
        },
      ),
      params(2),
    );
  });
});

Deno.test("token verifier refuses a signed token whose sub is not a string and caps a far-future exp (found by the fuzzer)", async () => {
  const sign = (claims: Record<string, unknown>) =>
    new SignJWT(
      {
        iss: "sigil-ca",
        aud: "sigil",
        scope: "routes.write",
        ...claims,
      } as JWTPayload,
    )
      .setProtectedHeader({ alg: "ES256" })
      .sign(tokenKeys.privateKey);
  await withVerifier(async (v) => {
    const exp = Math.floor(Date.now() / 1000) + 300;
    const arraySub = await sign({ sub: [], exp });
    const refused = await v.verify(arraySub).catch((e) => e);
    assert.ok(refused instanceof TokenError);
    assert.equal(refused.claim, "sub");
    assert.match(refused.message, /claim "sub" must be a string/);
    const far = await v.verify(await sign({ sub: "x", exp: 8640000000000.5 }));
    assert.equal(far.expiresAt.getTime(), 8.64e15);
  });
});
