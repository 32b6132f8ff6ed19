// Behaviour follows UAA's token endpoint for client_credentials
// (cloudfoundry/uaa TokenEndpoint / ClientCredentialsTokenGranter): the JSON
// fields access_token, token_type "bearer", expires_in, scope, jti; a wrong
// client secret is 401 invalid_client "Bad credentials".
import assert from "node:assert/strict";
import { decodeJwt, generateKeyPair, jwtVerify } from "jose";
import { FakeClock } from "../_helpers/fake_clock.ts";
import { addClient } from "../../lib/credhub/_clients.ts";
import { TokenRevocations, uaaApp } from "../../lib/credhub/_uaa.ts";
import { freePort } from "../_helpers/ports.ts";
import { createLogger } from "../../lib/observe/mod.ts";

async function setup(clock = new FakeClock(Date.UTC(2026, 0, 1))) {
  const dir = await Deno.makeTempDir();
  const clientsFile = `${dir}/clients.json`;
  const secret = await addClient(clientsFile, "broker", [
    "credhub.write",
    "credhub.read",
  ]);
  const keys = await generateKeyPair("ES256");
  const app = uaaApp({
    clientsFile,
    signingKey: keys.privateKey,
    keyId: "k1",
    ttlSeconds: 120,
    clock,
    maxFailures: 3,
    windowMs: 60_000,
  });
  return { app, secret, keys, clock, clientsFile };
}

function form(fields: Record<string, string>): RequestInit {
  return {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields).toString(),
  };
}

Deno.test("POST /oauth/token issues a JWT with the client's scopes (form credentials)", async () => {
  const { app, secret, keys, clock } = await setup();
  const res = await app.request(
    "/oauth/token",
    form({
      grant_type: "client_credentials",
      client_id: "broker",
      client_secret: secret,
    }),
  );
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.deepEqual(Object.keys(body), [
    "access_token",
    "token_type",
    "expires_in",
    "scope",
    "jti",
  ]);
  assert.equal(body.token_type, "bearer");
  assert.equal(body.expires_in, 120);
  assert.equal(body.scope, "credhub.write credhub.read");
  const { payload, protectedHeader } = await jwtVerify(
    body.access_token,
    keys.publicKey,
    {
      issuer: "sigil-ca",
      audience: "sigil",
      currentDate: new Date(clock.now()),
    },
  );
  assert.equal(protectedHeader.kid, "k1");
  assert.equal(payload.sub, "broker");
  assert.equal(payload.client_id, "broker");
  assert.equal(payload.scope, "credhub.write credhub.read");
  assert.equal(payload.jti, body.jti);
  assert.equal(payload.exp! - payload.iat!, 120);
});

Deno.test("POST /oauth/token accepts HTTP Basic client credentials", async () => {
  const { app, secret } = await setup();
  const res = await app.request("/oauth/token", {
    ...form({ grant_type: "client_credentials" }),
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      authorization: `Basic ${btoa(`broker:${secret}`)}`,
    },
  });
  assert.equal(res.status, 200);
  assert.equal(decodeJwt((await res.json()).access_token).sub, "broker");
});

Deno.test("POST /oauth/token answers a wrong secret or unknown client as UAA: 401 invalid_client", async () => {
  const { app, secret } = await setup();
  for (
    const [id, s] of [["broker", "wrong"], ["nobody", secret], ["broker", ""]]
  ) {
    const res = await app.request(
      "/oauth/token",
      form({
        grant_type: "client_credentials",
        client_id: id!,
        client_secret: s!,
      }),
    );
    assert.equal(res.status, 401);
    assert.deepEqual(await res.json(), {
      error: "invalid_client",
      error_description: "Bad credentials",
    });
  }
});

Deno.test("POST /oauth/token refuses other grant types with 400 unsupported_grant_type", async () => {
  const { app, secret } = await setup();
  const res = await app.request(
    "/oauth/token",
    form({
      grant_type: "password",
      client_id: "broker",
      client_secret: secret,
      username: "u",
      password: "p",
    }),
  );
  assert.equal(res.status, 400);
  assert.equal((await res.json()).error, "unsupported_grant_type");
});

Deno.test("POST /oauth/token limits failed logins per client (429 + Retry-After), then recovers", async () => {
  const { app, secret, clock } = await setup();
  const bad = () =>
    app.request(
      "/oauth/token",
      form({
        grant_type: "client_credentials",
        client_id: "broker",
        client_secret: "nope",
      }),
    );
  for (let i = 0; i < 3; i++) assert.equal((await bad()).status, 401);
  const limited = await app.request(
    "/oauth/token",
    form({
      grant_type: "client_credentials",
      client_id: "broker",
      client_secret: secret,
    }),
  );
  assert.equal(limited.status, 429);
  assert.equal(limited.headers.get("retry-after"), "60");
  await limited.body?.cancel();
  await clock.tick(60_000);
  const ok = await app.request(
    "/oauth/token",
    form({
      grant_type: "client_credentials",
      client_id: "broker",
      client_secret: secret,
    }),
  );
  assert.equal(ok.status, 200);
  await ok.body?.cancel();
});

