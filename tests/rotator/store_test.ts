import assert from "node:assert/strict";
import { join } from "node:path";
import { certificateMatchesKey, parseCertificate } from "../../lib/pki/mod.ts";
import { CredentialStore, readCredentials } from "../../lib/rotator/mod.ts";
import { createTestCa } from "./_ca.ts";
import type { TestCa } from "./_ca.ts";
import {
  createCsr,
  exportPrivateKeyPem,
  generateKeyPair,
} from "../../lib/pki/mod.ts";

const ID = {
  instanceId: "i-1",
  app: "app-1",
  space: "space-1",
  org: "org-1",
  ips: ["10.0.0.5"],
};

async function issuePair(
  ca: TestCa,
): Promise<{ certPem: string; keyPem: string }> {
  const keys = await generateKeyPair();
  const r = await ca.sign({ csr: await createCsr(keys, ID), ...ID });
  return {
    certPem: r.certificatePem + r.chainPem,
    keyPem: await exportPrivateKeyPem(keys),
  };
}

async function withDir(fn: (dir: string) => Promise<void>) {
  const base = await Deno.makeTempDir({ prefix: "sigil-store-" });
  try {
    await fn(join(base, "i-1"));
  } finally {
    await Deno.remove(base, { recursive: true });
  }
}

const mode = async (p: string) => (await Deno.stat(p)).mode! & 0o777;

Deno.test("CredentialStore.commit() writes a versioned pair behind stable symlinks with 0600/0644/0700 modes", async () => {
  const ca = await createTestCa();
  await withDir(async (dir) => {
    const store = new CredentialStore(dir);
    await store.recover();
    assert.equal(await store.read(), undefined);
    const a = await issuePair(ca);
    assert.equal(await store.commit(a.certPem, a.keyPem), 1);
    assert.equal(await Deno.readLink(join(dir, "current")), "versions/1");
    assert.equal(
      await Deno.readLink(join(dir, "instance.crt")),
      "current/instance.crt",
    );
    assert.equal(
      await Deno.readLink(join(dir, "instance.key")),
      "current/instance.key",
    );
    assert.equal(await Deno.readTextFile(join(dir, "instance.crt")), a.certPem);
    assert.equal(await Deno.readTextFile(join(dir, "instance.key")), a.keyPem);
    assert.equal(await mode(join(dir, "instance.key")), 0o600);
    assert.equal(await mode(join(dir, "instance.crt")), 0o644);
    assert.equal(await mode(dir), 0o700);
    assert.equal(await mode(join(dir, "versions", "1")), 0o700);

    const b = await issuePair(ca);
    assert.equal(await store.commit(b.certPem, b.keyPem), 2);
    const c = await issuePair(ca);
    assert.equal(await store.commit(c.certPem, c.keyPem), 3);
    const names = [];
    for await (const e of Deno.readDir(join(dir, "versions"))) {
      names.push(e.name);
    }
    assert.deepEqual(
      names.sort(),
      ["2", "3"],
      "keeps current and previous only",
    );
    const read = await readCredentials(dir);
    assert.equal(read?.version, 3);
    assert.equal(read?.certPem, c.certPem);
    assert.ok(await certificateMatchesKey(read!.certPem, read!.keyPem));
  });
});

Deno.test("CredentialStore honours configured modes", async () => {
  const ca = await createTestCa();
  await withDir(async (dir) => {
    const store = new CredentialStore(dir, {
      dirMode: 0o750,
      keyMode: 0o640,
      certMode: 0o640,
    });
    const a = await issuePair(ca);
    await store.commit(a.certPem, a.keyPem);
    assert.equal(await mode(join(dir, "instance.key")), 0o640);
    assert.equal(await mode(join(dir, "instance.crt")), 0o640);
    assert.equal(await mode(dir), 0o750);
  });
});

