import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { Ledger } from "../../lib/ca/mod.ts";
const row = (i: number) => ({
  result: "issued" as const,
  serial: `s${i}`,
  instance_id: "i",
  app: "a",
  space: "s",
  org: "o",
  ips: "[]",
  not_after: null,
  caller: "c",
  reason: null,
});
Deno.test("Ledger.commit() groups concurrent rows into one commit; a bad row fails alone", async () => {
  const dir = await Deno.makeTempDir();
  const l = Ledger.open(`${dir}/l.sqlite`);
  const bad = { ...row(99), result: null as unknown as "issued" };
  const rs = await Promise.allSettled([
    l.commit(row(1)),
    l.commit(bad),
    l.commit(row(2)),
  ]);
  assert.deepEqual(rs.map((r) => r.status), [
    "fulfilled",
    "rejected",
    "fulfilled",
  ]);
  assert.equal((rs[1] as PromiseRejectedResult).reason.code, "ERR_CA_LEDGER");
  assert.match((rs[1] as PromiseRejectedResult).reason.message, /l\.sqlite/);
  l.record(row(3));
  assert.deepEqual(l.listSync().map((r) => r.serial), ["s1", "s2", "s3"]);
  l.close();
  await Deno.remove(dir, { recursive: true });
});
Deno.test("Ledger.commit() rejects with ERR_CA_LEDGER while another connection locks the ledger", async () => {
  const dir = await Deno.makeTempDir();
  const l = Ledger.open(`${dir}/l.sqlite`);
  const other = new DatabaseSync(`${dir}/l.sqlite`);
  other.exec("BEGIN IMMEDIATE");
  const rs = await Promise.allSettled([l.commit(row(1)), l.commit(row(2))]);
  assert.deepEqual(rs.map((r) => r.status), ["rejected", "rejected"]);
  const one = await Promise.allSettled([l.commit(row(3))]);
  assert.equal(one[0]!.status, "rejected");
  other.exec("ROLLBACK");
  await l.commit(row(4));
  assert.deepEqual(l.listSync().map((r) => r.serial), ["s4"]);
  other.close();
  l.close();
  await Deno.remove(dir, { recursive: true });
});
Deno.test("Ledger.close() commits pending rows first", async () => {
  const dir = await Deno.makeTempDir();
  const l = Ledger.open(`${dir}/l.sqlite`);
  const p = l.commit(row(1));
  l.close();
  await p;
  const r = Ledger.open(`${dir}/l.sqlite`, { readOnly: true });
  assert.equal(r.listSync().length, 1);
  r.close();
  await Deno.remove(dir, { recursive: true });
});