Deno.test("GET /info answers UAA's minimal shape", async () => {
  const { app } = await setup();
  const res = await app.request("http://127.0.0.1:9/info");
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.links.uaa, "http://127.0.0.1:9");
  assert.equal(body.zone_name, "uaa");
});

Deno.test("token endpoint over a real socket: curl logs in, a wrong secret gets 401", async () => {
  const { app, secret } = await setup(undefined);
  const port = freePort();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port, onListen() {} },
    app.fetch,
  );
  try {
    const curl = async (s: string) => {
      const out = await new Deno.Command("curl", {
        args: [
          "-sS",
          "-w",
          "\n%{http_code}",
          "-u",
          `broker:${s}`,
          "-d",
          "grant_type=client_credentials",
          `http://127.0.0.1:${port}/oauth/token`,
        ],
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      const at = text.lastIndexOf("\n");
      return {
        status: text.slice(at + 1),
        body: JSON.parse(text.slice(0, at)),
      };
    };
    const ok = await curl(secret);
    assert.equal(ok.status, "200");
    assert.equal(ok.body.token_type, "bearer");
    const bad = await curl("wrong");
    assert.equal(bad.status, "401");
    assert.equal(bad.body.error, "invalid_client");
  } finally {
    await server.shutdown();
  }
});

Deno.test("token endpoint logs token-issued and token-refused with known client names only, never a secret", async () => {
  const dir = await Deno.makeTempDir();
  const clientsFile = `${dir}/clients.json`;
  const secret = await addClient(clientsFile, "broker", ["credhub.read"]);
  const keys = await generateKeyPair("ES256");
  const lines: string[] = [];
  const app = uaaApp({
    clientsFile,
    signingKey: keys.privateKey,
    logger: createLogger("credhub", { sink: (l) => lines.push(l) }),
  });
  const login = async (client_id: string, client_secret: string) => {
    const res = await app.request(
      "/oauth/token",
      form({ grant_type: "client_credentials", client_id, client_secret }),
    );
    await res.body?.cancel();
  };
  await login("broker", secret);
  await login("broker", "wrong-secret");
  // A secret pasted as the client name is not a known client: not logged.
  await login(secret, secret);
  const events = lines.map((l) => JSON.parse(l));
  assert.deepEqual(
    events.map((e) => [e.event, e.client, e.reason]),
    [
      ["token-issued", "broker", undefined],
      ["token-refused", "broker", "bad-credentials"],
      ["token-refused", null, "bad-credentials"],
    ],
  );
  assert.equal(events[0].scopes, "credhub.read");
  for (const l of lines) {
    assert.ok(!l.includes(secret));
    assert.ok(!l.includes("wrong-secret"));
  }
});

Deno.test("DELETE /oauth/token/revoke/:jti: the token's own client revokes it (UAA TokenRevocationEndpoint); no token 401, unknown id 404, expired ids forgotten", async () => {
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  const dir = await Deno.makeTempDir();
  const clientsFile = `${dir}/clients.json`;
  const secret = await addClient(clientsFile, "broker", ["credhub.read"]);
  const keys = await generateKeyPair("ES256");
  const revocations = new TokenRevocations(clock);
  const app = uaaApp({
    clientsFile,
    signingKey: keys.privateKey,
    publicKey: keys.publicKey,
    revocations,
    ttlSeconds: 60,
    clock,
  });
  const res = await app.request(
    "/oauth/token",
    form({
      grant_type: "client_credentials",
      client_id: "broker",
      client_secret: secret,
    }),
  );
  const { access_token: token, jti } = await res.json();
  const revoke = (id: string, auth?: string) =>
    app.request(`/oauth/token/revoke/${id}`, {
      method: "DELETE",
      headers: auth ? { authorization: `Bearer ${auth}` } : {},
    });
  assert.equal((await revoke(jti)).status, 401);
  assert.equal((await revoke("nope", token)).status, 404);
  assert.equal(revocations.isRevoked(token), false);
  assert.equal((await revoke(jti, token)).status, 200);
  assert.equal(revocations.isRevoked(token), true);
  assert.equal(revocations.isRevoked("not a jwt"), false);
  await clock.tick(61_000);
  // Expired: the token itself no longer verifies, and its id is not live.
  assert.equal(revocations.clientOf(jti), undefined);
  assert.equal((await revoke(jti, token)).status, 401);
});
