import assert from "node:assert/strict";
import {
  type CaError,
  migrate,
  MIGRATIONS,
  openCaStores,
  PgLedger,
} from "../../lib/ca/mod.ts";
import type { LedgerRow } from "../../lib/ca/mod.ts";
import { CaSection } from "../../lib/config/mod.ts";
import type { PostgresStore } from "../../lib/config/mod.ts";
import { postgresUnavailable, startPostgres } from "../_helpers/postgres.ts";

const skip = postgresUnavailable();
if (skip) console.warn(`ledger_pg_test: skipped: ${skip}`);

function storeOf(url: string, passwordFile?: string): PostgresStore {
  const ca = CaSection.parse({
    dir: "/nonexistent",
    store: passwordFile ? { url, password_file: passwordFile } : url,
  });
  assert.equal(ca.store?.kind, "postgres");
  return ca.store as PostgresStore;
}

const row = (serial: string | null, result: "issued" | "refused" = "issued") =>
  ({
    result,
    serial,
    instance_id: "i-1",
    app: "a",
    space: "s",
    org: "o",
    ips: "[]",
    not_after: null,
    caller: "cell-1",
    reason: null,
  }) satisfies LedgerRow;

Deno.test("ca.store: a postgres URL with a password, no user or an unknown sslmode is refused, naming the fix and never the password", () => {
  const bad = (store: unknown) => {
    const r = CaSection.safeParse({ dir: "/d", store });
    assert.equal(r.success, false);
    return r.error!.issues.map((i) => i.message).join("\n");
  };
  const withPw = bad("postgres://sigil:hunter2@db:5432/sigil");
  assert.match(withPw, /password_file/);
  assert.doesNotMatch(withPw, /hunter2/);
  assert.match(bad("postgres://db:5432/sigil"), /names no user/);
  assert.match(bad("postgres://u@db:5432/"), /names no database/);
  assert.match(bad("postgres://u@db/x?sslmode=prefer"), /sslmode "prefer"/);
  assert.match(bad("postgres://u@db/x?connect_timeout=3"), /unknown parameter/);
  assert.match(
    bad({ url: "postgres://u@db/x?sslmode=require", ca_bundle: "/ca.pem" }),
    /only used with sslmode=verify-ca or verify-full/,
  );
  const remote = CaSection.parse({ dir: "/d", store: "postgres://u@db/x" });
  assert.equal(
    (remote.store as PostgresStore).sslmode,
    "verify-full",
    "a remote server is verified unless the URL says otherwise",
  );
  const file = CaSection.parse({ dir: "/d", store: "/var/lib/l.sqlite" });
  assert.deepEqual(file.store, { kind: "sqlite", path: "/var/lib/l.sqlite" });
});

Deno.test({
  name:
    "PgLedger: replicas opening together apply each migration once (advisory lock); rows commit in batches; a duplicate serial fails alone",
  ignore: skip !== undefined,
  async fn() {
    await using pg = await startPostgres();
    const store = storeOf(pg.url, pg.passwordFile);
    const ledgers = await Promise.all(
      Array.from({ length: 4 }, () => PgLedger.open(store)),
    );
    try {
      assert.equal(
        (await pg.psql("SELECT version FROM sigil_migrations ORDER BY 1"))
          .trim(),
        MIGRATIONS.map((m) => m.version).join("\n"),
      );
      assert.deepEqual(await migrate(ledgers[0]!.sql, store.display), []);
      const [a, b] = ledgers as [PgLedger, PgLedger];
      const results = await Promise.allSettled([
        a.commit(row("s1")),
        a.commit(row("s2")),
        a.commit(row("s1")),
        a.commit(row(null, "refused")),
      ]);
      assert.deepEqual(results.map((r) => r.status), [
        "fulfilled",
        "fulfilled",
        "rejected",
        "fulfilled",
      ]);
      const dup = (results[2] as PromiseRejectedResult).reason as CaError;
      assert.equal(dup.code, "ERR_CA_LEDGER");
      // Written through a, read through b: one shared ledger. The four
      // commits ran concurrently, so their row order is not defined (a
      // batch that hit the duplicate is retried row by row).
      assert.deepEqual(
        (await b.list()).map((r) => r.serial ?? "(none)").sort(),
        ["(none)", "s1", "s2"],
      );
      assert.deepEqual(
        (await b.recent("issued", 1)).map((r) => r.serial),
        ["s2"],
      );
      assert.equal((await b.list({ instanceId: "nope" })).length, 0);
    } finally {
      for (const l of ledgers) await l.close();
    }
  },
});

