/**
 * Two `sigil credhub` servers on one PostgreSQL (issue 18): a credential set
 * through A is read through B over mTLS, `sigil credhub rotate-key` (a real
 * subprocess) re-encrypts for both, names stay case-insensitive, a stopped
 * PostgreSQL answers 503 until it is back, and the database password is in
 * no log line or answer.
 * @module
 */
import assert from "node:assert/strict";
import { parseConfig } from "../../lib/config/mod.ts";
import { startCredhub } from "../../lib/credhub/mod.ts";
import { createLogger } from "../../lib/observe/mod.ts";
import { credhubCall, prepareTestCredhub } from "../_helpers/credhub.ts";
import { freePort } from "../_helpers/ports.ts";
import { sigil } from "../_helpers/proc.ts";
import { postgresUnavailable, startPostgres } from "../_helpers/postgres.ts";

const skip = postgresUnavailable();
if (skip) console.warn(`credhub pg_test: skipped: ${skip}`);

Deno.test({
  name:
    "credhub store on PostgreSQL: set through A, read through B, rotate-key, both still read, 503 while the server is down, no password in logs",
  ignore: skip !== undefined,
  async fn() {
    await using pg = await startPostgres();
    const password = (await Deno.readTextFile(pg.passwordFile)).trim();
    const files = await prepareTestCredhub();
    const lines: string[] = [];
    const logger = createLogger("credhub", {
      level: "debug",
      sink: (l) => lines.push(l),
    });
    const yaml = (await Deno.readTextFile(files.configPath)).replace(
      /^ {2}database: .*$/m,
      `  store:\n    url: ${pg.url}\n    password_file: ${pg.passwordFile}`,
    );
    const configA = parseConfig(yaml).credhub!;
    assert.equal(configA.store?.kind, "postgres");
    const yamlB = yaml.replace(
      /^ {2}listen: .*$/m,
      `  listen: 127.0.0.1:${freePort()}`,
    );
    const configB = parseConfig(yamlB).credhub!;
    const fileB = `${files.dir}/b.yaml`;
    await Deno.writeTextFile(fileB, yamlB);
    const a = await startCredhub(configA, { logger });
    const b = await startCredhub(configB, { logger });
    try {
      const { pki } = files;
      const broker = await files.token("credhub.write credhub.read");
      const app = crypto.randomUUID();
      const name = `/c/pg/${crypto.randomUUID()}/Creds`;
      const set = await credhubCall(a.url, "PUT", "/api/v1/data", {
        token: broker,
        ca: pki.rootPem,
        body: { name, type: "json", value: { pw: "first" } },
      });
      assert.equal(set.status, 200);
      const grant = await credhubCall(b.url, "POST", "/api/v2/permissions", {
        token: broker,
        ca: pki.rootPem,
        body: { actor: `mtls-app:${app}`, path: name, operations: ["read"] },
      });
      assert.equal(grant.status, 201);
      // A new version through B under another spelling joins the first name.
      const again = await credhubCall(b.url, "PUT", "/api/v1/data", {
        token: broker,
        ca: pki.rootPem,
        body: { name: name.toLowerCase(), type: "json", value: { pw: "2nd" } },
      });
      assert.equal(again.status, 200);
      assert.equal(again.body.name, name);
      const inst = await pki.issueInstance({
        instanceId: crypto.randomUUID(),
        app,
      });
      const read = async (url: string) => {
        const r = await credhubCall(
          url,
          "GET",
          `/api/v1/data?name=${encodeURIComponent(name)}`,
          { cert: inst.certPem, key: inst.keyPem, ca: pki.rootPem },
        );
        assert.equal(r.status, 200, JSON.stringify(r.body));
        return r.body.data.map((d: { value: { pw: string } }) => d.value.pw);
      };
      assert.deepEqual(await read(a.url), ["2nd", "first"]);
      assert.deepEqual(await read(b.url), ["2nd", "first"]);

      const keysBefore = [...Deno.readDirSync(configA.keys_dir)]
        .filter((e) => e.name.endsWith(".key")).map((e) => e.name);
      const rot = await sigil(["credhub", "rotate-key", "--config", fileB]);
      assert.equal(rot.code, 0, rot.stderr);
      assert.match(rot.stdout, /: 2 credential versions re-encrypted/);
      const keysAfter = [...Deno.readDirSync(configA.keys_dir)]
        .filter((e) => e.name.endsWith(".key")).map((e) => e.name);
      assert.equal(keysAfter.length, 1);
      assert.ok(!keysBefore.includes(keysAfter[0]!), "a new key is active");
      const keyIds = await pg.psql(
        "SELECT DISTINCT key_id FROM credhub_credentials",
      );
      assert.equal(keyIds.trim().split("\n").filter(Boolean).length, 1);
      // Both servers still read (the old key is gone from disk).
      assert.deepEqual(await read(a.url), ["2nd", "first"]);
      assert.deepEqual(await read(b.url), ["2nd", "first"]);
      // A write after the rotation is sealed with the new key.
      const third = await credhubCall(a.url, "PUT", "/api/v1/data", {
        token: broker,
        ca: pki.rootPem,
        body: { name, type: "json", value: { pw: "3rd" } },
      });
      assert.equal(third.status, 200);
      assert.deepEqual(await read(b.url), ["3rd", "2nd", "first"]);
      const stored = await pg.psql(
        "SELECT encode(ciphertext, 'escape') FROM credhub_credentials",
      );
      assert.ok(!stored.includes("first"), "values are encrypted at rest");

      // PostgreSQL stopped: 503 with a reason (no password), then recovery.
      await pg.stop();
      const down = await credhubCall(
        a.url,
        "GET",
        `/api/v1/data?name=${encodeURIComponent(name)}`,
        { cert: inst.certPem, key: inst.keyPem, ca: pki.rootPem },
      );
      assert.equal(down.status, 503);
      assert.match(down.body.error, /PostgreSQL is unavailable/);
      assert.ok(!JSON.stringify(down.body).includes(password));
      await pg.start();
      // Recovers by itself (a stale pooled connection may fail once).
      let back = 0;
      for (let i = 0; i < 60 && back !== 200; i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, 500));
        back = (await credhubCall(
          a.url,
          "GET",
          `/api/v1/data?name=${encodeURIComponent(name)}`,
          { cert: inst.certPem, key: inst.keyPem, ca: pki.rootPem },
        )).status;
      }
      assert.deepEqual(await read(a.url), ["3rd", "2nd", "first"]);

      const all = lines.join("\n") + rot.stdout + rot.stderr;
      assert.ok(lines.some((l) => l.includes("credhub-listening")));
      assert.ok(!all.includes(password), "the password is in no log line");
    } finally {
      await a.close();
      await b.close();
      await Deno.remove(files.dir, { recursive: true });
    }
  },
});
