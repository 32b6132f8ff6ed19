/**
 * Key rotation under load: `sigil credhub rotate-key`, run as its own process
 * the way an operator runs it, while a `sigil credhub` subprocess serves reads
 * over mTLS to several clients and takes writes. (CredHub re-encrypts with
 * `EncryptionKeyRotator.kt` inside the server; Sigil does it from a second
 * process against the same SQLite file, so nothing needs a restart.)
 * @module
 */
import assert from "node:assert/strict";
import { createDecipheriv } from "node:crypto";
import { Agent } from "node:https";
import { DatabaseSync } from "node:sqlite";
import { credhubCall, prepareTestCredhub } from "../_helpers/credhub.ts";
import { sigil, SigilProcess } from "../_helpers/proc.ts";
import { SqliteCredentialStore, startCredhub } from "../../lib/credhub/mod.ts";
import { silentLogger } from "../../lib/observe/mod.ts";

interface StoredRow {
  id: string;
  name: string;
  key_id: string;
  nonce: Uint8Array;
  ciphertext: Uint8Array;
}

/** AES-256-GCM open of one stored row, written here from the format alone. */
function decrypt(key: Uint8Array, r: StoredRow): { value: unknown } {
  const d = createDecipheriv("aes-256-gcm", key, r.nonce);
  d.setAAD(new TextEncoder().encode(r.id + r.name));
  d.setAuthTag(r.ciphertext.subarray(r.ciphertext.length - 16));
  const plain = Buffer.concat([
    d.update(r.ciphertext.subarray(0, r.ciphertext.length - 16)),
    d.final(),
  ]);
  return JSON.parse(plain.toString("utf8"));
}

function keyFiles(dir: string): Array<{ name: string; key: Uint8Array }> {
  return [...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".key"))
    .map((e) => ({
      name: e.name,
      key: Uint8Array.from(
        atob(Deno.readTextFileSync(`${dir}/${e.name}`).trim()),
        (c) => c.charCodeAt(0),
      ),
    }));
}

function rows(path: string): StoredRow[] {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return db.prepare(
      "SELECT id, name, key_id, nonce, ciphertext FROM credentials",
    )
      .all() as unknown as StoredRow[];
  } finally {
    db.close();
  }
}

function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(hay.buffer, hay.byteOffset, hay.byteLength).indexOf(
    Buffer.from(needle.buffer, needle.byteOffset, needle.byteLength),
  ) >= 0;
}

