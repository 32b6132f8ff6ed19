/**
 * The shared bearer-token verifier (lib/token): the same checks for every
 * consumer (CA, router, credhub), driven by an injected clock.
 */
import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { FakeClock } from "../_helpers/fake_clock.ts";
import { freePort } from "../_helpers/ports.ts";
import {
  createTokenVerifier,
  jwks,
  mintToken,
  TokenError,
} from "../../lib/token/mod.ts";
import type { TokenGrant } from "../../lib/token/mod.ts";

const GRANT: TokenGrant = {
  subject: "cell-1",
  scopes: ["cert.issue"],
  apps: ["*"],
  spaces: ["*"],
  orgs: ["*"],
  cidrs: ["10.0.0.0/8"],
};

async function keys(): Promise<CryptoKeyPair> {
  return await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-256" },
    true,
    ["sign", "verify"],
  );
}

async function refusal(p: Promise<unknown>): Promise<TokenError> {
  const err = await p.then(() => undefined, (e) => e);
  assert.ok(err instanceof TokenError, `expected TokenError, got ${err}`);
  return err;
}

Deno.test("createTokenVerifier() returns claims and refuses a missing scope with 403", async () => {
  const tokenKeys = await keys();
  const clock = new FakeClock(Date.now());
  const jwt = await mintToken({ tokenKeys }, GRANT, { now: clock.now() });
  const v = await createTokenVerifier({
    publicKey: tokenKeys.publicKey,
    clock,
  });
  const claims = await v.verifyAuthorization(`bearer ${jwt}`, {
    scopes: ["cert.issue"],
  });
  assert.equal(claims.subject, "cell-1");
  assert.deepEqual(claims.scopes, ["cert.issue"]);
  const err = await refusal(v.verify(jwt, { scopes: ["credhub.read"] }));
  assert.equal(err.reason, "forbidden");
  assert.equal(err.status, 403);
  assert.ok(!err.message.includes(jwt.slice(0, 20)));
});

Deno.test("createTokenVerifier() refuses missing, malformed, forged and expired tokens with 401", async () => {
  const tokenKeys = await keys();
  const clock = new FakeClock(Date.now());
  const v = await createTokenVerifier({
    publicKey: tokenKeys.publicKey,
    clock,
  });
  assert.equal(
    (await refusal(v.verifyAuthorization(undefined))).reason,
    "missing",
  );
  assert.equal((await refusal(v.verify("abc.def.ghi"))).reason, "malformed");
  const forged = await mintToken({ tokenKeys: await keys() }, GRANT);
  assert.equal((await refusal(v.verify(forged))).reason, "signature");
  const short = await mintToken({ tokenKeys }, GRANT, {
    now: clock.now(),
    ttlMs: 60_000,
  });
  await v.verify(short); // cached while unexpired
  await clock.tick(120_000);
  const expired = await refusal(v.verify(short));
  assert.equal(expired.reason, "expired");
  assert.equal(expired.status, 401);
});

Deno.test("createTokenVerifier() checks issuer, audience and requiredClaims", async () => {
  const tokenKeys = await keys();
  const v = await createTokenVerifier({
    publicKey: tokenKeys.publicKey,
    requiredClaims: ["exp", "sub"],
  });
  const noSub = await new SignJWT({ scope: "routes.write" })
    .setProtectedHeader({ alg: "ES256" })
    .setIssuer("sigil-ca").setAudience("sigil").setExpirationTime("5m")
    .sign(tokenKeys.privateKey);
  const err = await refusal(v.verify(noSub));
  assert.equal(err.reason, "claims");
  assert.equal(err.claim, "sub");
  const otherAud = await new SignJWT({ scope: "routes.write" })
    .setProtectedHeader({ alg: "ES256" })
    .setIssuer("sigil-ca").setAudience("credhub").setSubject("p")
    .setExpirationTime("5m").sign(tokenKeys.privateKey);
  assert.equal((await refusal(v.verify(otherAud))).claim, "aud");
  const credhub = await createTokenVerifier({
    publicKey: tokenKeys.publicKey,
    audience: "credhub",
  });
  assert.equal((await credhub.verify(otherAud)).subject, "p");
});

Deno.test("createTokenVerifier() fetches the JWKS through the injected fetch and answers 503 when it fails", async () => {
  const tokenKeys = await keys();
  const { jwks } = await import("../../lib/token/mod.ts");
  const set = await jwks({ tokenKeys });
  let calls = 0;
  let up = true;
  const fakeFetch = ((_u: string | URL | Request) => {
    calls++;
    return up
      ? Promise.resolve(Response.json(set))
      : Promise.reject(new TypeError("connection refused"));
  }) as typeof fetch;
  const jwt = await mintToken({ tokenKeys }, {
    ...GRANT,
    scopes: ["routes.write"],
  });
  const v = await createTokenVerifier({
    jwksUrl: "https://ca.invalid/v1/jwks.json",
    fetch: fakeFetch,
  });
  assert.equal(
    (await v.verify(jwt, { scopes: ["routes.write"] })).subject,
    "cell-1",
  );
  assert.equal(calls, 1);
  up = false;
  const cold = await createTokenVerifier({
    jwksUrl: "https://ca.invalid/v1/jwks.json",
    fetch: fakeFetch,
  });
  const err = await refusal(cold.verify(jwt));
  assert.equal(err.reason, "unavailable");
  assert.equal(err.status, 503);
});

Deno.test("createTokenVerifier() with several JWKS URLs (CA replicas) moves past a closed port and a 503 to the one that serves the keys", async () => {
  const tokenKeys = await keys();
  const jwt = await mintToken({ tokenKeys }, GRANT);
  const set = await jwks({ tokenKeys });
  const hits = { down: 0, up: 0 };
  const serve = (handler: () => Response) =>
    Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      handler,
    );
  const down = serve(() => {
    hits.down++;
    return Response.json({ error: "restarting" }, { status: 503 });
  });
  const up = serve(() => {
    hits.up++;
    return Response.json(set);
  });
  const url = (s: Deno.HttpServer<Deno.NetAddr>) =>
    `http://127.0.0.1:${s.addr.port}/v1/jwks.json`;
  const closed = `http://127.0.0.1:${freePort()}/v1/jwks.json`;
  try {
    const v = await createTokenVerifier({
      jwksUrl: [closed, url(down), url(up)],
    });
    assert.equal(
      (await v.verify(jwt, { scopes: ["cert.issue"] })).subject,
      "cell-1",
    );
    assert.deepEqual(hits, { down: 1, up: 1 });
    const v2 = await createTokenVerifier({ jwksUrl: [closed, url(down)] });
    const err = await refusal(v2.verify(jwt));
    assert.equal(err.reason, "unavailable");
    assert.equal(err.status, 503);
  } finally {
    await down.shutdown();
    await up.shutdown();
  }
});
