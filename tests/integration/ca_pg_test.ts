import assert from "node:assert/strict";
import { postgresUnavailable, startPostgres } from "../_helpers/postgres.ts";
import { sigil } from "../_helpers/proc.ts";
import { eventually, setUpPgCa, signOnce, startReplica } from "./_ca_pg.ts";

const skip = postgresUnavailable();
if (skip) console.warn(`ca_pg_test: skipped: ${skip}`);

Deno.test({
  name:
    "ca serve on PostgreSQL: while the database is stopped /v1/sign is 503 ERR_CA_LEDGER_UNAVAILABLE with the reason and no certificate, /healthz is 503; both recover by themselves once it is back; sigil ca ledger --config reads the same rows",
  ignore: skip !== undefined,
  async fn() {
    await using pg = await startPostgres();
    const dir = await Deno.makeTempDir();
    const ca = await setUpPgCa(dir, pg);
    const replica = await startReplica(ca);
    const tls = Deno.createHttpClient({ caCerts: [ca.rootPem] });
    try {
      const first = await signOnce(tls, replica.url, ca.token, "i-before");
      assert.equal(first.status, 201, await first.clone().text());
      const serial1 = (await first.json()).serial;
      assert.equal(
        (await fetch(`${replica.url}/healthz`, { client: tls })).status,
        200,
      );

      await pg.stop();
      const down = await signOnce(tls, replica.url, ca.token, "i-down");
      assert.equal(down.status, 503);
      assert.equal(down.headers.get("retry-after"), "1");
      const body = await down.json();
      assert.equal(body.error.code, "ERR_CA_LEDGER_UNAVAILABLE");
      assert.match(body.error.message, /PostgreSQL is unavailable/);
      assert.ok(!("certificate" in body));
      const health = await fetch(`${replica.url}/healthz`, { client: tls });
      assert.equal(health.status, 503);
      const h = await health.json();
      assert.equal(h.check, "ledger");
      assert.match(h.reason, /PostgreSQL is unavailable/);
      await replica.proc.waitForEvent("ca-unhealthy");

      await pg.start();
      await eventually(
        "the CA to be healthy again",
        async () =>
          (await fetch(`${replica.url}/healthz`, { client: tls })
            .then(async (r) => (await r.body?.cancel(), r.status))) === 200,
      );
      const after = await signOnce(tls, replica.url, ca.token, "i-after");
      assert.equal(after.status, 201, await after.clone().text());
      const serial2 = (await after.json()).serial;

      const listed = await sigil([
        "ca",
        "ledger",
        "--config",
        ca.config,
        "--json",
      ]);
      assert.equal(listed.code, 0, listed.stderr);
      const rows = listed.stdout.trim().split("\n").map((l) => JSON.parse(l));
      assert.deepEqual(
        rows.filter((r) => r.result === "issued").map((r) => r.serial),
        [serial1, serial2],
        "the sign refused while the database was down left no issuance",
      );
      const password = (await Deno.readTextFile(pg.passwordFile)).trim();
      for (const line of replica.proc.lines) {
        assert.ok(!line.includes(password), "the password is never logged");
      }
    } finally {
      tls.close();
      await replica.proc.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