Deno.test("credhub rotate-key (separate process) under concurrent mTLS reads: no failed read, values unchanged, the old key decrypts nothing", async () => {
  const f = await prepareTestCredhub();
  const app = crypto.randomUUID();
  const expected = new Map<string, unknown[]>(); // name -> values, newest first
  // Seed through the library before the server starts: 400 names, every
  // fourth with three versions.
  const seed = new SqliteCredentialStore(f.config.database!, f.config.keys_dir);
  try {
    for (let i = 0; i < 400; i++) {
      const name = `/c/rot/${i}`;
      const values: unknown[] = [];
      for (let v = 0; v < (i % 4 === 0 ? 3 : 1); v++) {
        const value = { i, v, secret: `s-${i}-${v}-${crypto.randomUUID()}` };
        await seed.put(name, "json", value, null, { now: Date.now() + v });
        values.unshift(value);
      }
      expected.set(name, values);
    }
    await seed.savePermission({
      uuid: crypto.randomUUID(),
      actor: `mtls-app:${app}`,
      path: "/c/rot/*",
      operations: ["read"],
    });
  } finally {
    await seed.close();
  }
  const oldKeys = keyFiles(f.config.keys_dir);
  assert.equal(oldKeys.length, 1);
  const oldRows = rows(f.config.database!);
  assert.equal(oldRows.length, 400 + 100 * 2);

  const server = new SigilProcess(["credhub", "--config", f.configPath]);
  const agents: Agent[] = [];
  try {
    const url = String((await server.waitForEvent("credhub-listening")).url);
    const ca = f.pki.rootPem;
    const inst = await f.pki.issueInstance({
      instanceId: crypto.randomUUID(),
      app,
    });
    const broker = await f.token("credhub.write credhub.read");
    const failures: string[] = [];
    let reads = 0, stop = false, rotating = false, readsDuringRotation = 0;
    const names = [...expected.keys()];
    const reader = async (n: number) => {
      // Reader 0 opens a new TLS connection per request; the others keep one.
      const agent = n === 0
        ? undefined
        : new Agent({ keepAlive: true, maxSockets: 1 });
      if (agent) agents.push(agent);
      for (let k = 0; !stop; k++) {
        const name = names[(k * 7 + n * 101) % names.length]!;
        const all = k % 3 === 0;
        const path = `/api/v1/data?name=${encodeURIComponent(name)}` +
          (all ? "" : "&current=true");
        try {
          const r = await credhubCall(url, "GET", path, {
            cert: inst.certPem,
            key: inst.keyPem,
            ca,
            agent,
          });
          const want = expected.get(name)!;
          if (r.status !== 200) {
            failures.push(`${name}: ${r.status} ${JSON.stringify(r.body)}`);
          } else {
            assert.deepEqual(
              r.body.data.map((d: { value: unknown }) => d.value),
              all ? want : want.slice(0, 1),
            );
          }
        } catch (err) {
          failures.push(`${name}: ${(err as Error).message}`);
        }
        reads++;
        if (rotating) readsDuringRotation++;
      }
    };
    const written: Array<{ name: string; value: unknown }> = [];
    const writer = async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      agents.push(agent);
      for (let k = 0; !stop; k++) {
        const name = `/c/rot/w/${k}`;
        const value = `w-${k}-${crypto.randomUUID()}`;
        const r = await credhubCall(url, "PUT", "/api/v1/data", {
          token: broker,
          ca,
          agent,
          body: { name, type: "value", value },
        });
        if (r.status === 200) written.push({ name, value });
        else failures.push(`PUT ${name}: ${r.status}`);
      }
    };
    const clients = [0, 1, 2, 3].map(reader);
    clients.push(writer());
    // Let every client get going before the operator rotates.
    for (let i = 0; i < 200 && reads < 40; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    rotating = true;
    const rot = await sigil([
      "credhub",
      "rotate-key",
      "--config",
      f.configPath,
    ]);
    rotating = false;
    assert.equal(rot.code, 0, rot.stderr);
    assert.match(
      rot.stdout,
      /^Rotated to key [0-9a-f]{16}: \d+ credential versions re-encrypted/,
    );
    const after = reads;
    for (let i = 0; i < 200 && reads < after + 40; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    stop = true;
    await Promise.all(clients);
    assert.deepEqual(failures, []);
    assert.ok(readsDuringRotation > 0, "reads overlapped the rotation");
    assert.ok(reads >= after + 40);

    // The writes acknowledged during and after the rotation read back.
    for (const w of written.slice(-5)) {
      const r = await credhubCall(
        url,
        "GET",
        `/api/v1/data?name=${w.name}&current=true`,
        { token: broker, ca },
      );
      assert.equal(r.status, 200);
      assert.equal(r.body.data[0].value, w.value);
    }
    await server.stop();

    const newKeys = keyFiles(f.config.keys_dir);
    assert.equal(newKeys.length, 1, "the old key file is deleted");
    assert.notEqual(newKeys[0]!.name, oldKeys[0]!.name);
    const stored = rows(f.config.database!);
    assert.equal(stored.length, oldRows.length + written.length);
    const byName = new Map(written.map((w) => [w.name, w.value]));
    for (const r of stored) {
      assert.throws(
        () => decrypt(oldKeys[0]!.key, r),
        `old key opens ${r.name}`,
      );
      const { value } = decrypt(newKeys[0]!.key, r);
      if (byName.has(r.name)) assert.equal(value, byName.get(r.name));
      else {assert.ok(expected.get(r.name)!.some((v) =>
          JSON.stringify(v) === JSON.stringify(value)
        ));}
    }
    // No old ciphertext is left in the database or its WAL (secure_delete,
    // checkpoint after the rotation): a leaked old key opens nothing.
    for (const file of [f.config.database!, `${f.config.database!}-wal`]) {
      let bytes: Uint8Array;
      try {
        bytes = await Deno.readFile(file);
      } catch {
        continue;
      }
      for (const r of oldRows) {
        assert.ok(
          !contains(bytes, r.ciphertext),
          `${file} still holds the old ciphertext of ${r.name}`,
        );
      }
    }
  } finally {
    await server.stop();
    for (const a of agents) a.destroy();
    await Deno.remove(f.dir, { recursive: true });
  }
});

Deno.test("credhub rotate-key killed with SIGKILL mid-way: every row still reads, the old key file is kept, a second rotate-key finishes", async () => {
  const f = await prepareTestCredhub();
  try {
    const expected = new Map<string, string>();
    const seed = new SqliteCredentialStore(
      f.config.database!,
      f.config.keys_dir,
    );
    try {
      for (let i = 0; i < 1000; i++) {
        const value = `v-${i}-${crypto.randomUUID()}`;
        await seed.put(`/c/int/${i}`, "value", value, null);
        expected.set(`/c/int/${i}`, value);
      }
      await seed.savePermission({
        uuid: crypto.randomUUID(),
        actor: "uaa-client:broker",
        path: "/c/int/*",
        operations: ["read"],
      });
    } finally {
      await seed.close();
    }
    const before = keyFiles(f.config.keys_dir);
    // Kill the rotation once some rows are under the new key and some are
    // not; a rotation that finished first is run again (bounded).
    let interrupted = false, attempts = 0;
    for (let attempt = 0; attempt < 5 && !interrupted; attempt++) {
      const rotation = new SigilProcess([
        "credhub",
        "rotate-key",
        "--config",
        f.configPath,
      ]);
      attempts++;
      let exited = false;
      rotation.child.status.then(() => (exited = true));
      const db = new DatabaseSync(f.config.database!, { readOnly: true });
      try {
        while (!exited) {
          const groups = db.prepare(
            "SELECT key_id FROM credentials GROUP BY key_id",
          ).all();
          if (groups.length > 1) {
            rotation.child.kill("SIGKILL");
            interrupted = true;
            break;
          }
          await new Promise((r) => setTimeout(r, 2));
        }
      } finally {
        db.close();
        await rotation.stop();
      }
    }
    assert.ok(interrupted, `no rotation caught half-way in ${attempts} tries`);
    const mixed = rows(f.config.database!);
    assert.ok(new Set(mixed.map((r) => r.key_id)).size > 1);
    const kept = keyFiles(f.config.keys_dir).map((k) => k.name);
    for (const k of before) assert.ok(kept.includes(k.name), "old key kept");

    // Every row through the store (what the server reads with), a sample
    // of them over HTTPS from a restarted server.
    const check = async () => {
      const store = new SqliteCredentialStore(
        f.config.database!,
        f.config.keys_dir,
      );
      try {
        for (const [name, value] of expected) {
          assert.equal((await store.versions(name, 1))[0]?.value, value, name);
        }
      } finally {
        await store.close();
      }
      const t = await startCredhub(f.config, { logger: silentLogger });
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const token = await f.token("credhub.read");
        for (
          const [name, value] of [...expected].filter((_, i) => i % 50 === 0)
        ) {
          const r = await credhubCall(
            t.url,
            "GET",
            `/api/v1/data?name=${name}&current=true`,
            { token, ca: f.pki.rootPem, agent },
          );
          assert.equal(r.status, 200, name);
          assert.equal(r.body.data[0].value, value);
        }
      } finally {
        agent.destroy();
        await t.close();
      }
    };
    await check();
    const again = await sigil([
      "credhub",
      "rotate-key",
      "--config",
      f.configPath,
    ]);
    assert.equal(again.code, 0, again.stderr);
    const after = keyFiles(f.config.keys_dir);
    assert.equal(after.length, 1);
    assert.ok(
      rows(f.config.database!).every((r) =>
        r.key_id === after[0]!.name.replace(".key", "")
      ),
    );
    await check();
  } finally {
    await Deno.remove(f.dir, { recursive: true });
  }
});

