/**
 * Crash safety: `sigil credhub` is killed with SIGKILL in the middle of a
 * stream of writes and restarted on the same files. Every write that was
 * answered 200 is there, with its id and in its version order, and SQLite
 * reports the database intact (WAL, synchronous=FULL: a commit is on disk
 * before the response is sent).
 * @module
 */
import assert from "node:assert/strict";
import { Agent } from "node:https";
import { DatabaseSync } from "node:sqlite";
import { credhubCall, prepareTestCredhub } from "../_helpers/credhub.ts";
import { SigilProcess } from "../_helpers/proc.ts";

interface Sent {
  id?: string;
  value: string;
}

Deno.test("credhub: SIGKILL during a stream of PUTs, restart on the same files: every acknowledged write and version is there, integrity_check ok", async () => {
  const f = await prepareTestCredhub();
  const ca = f.pki.rootPem;
  const agents: Agent[] = [];
  let server = new SigilProcess(["credhub", "--config", f.configPath]);
  try {
    const url = String((await server.waitForEvent("credhub-listening")).url);
    const broker = await f.token("credhub.write credhub.read");
    // name -> writes in the order one writer sent them; `id` once acknowledged.
    const sent = new Map<string, Sent[]>();
    let acked = 0, killed = false;
    const writer = async (n: number) => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      agents.push(agent);
      for (let k = 0; !killed; k++) {
        // Each name belongs to one writer, so its versions have one order.
        const name = `/c/crash/${n}/${k % 8}`;
        const w: Sent = { value: `v-${n}-${k}-${crypto.randomUUID()}` };
        const list = sent.get(name) ?? [];
        sent.set(name, [...list, w]);
        try {
          const r = await credhubCall(url, "PUT", "/api/v1/data", {
            token: broker,
            ca,
            agent,
            body: { name, type: "password", value: w.value },
          });
          assert.equal(r.status, 200, JSON.stringify(r.body));
          w.id = r.body.id;
          acked++;
        } catch (err) {
          if (killed) return; // in flight when the server died
          throw err;
        }
      }
    };
    const writers = [0, 1, 2, 3].map(writer);
    for (let i = 0; i < 600 && acked < 200; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(acked >= 200, `only ${acked} writes acknowledged`);
    killed = true;
    await server.stop("SIGKILL");
    await Promise.all(writers);

    // The files as the kill left them: SQLite recovers the WAL on open.
    assert.ok((await Deno.stat(`${f.config.database!}-wal`)).size > 0);
    const db = new DatabaseSync(f.config.database!);
    try {
      assert.deepEqual(
        db.prepare("PRAGMA integrity_check").all().map((r) => ({ ...r })),
        [{ integrity_check: "ok" }],
      );
    } finally {
      db.close();
    }

    server = new SigilProcess(["credhub", "--config", f.configPath]);
    const listening = await server.waitForEvent("credhub-listening");
    const withAck = [...sent.values()].filter((l) => l.some((w) => w.id));
    assert.ok(
      Number(listening.credentials) >= withAck.length &&
        Number(listening.credentials) <= sent.size,
    );
    const url2 = String(listening.url);
    let checked = 0;
    for (const [name, writes] of sent) {
      if (!writes.some((w) => w.id)) continue;
      const r = await credhubCall(
        url2,
        "GET",
        `/api/v1/data?name=${encodeURIComponent(name)}`,
        { token: broker, ca },
      );
      assert.equal(r.status, 200, name);
      const stored = (r.body.data as Array<{ id: string; value: string }>)
        .reverse();
      const done = writes.filter((w) => w.id);
      // Acknowledged writes, oldest first; then at most the one write that was
      // in flight at the kill (committed or not, both are fine).
      assert.deepEqual(
        stored.slice(0, done.length).map((v) => [v.id, v.value]),
        done.map((w) => [w.id, w.value]),
        name,
      );
      assert.ok(stored.length <= done.length + 1, name);
      if (stored.length > done.length) {
        assert.equal(stored.at(-1)!.value, writes.at(-1)!.value);
      }
      checked += done.length;
    }
    assert.equal(checked, acked);
    // And the restarted server takes writes again.
    const more = await credhubCall(url2, "PUT", "/api/v1/data", {
      token: broker,
      ca,
      body: { name: "/c/crash/after", type: "value", value: "x" },
    });
    assert.equal(more.status, 200);
  } finally {
    await server.stop();
    for (const a of agents) a.destroy();
    await Deno.remove(f.dir, { recursive: true });
  }
});