Deno.test("CredentialStore.recover() removes partial, uncommitted and stale versions and never uses them", async () => {
  const ca = await createTestCa();
  await withDir(async (dir) => {
    const store = new CredentialStore(dir);
    const pairs = [await issuePair(ca), await issuePair(ca)];
    await store.commit(pairs[0]!.certPem, pairs[0]!.keyPem);
    await store.commit(pairs[1]!.certPem, pairs[1]!.keyPem);
    const v = join(dir, "versions");
    // A crash mid-write: temp version with only a key.
    await Deno.mkdir(join(v, ".tmp-3-abcd"));
    await Deno.writeTextFile(join(v, ".tmp-3-abcd", "instance.key"), "partial");
    // A crash after the rename but before the symlink swap.
    const other = await issuePair(ca);
    await Deno.mkdir(join(v, "4"));
    await Deno.writeTextFile(join(v, "4", "instance.crt"), other.certPem);
    await Deno.writeTextFile(join(v, "4", "instance.key"), other.keyPem);
    // An interrupted delete, and a stale temp link.
    await Deno.mkdir(join(v, ".trash-0-ffff"));
    await Deno.symlink("versions/4", join(dir, ".tmp-link-1234"));
    const report = await store.recover();
    assert.deepEqual(
      report.removed.sort(),
      [
        ".tmp-link-1234",
        "versions/.tmp-3-abcd",
        "versions/.trash-0-ffff",
        "versions/4",
      ],
    );
    const names = [];
    for await (const e of Deno.readDir(v)) names.push(e.name);
    assert.deepEqual(names.sort(), ["1", "2"]);
    const read = await store.read();
    assert.equal(read?.certPem, pairs[1]!.certPem);
    // The next version number does not collide with anything left behind.
    const next = await issuePair(ca);
    assert.equal(await store.commit(next.certPem, next.keyPem), 3);
  });
});

Deno.test("CredentialStore.recover() imports a matching plain pair and refuses a mismatched one", async () => {
  const ca = await createTestCa();
  await withDir(async (dir) => {
    await Deno.mkdir(dir, { recursive: true });
    const a = await issuePair(ca);
    await Deno.writeTextFile(join(dir, "instance.crt"), a.certPem);
    await Deno.writeTextFile(join(dir, "instance.key"), a.keyPem);
    const store = new CredentialStore(dir);
    assert.equal((await store.recover()).imported, true);
    assert.ok((await Deno.lstat(join(dir, "instance.crt"))).isSymlink);
    assert.equal((await store.read())?.keyPem, a.keyPem);
  });
  await withDir(async (dir) => {
    await Deno.mkdir(dir, { recursive: true });
    const a = await issuePair(ca), b = await issuePair(ca);
    await Deno.writeTextFile(join(dir, "instance.crt"), a.certPem);
    await Deno.writeTextFile(join(dir, "instance.key"), b.keyPem);
    const store = new CredentialStore(dir);
    assert.equal((await store.recover()).imported, false);
    assert.ok((await Deno.lstat(join(dir, "instance.crt"))).isFile);
  });
});

Deno.test("readCredentials() never returns a torn pair while commits run concurrently", async () => {
  const ca = await createTestCa();
  const pairs = await Promise.all(
    Array.from({ length: 4 }, () => issuePair(ca)),
  );
  await withDir(async (dir) => {
    const store = new CredentialStore(dir, { sync: false });
    await store.commit(pairs[0]!.certPem, pairs[0]!.keyPem);
    const serialOfKey = new Map(
      pairs.map((p) => [p.keyPem, parseCertificate(p.certPem).serial]),
    );
    let stop = false;
    const writer = (async () => {
      for (let i = 0; i < 60; i++) {
        const p = pairs[i % pairs.length]!;
        await store.commit(p.certPem, p.keyPem);
      }
      stop = true;
    })();
    let reads = 0;
    while (!stop) {
      const r = await readCredentials(dir);
      if (!r) continue;
      assert.equal(
        parseCertificate(r.certPem).serial,
        serialOfKey.get(r.keyPem),
      );
      reads++;
    }
    await writer;
    assert.ok(reads > 10, `reads ${reads}`);
  });
});
