import assert from "node:assert/strict";
import { join } from "node:path";
import {
  authorize,
  type CaError,
  cidrMatcher,
  globMatch,
  initCa,
  Ledger,
  loadCa,
} from "../../lib/ca/mod.ts";

Deno.test("initCa() refuses a directory that already holds a CA and changes nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await initCa(dir);
    const before = await Deno.readTextFile(join(dir, "root.crt"));
    await assert.rejects(
      initCa(dir),
      (e: Error) => (e as CaError).code === "ERR_CA_EXISTS",
    );
    assert.equal(await Deno.readTextFile(join(dir, "root.crt")), before);
    for (const f of ["root.key", "intermediate.key", "token.key"]) {
      assert.equal((await Deno.stat(join(dir, f))).mode! & 0o777, 0o600, f);
    }
    assert.equal((await Deno.stat(dir)).mode! & 0o777, 0o700);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadCa() refuses a private key readable by others and names the file and the fix", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await initCa(dir);
    await Deno.chmod(join(dir, "intermediate.key"), 0o640);
    await assert.rejects(loadCa(dir), (e: Error) => {
      assert.equal((e as CaError).code, "ERR_CA_KEY_PERMISSIONS");
      assert.match(e.message, /intermediate\.key/);
      assert.match(e.message, /chmod 600/);
      return true;
    });
    await assert.rejects(loadCa(join(dir, "missing")), /sigil ca init/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Ledger.open() reports a corrupt ledger by file name", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "ledger.sqlite");
    await Deno.writeTextFile(path, "this is not a database".repeat(100));
    assert.throws(() => Ledger.open(path), (e: Error) => {
      assert.equal((e as CaError).code, "ERR_CA_LEDGER");
      assert.ok(e.message.includes(path));
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("authorize() checks globs and CIDRs", () => {
  assert.ok(globMatch("app-*", "app-1"));
  assert.ok(!globMatch("app-*", "xapp-1"));
  assert.ok(globMatch("a.b", "a.b") && !globMatch("a.b", "axb"));
  const m = cidrMatcher(["10.0.0.0/8", "fd00::/8"]);
  assert.ok(
    m("10.255.0.1") && m("fd00::1") && !m("11.0.0.1") && !m("nonsense"),
  );
  assert.throws(() => cidrMatcher(["10.0.0.0/33"]), SyntaxError);
  assert.throws(() => cidrMatcher(["10.0.0.0"]), SyntaxError);
  const grant = {
    subject: "c",
    scopes: ["cert.issue" as const],
    apps: ["*"],
    spaces: ["*"],
    orgs: ["*"],
    cidrs: [],
  };
  authorize(grant, {
    instanceId: "i",
    app: "a",
    space: "s",
    org: "o",
    ips: [],
  });
  assert.throws(
    () =>
      authorize(grant, {
        instanceId: "i",
        app: "a",
        space: "s",
        org: "o",
        ips: ["10.0.0.1"],
      }),
    /address "10\.0\.0\.1"/,
  );
});
