import assert from "node:assert/strict";
import { readClients, verifyClient } from "../../lib/credhub/_clients.ts";

import { sigil as run } from "../_helpers/proc.ts";

const sigil = (...args: string[]) => run(args);

Deno.test("sigil credhub client add prints a secret once that the clients file verifies; list and remove", async () => {
  const file = `${await Deno.makeTempDir()}/clients.json`;
  const add = await sigil(
    "credhub",
    "client",
    "add",
    "broker",
    "--clients-file",
    file,
    "--scope",
    "credhub.write",
    "--scope",
    "credhub.read",
  );
  assert.equal(add.code, 0, add.stderr);
  const secret = add.stdout.match(/^secret: (\S+)$/m)?.[1];
  assert.ok(secret);
  assert.ok(!add.stderr.includes(secret));
  assert.deepEqual(
    await verifyClient(await readClients(file), "broker", secret),
    [
      "credhub.write",
      "credhub.read",
    ],
  );

  const again = await sigil(
    "credhub",
    "client",
    "add",
    "broker",
    "--clients-file",
    file,
    "--scope",
    "credhub.read",
  );
  assert.equal(again.code, 1);
  assert.match(again.stderr, /Cannot add client "broker": it exists/);

  const list = await sigil("credhub", "client", "list", "--clients-file", file);
  assert.equal(list.code, 0);
  assert.match(list.stdout, /^broker\tcredhub\.write credhub\.read\t\d{4}-/);
  assert.ok(!list.stdout.includes(secret));

  const rm = await sigil(
    "credhub",
    "client",
    "remove",
    "broker",
    "--clients-file",
    file,
  );
  assert.equal(rm.code, 0);
  const rm2 = await sigil(
    "credhub",
    "client",
    "remove",
    "broker",
    "--clients-file",
    file,
  );
  assert.equal(rm2.code, 1);
  assert.match(rm2.stderr, /no such client/);
});

Deno.test("sigil credhub client add without --scope is a usage-style error naming the fix", async () => {
  const file = `${await Deno.makeTempDir()}/clients.json`;
  const r = await sigil(
    "credhub",
    "client",
    "add",
    "x",
    "--clients-file",
    file,
  );
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /give at least one --scope/);
});