Deno.test("credhub rotate-key run twice at once: the second waits for the first, one key is left and every row opens with it", async () => {
  const f = await prepareTestCredhub();
  try {
    const expected = new Map<string, string>();
    const seed = new SqliteCredentialStore(
      f.config.database!,
      f.config.keys_dir,
    );
    try {
      for (let i = 0; i < 300; i++) {
        const value = `v-${i}-${crypto.randomUUID()}`;
        await seed.put(`/c/twice/${i}`, "value", value, null);
        expected.set(`/c/twice/${i}`, value);
      }
    } finally {
      await seed.close();
    }
    const args = ["credhub", "rotate-key", "--config", f.configPath];
    const [a, b] = await Promise.all([sigil(args), sigil(args)]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const left = keyFiles(f.config.keys_dir);
    assert.equal(left.length, 1);
    const stored = rows(f.config.database!);
    assert.equal(stored.length, expected.size);
    for (const r of stored) {
      assert.equal(decrypt(left[0]!.key, r).value, expected.get(r.name));
    }
  } finally {
    await Deno.remove(f.dir, { recursive: true });
  }
});

Deno.test("credhub rotate-key with an operator-named key file (not <id>.key): the rotation finishes and removes that file", async () => {
  const f = await prepareTestCredhub();
  try {
    const dir = f.config.keys_dir;
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const e of Deno.readDirSync(dir)) Deno.removeSync(`${dir}/${e.name}`);
    const raw = crypto.getRandomValues(new Uint8Array(32));
    Deno.writeTextFileSync(
      `${dir}/prod-2026.key`,
      btoa(String.fromCharCode(...raw)) + "\n",
      { mode: 0o600 },
    );
    Deno.chmodSync(`${dir}/prod-2026.key`, 0o600);
    const seed = new SqliteCredentialStore(f.config.database!, dir);
    try {
      await seed.put("/c/named/one", "value", "kept", null);
    } finally {
      await seed.close();
    }
    const r = await sigil(["credhub", "rotate-key", "--config", f.configPath]);
    assert.equal(r.code, 0, r.stderr);
    const left = keyFiles(dir);
    assert.equal(left.length, 1);
    assert.notEqual(left[0]!.name, "prod-2026.key");
    const [row] = rows(f.config.database!);
    assert.equal(decrypt(left[0]!.key, row!).value, "kept");
  } finally {
    await Deno.remove(f.dir, { recursive: true });
  }
});
