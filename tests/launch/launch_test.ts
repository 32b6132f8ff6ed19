/**
 * `sigil launch` as a subprocess against a real `sigil credhub` over mTLS
 * (buildpackapplifecycle `credhub/credhub.go`, `env/env.go`). The byte-for-byte
 * comparison with CF's own client is tests/launch/interpolate_diff_test.ts.
 * @module
 */
import assert from "node:assert/strict";
import {
  brokerStore,
  instanceFiles,
  startTestCredhub,
} from "../_helpers/credhub.ts";
import { PRINT_VCAP, sigilLaunch } from "../_helpers/launch.ts";
import { freePort } from "../_helpers/ports.ts";

Deno.test("sigil launch: the child sees VCAP_SERVICES interpolated for its app; another app's instance exits 4 with CF's message", async () => {
  const f = await startTestCredhub();
  try {
    const broker = await f.token("credhub.write credhub.read");
    const appA = crypto.randomUUID(), appB = crypto.randomUUID();
    const name = `/c/broker/db/${crypto.randomUUID()}/creds`;
    await brokerStore(f, broker, name, "json", {
      user: "ü-ser",
      pw: "s3cret",
    }, [appA]);
    const vcap = JSON.stringify({
      db: [{ name: "db", credentials: { "credhub-ref": `((${name}))` } }],
    });
    const a = await sigilLaunch(
      f,
      await instanceFiles(f, appA),
      vcap,
      PRINT_VCAP,
    );
    assert.equal(a.code, 0, a.stderr);
    assert.deepEqual(JSON.parse(a.stdout).db[0].credentials, {
      user: "ü-ser",
      pw: "s3cret",
    });
    assert.ok(!a.stderr.includes("s3cret"), "no credential in the log");

    const b = await sigilLaunch(
      f,
      await instanceFiles(f, appB),
      vcap,
      PRINT_VCAP,
    );
    assert.equal(b.code, 4);
    assert.match(b.stderr, /Unable to interpolate credhub refs/);
    assert.equal(b.stdout, "", "the app was not started");

    // No refs: no call, and the child's exit status is passed through.
    const plain = await sigilLaunch(
      f,
      await instanceFiles(f, appB),
      '{"db":[{"credentials":{"pw":"x"}}]}',
      ["sh", "-c", "exit 7"],
      { url: `https://127.0.0.1:${freePort()}` },
    );
    assert.equal(plain.code, 7);

    // CredHub unreachable: retried, then exit 4.
    const down = await sigilLaunch(
      f,
      await instanceFiles(f, appA),
      vcap,
      PRINT_VCAP,
      { url: `https://127.0.0.1:${freePort()}` },
    );
    assert.equal(down.code, 4);
    assert.match(down.stderr, /Unable to interpolate credhub refs/);
  } finally {
    await f.close();
  }
});