Deno.test({
  name:
    "PgLedger: while PostgreSQL is stopped commit() and probe() reject with ERR_CA_LEDGER_UNAVAILABLE naming the server; after a start they work again on the same pool",
  ignore: skip !== undefined,
  async fn() {
    await using pg = await startPostgres();
    const store = storeOf(pg.url, pg.passwordFile);
    const ledger = await PgLedger.open(store);
    try {
      await ledger.commit(row("before"));
      await pg.stop();
      await assert.rejects(ledger.commit(row("during")), (e: CaError) => {
        assert.equal(e.code, "ERR_CA_LEDGER_UNAVAILABLE");
        assert.match(e.message, /PostgreSQL is unavailable/);
        assert.ok(e.message.includes(store.display), e.message);
        return true;
      });
      await assert.rejects(
        ledger.probe(),
        /ERR_CA_LEDGER_UNAVAILABLE|unavailable/,
      );
      await pg.start();
      await ledger.probe();
      await ledger.commit(row("after"));
      assert.deepEqual((await ledger.list()).map((r) => r.serial), [
        "before",
        "after",
      ]);
    } finally {
      await ledger.close();
    }
  },
});

Deno.test({
  name:
    "PgLedger.open(): a wrong password is reported with the server's reason, without the password",
  ignore: skip !== undefined,
  async fn() {
    await using pg = await startPostgres();
    const wrong = `${pg.dir}/wrong.pw`;
    await Deno.writeTextFile(wrong, "not-the-password-x9\n");
    await assert.rejects(
      PgLedger.open(storeOf(pg.url, wrong)),
      (e: CaError) => {
        assert.equal(e.code, "ERR_CA_LEDGER");
        assert.match(e.message, /password authentication failed/);
        assert.doesNotMatch(e.message, /not-the-password-x9/);
        return true;
      },
    );
  },
});

Deno.test({
  name:
    "PgRevocations: a revocation added through one replica's store is seen by another's at once; revoking twice keeps the first; the CRL list joins the shared ledger",
  ignore: skip !== undefined,
  async fn() {
    await using pg = await startPostgres();
    const store = storeOf(pg.url, pg.passwordFile);
    const [sa, sb] = await Promise.all([
      openCaStores("/nonexistent", store),
      openCaStores("/nonexistent", store),
    ]);
    const [la, a, b] = [sa.ledger, sa.revocations, sb.revocations];
    try {
      const future = new Date(Date.now() + 3_600_000).toISOString();
      await la.commit({ ...row("c1"), not_after: future });
      await la.commit({ ...row("c2"), instance_id: "i-2", not_after: future });
      assert.equal(await b.identityRevocation("i-1", "a"), undefined);
      const first = await a.add({
        kind: "instance",
        value: "i-1",
        reason: "x",
      });
      assert.equal(first.added, true);
      const again = await b.add({
        kind: "instance",
        value: "i-1",
        reason: "y",
      });
      assert.equal(again.added, false);
      assert.equal(again.revocation.reason, "x");
      assert.equal((await b.identityRevocation("i-1", "a"))?.kind, "instance");
      await a.add({ kind: "subject", value: "cell-9", reason: null });
      assert.equal((await b.tokenRevocation("j", "cell-9"))?.kind, "subject");
      assert.equal(await b.tokenRevocation("j", "cell-1"), undefined);
      assert.deepEqual(
        (await b.revokedCertificates(new Date())).map((c) => c.serial),
        ["c1"],
      );
      assert.deepEqual((await b.list()).map((r) => r.value), [
        "i-1",
        "cell-9",
      ]);
    } finally {
      await sa.close();
      await sb.close();
    }
  },
});
