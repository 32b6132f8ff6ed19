import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import {
  CA_FILES,
  CertificateAuthority,
  createCaApp,
  initCa,
  Ledger,
  mintToken,
} from "../../lib/ca/mod.ts";
import type { CaStore, TokenGrant } from "../../lib/ca/mod.ts";
import { FakeClock } from "../_helpers/fake_clock.ts";
import { SignJWT } from "jose";
import { TOKEN_AUDIENCE, TOKEN_ISSUER } from "../../lib/token/mod.ts";
import {
  createCsr,
  generateKeyPair,
  parseCertificate,
} from "../../lib/pki/mod.ts";

interface Fixture {
  dir: string;
  store: CaStore;
  ledger: Ledger;
  app: ReturnType<typeof createCaApp>;
  clock: FakeClock;
  token: (g?: Partial<TokenGrant>, ttlMs?: number) => Promise<string>;
  close(): Promise<void>;
}

const GRANT: TokenGrant = {
  subject: "cell-1",
  scopes: ["cert.issue"],
  apps: ["app-*"],
  spaces: ["space-1"],
  orgs: ["*"],
  cidrs: ["10.0.0.0/8"],
};

async function fixture(opts: { burst?: number } = {}): Promise<Fixture> {
  const dir = await Deno.makeTempDir();
  const clock = new FakeClock(Date.now());
  const store = await initCa(join(dir, "ca"), { trustDomain: "prod.example" });
  const ledger = Ledger.open(join(dir, "ca", CA_FILES.ledger));
  const ca = new CertificateAuthority(store, ledger, {
    clock,
    rateLimit: { perSecond: 1, burst: opts.burst ?? 100 },
  });
  return {
    dir,
    store,
    ledger,
    clock,
    app: createCaApp(ca, { maxBodyBytes: 65536 }),
    token: (g = {}, ttlMs) =>
      mintToken(store, { ...GRANT, ...g }, { ttlMs, now: clock.now() }),
    async close() {
      ledger.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function body(extra: Record<string, unknown> = {}) {
  return {
    csr: await createCsr(await generateKeyPair()),
    instance_id: "6a1c2f7e-aaaa",
    app: "app-42",
    space: "space-1",
    org: "org-9",
    ips: ["10.0.0.7"],
    ...extra,
  };
}

function post(f: Fixture, payload: unknown, token?: string) {
  const headers: Record<string, string> = {
    "content-type": "application/json",
  };
  if (token) headers.authorization = `Bearer ${token}`;
  return f.app.request("/v1/sign", {
    method: "POST",
    headers,
    body: typeof payload === "string" ? payload : JSON.stringify(payload),
  });
}

async function expectError(
  res: Response,
  status: number,
  code: string,
  pattern?: RegExp,
) {
  assert.equal(res.status, status);
  const json = await res.json();
  assert.equal(json.error.code, code);
  if (pattern) assert.match(json.error.message, pattern);
  return json.error.message as string;
}

Deno.test("POST /v1/sign issues a certificate for an identity inside the token's claims", async () => {
  const f = await fixture();
  try {
    const res = await post(f, await body({ validity: "2h" }), await f.token());
    assert.equal(res.status, 201);
    const json = await res.json();
    const info = parseCertificate(json.certificate);
    assert.equal(info.identity?.instanceId, "6a1c2f7e-aaaa");
    assert.deepEqual(info.ips, ["10.0.0.7"]);
    assert.equal(info.identity?.trustDomain, "prod.example");
    assert.equal(json.serial, info.serial);
    assert.equal(json.chain, f.store.intermediatePem);
    const lifetime = info.notAfter.getTime() - f.clock.now();
    assert.ok(
      Math.abs(lifetime - 2 * 3_600_000) < 2000,
      `lifetime ${lifetime}`,
    );
    const rows = f.ledger.listSync({ instanceId: "6a1c2f7e-aaaa" });
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.result, "issued");
    assert.equal(rows[0]!.serial, info.serial);
    assert.equal(rows[0]!.caller, "cell-1");
  } finally {
    await f.close();
  }
});

Deno.test("POST /v1/sign answers 400 naming the bad field", async () => {
  const f = await fixture();
  try {
    const t = await f.token();
    await expectError(
      await post(f, "{not json", t),
      400,
      "ERR_CA_REQUEST_INVALID",
      /not valid JSON/,
    );
    await expectError(
      await post(f, await body({ csr: "garbage" }), t),
      400,
      "ERR_CA_CSR_INVALID",
      /CSR/,
    );
    await expectError(
      await post(f, await body({ app: "app-1,OU=admin" }), t),
      400,
      "ERR_CA_IDENTITY_INVALID",
      /app/,
    );
    await expectError(
      await post(f, await body({ ips: ["not-an-ip"] }), t),
      400,
      "ERR_CA_IDENTITY_INVALID",
      /ips/,
    );
    await expectError(
      await post(f, await body({ colour: "red" }), t),
      400,
      "ERR_CA_REQUEST_INVALID",
      /"colour"/,
    );
    await expectError(
      await post(f, await body({ instance_id: undefined }), t),
      400,
      "ERR_CA_REQUEST_INVALID",
      /instance_id/,
    );
    await expectError(
      await post(f, await body({ validity: "999h" }), t),
      400,
      "ERR_CA_REQUEST_INVALID",
      /validity/,
    );
    await expectError(
      await post(f, await body({ validity: "soon" }), t),
      400,
      "ERR_CA_REQUEST_INVALID",
      /validity/,
    );
    const refused = f.ledger.listSync().filter((r) => r.result === "refused");
    assert.equal(refused.length, 8);
  } finally {
    await f.close();
  }
});

Deno.test("POST /v1/sign answers 401 for a missing, forged or expired token without echoing it", async () => {
  const f = await fixture();
  try {
    await expectError(
      await post(f, await body()),
      401,
      "ERR_CA_UNAUTHENTICATED",
      /Missing bearer token/,
    );
    const other = await fixture();
    const forged = await other.token();
    await other.close();
    const msg = await expectError(
      await post(f, await body(), forged),
      401,
      "ERR_CA_UNAUTHENTICATED",
      /signature/,
    );
    assert.ok(!msg.includes(forged.slice(0, 20)));
    await expectError(
      await post(f, await body(), "abc.def.ghi"),
      401,
      "ERR_CA_UNAUTHENTICATED",
      /not a valid JWT/,
    );
    const short = await f.token({}, 60_000);
    await f.clock.tick(120_000);
    await expectError(
      await post(f, await body(), short),
      401,
      "ERR_CA_UNAUTHENTICATED",
      /expired/,
    );
  } finally {
    await f.close();
  }
});

Deno.test("POST /v1/sign answers 403 for identities or addresses outside the claims", async () => {
  const f = await fixture();
  try {
    const t = await f.token();
    await expectError(
      await post(f, await body({ app: "web-1" }), t),
      403,
      "ERR_CA_FORBIDDEN",
      /app "web-1"/,
    );
    await expectError(
      await post(f, await body({ space: "space-2" }), t),
      403,
      "ERR_CA_FORBIDDEN",
      /space/,
    );
    await expectError(
      await post(f, await body({ ips: ["192.168.1.1"] }), t),
      403,
      "ERR_CA_FORBIDDEN",
      /192\.168\.1\.1/,
    );
    const routesOnly = await f.token({ scopes: ["routes.write"] });
    await expectError(
      await post(f, await body(), routesOnly),
      403,
      "ERR_CA_FORBIDDEN",
      /scope "cert.issue"/,
    );
  } finally {
    await f.close();
  }
});

Deno.test("POST /v1/sign answers 413 for a body over the limit and 429 past the rate limit", async () => {
  const f = await fixture({ burst: 2 });
  try {
    const t = await f.token();
    const huge = JSON.stringify({ ...(await body()), csr: "x".repeat(70_000) });
    await expectError(await post(f, huge, t), 413, "ERR_CA_TOO_LARGE");
    assert.equal((await post(f, await body(), t)).status, 201);
    assert.equal((await post(f, await body(), t)).status, 201);
    const limited = await post(f, await body(), t);
    // RFC 9110 delay-seconds: 1 token/s, so one second until the next one.
    assert.equal(limited.headers.get("retry-after"), "1");
    await expectError(limited, 429, "ERR_CA_RATE_LIMITED", /cell-1/);
    await f.clock.tick(1500);
    assert.equal((await post(f, await body(), t)).status, 201);
  } finally {
    await f.close();
  }
});

Deno.test("POST /v1/sign refuses a correctly signed token without exp (it would never expire)", async () => {
  const f = await fixture();
  try {
    const noExp = await new SignJWT({
      scope: "cert.issue",
      apps: GRANT.apps,
      spaces: GRANT.spaces,
      orgs: GRANT.orgs,
      cidrs: GRANT.cidrs,
    })
      .setProtectedHeader({ alg: "ES256", typ: "JWT" })
      .setIssuer(TOKEN_ISSUER)
      .setAudience(TOKEN_AUDIENCE)
      .setSubject("cell-1")
      .setIssuedAt()
      .sign(f.store.tokenKeys.privateKey);
    await expectError(
      await post(f, await body(), noExp),
      401,
      "ERR_CA_UNAUTHENTICATED",
      /exp/,
    );
    assert.equal((await post(f, await body(), await f.token())).status, 201);
  } finally {
    await f.close();
  }
});

Deno.test("GET endpoints serve the bundle, the JWKS, health and metrics", async () => {
  const f = await fixture();
  try {
    assert.equal(
      await (await f.app.request("/v1/bundle.pem")).text(),
      f.store.rootPem,
    );
    const jwks = await (await f.app.request("/v1/jwks.json")).json();
    assert.equal(jwks.keys[0].alg, "ES256");
    assert.equal(jwks.keys[0].d, undefined, "no private part");
    assert.equal((await f.app.request("/healthz")).status, 200);
    await post(f, await body(), await f.token());
    const metrics = await (await f.app.request("/metrics")).text();
    assert.match(
      metrics,
      /sigil_ca_issuances_total\{result="issued",reason="ok"\} 1/,
    );
    assert.match(metrics, /sigil_ca_issuance_duration_seconds_count 1/);
    const notAfter = Math.floor(
      parseCertificate(f.store.intermediatePem).notAfter.getTime() / 1000,
    );
    assert.match(
      metrics,
      new RegExp(
        `^sigil_ca_intermediate_not_after_timestamp_seconds ${notAfter}$`,
        "m",
      ),
    );
    assert.equal((await f.app.request("/nope")).status, 404);
  } finally {
    await f.close();
  }
});

Deno.test("POST /v1/sign returns no certificate and /healthz is 503 while the ledger is locked by another writer", async () => {
  const f = await fixture();
  const other = new DatabaseSync(join(f.dir, "ca", CA_FILES.ledger));
  try {
    other.exec("BEGIN IMMEDIATE");
    const res = await post(f, await body(), await f.token());
    assert.equal(res.status, 500);
    const json = await res.json();
    assert.equal(json.error.code, "ERR_CA_LEDGER");
    assert.equal(json.certificate, undefined);
    assert.ok(!JSON.stringify(json).includes("BEGIN CERTIFICATE"));
    const health = await f.app.request("/healthz");
    assert.equal(health.status, 503);
    assert.match((await health.json()).reason, /database is locked/);
    other.exec("ROLLBACK");
    assert.equal((await f.app.request("/healthz")).status, 200);
    assert.equal((await post(f, await body(), await f.token())).status, 201);
    assert.equal(
      f.ledger.listSync().filter((r) => r.result === "issued").length,
      1,
    );
  } finally {
    other.close();
    await f.close();
  }
});
