import assert from "node:assert/strict";
import {
  addClient,
  CredhubClientsError,
  listClients,
  readClients,
  removeClient,
  verifyClient,
} from "../../lib/credhub/_clients.ts";

async function tempFile(): Promise<string> {
  const dir = await Deno.makeTempDir();
  return `${dir}/clients.json`;
}

Deno.test("addClient() writes a 0600 file whose secret verifies and whose text holds no secret", async () => {
  const file = await tempFile();
  const secret = await addClient(file, "broker", [
    "credhub.write",
    "credhub.read",
  ]);
  assert.ok(secret.length >= 32);
  assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
  assert.ok(!(await Deno.readTextFile(file)).includes(secret));
  const clients = await readClients(file);
  assert.deepEqual(await verifyClient(clients, "broker", secret), [
    "credhub.write",
    "credhub.read",
  ]);
  assert.equal(await verifyClient(clients, "broker", secret + "x"), undefined);
  assert.equal(await verifyClient(clients, "nobody", secret), undefined);
  assert.equal(await verifyClient(clients, "__proto__", secret), undefined);
});

Deno.test("addClient() gives each client its own salt and secret", async () => {
  const file = await tempFile();
  const a = await addClient(file, "a", ["credhub.read"]);
  const b = await addClient(file, "b", ["credhub.read"]);
  assert.notEqual(a, b);
  const clients = await readClients(file);
  assert.notEqual(clients.a!.salt, clients.b!.salt);
  assert.equal(await verifyClient(clients, "a", b), undefined);
});

Deno.test("addClient() secrets are 32 letters and digits: never start with '-' (credhub login would read a flag)", async () => {
  const file = await tempFile();
  const seen = new Set<string>();
  for (let i = 0; i < 40; i++) {
    const secret = await addClient(file, `c${i}`, ["credhub.read"]);
    assert.match(secret, /^[A-Za-z0-9]{32}$/);
    for (const ch of secret) seen.add(ch);
  }
  // 1280 draws over 62 symbols: every class shows up.
  assert.ok([...seen].some((c) => /[A-Z]/.test(c)));
  assert.ok([...seen].some((c) => /[a-z]/.test(c)));
  assert.ok([...seen].some((c) => /[0-9]/.test(c)));
});

Deno.test("addClient() refuses duplicates, bad names and missing scopes", async () => {
  const file = await tempFile();
  await addClient(file, "broker", ["credhub.write"]);
  await assert.rejects(
    addClient(file, "broker", ["credhub.write"]),
    (e) =>
      e instanceof CredhubClientsError &&
      e.code === "ERR_CREDHUB_CLIENT_EXISTS",
  );
  await assert.rejects(
    addClient(file, "bad name", ["credhub.write"]),
    (e) =>
      e instanceof CredhubClientsError &&
      e.code === "ERR_CREDHUB_CLIENT_INVALID",
  );
  await assert.rejects(
    addClient(file, "x", []),
    /give at least one --scope/,
  );
});

Deno.test("readClients() refuses a group- or world-readable file", async () => {
  const file = await tempFile();
  await addClient(file, "broker", ["credhub.write"]);
  await Deno.chmod(file, 0o640);
  await assert.rejects(
    readClients(file),
    (e) =>
      e instanceof CredhubClientsError &&
      e.code === "ERR_CREDHUB_CLIENTS_PERMISSIONS" &&
      /chmod 600/.test(e.message),
  );
});

Deno.test("readClients() names a file that is not a clients file", async () => {
  const file = await tempFile();
  await Deno.writeTextFile(file, "{not json", { mode: 0o600 });
  await assert.rejects(readClients(file), /is not JSON/);
  await Deno.writeTextFile(file, '{"clients":{"a":{}}}', { mode: 0o600 });
  await assert.rejects(readClients(file), /client "a" lacks/);
});

Deno.test("listClients() and removeClient() keep the others", async () => {
  const file = await tempFile();
  await addClient(file, "b", ["credhub.read"]);
  const secretA = await addClient(file, "a", ["credhub.write"]);
  assert.deepEqual((await listClients(file)).map((c) => c.name), ["a", "b"]);
  assert.equal(await removeClient(file, "b"), true);
  assert.equal(await removeClient(file, "b"), false);
  assert.deepEqual((await listClients(file)).map((c) => c.name), ["a"]);
  assert.deepEqual(await verifyClient(await readClients(file), "a", secretA), [
    "credhub.write",
  ]);
  assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
});
