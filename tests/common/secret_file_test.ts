/** The one secret-file writer (lib/common/secret_file.ts). */
import assert from "node:assert/strict";
import { writeSecretFile } from "../../lib/common/mod.ts";

Deno.test("writeSecretFile() writes mode 0600, replaces atomically and leaves no temporary file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/instance.key`;
    await writeSecretFile(path, "one");
    await writeSecretFile(path, "two");
    assert.equal(await Deno.readTextFile(path), "two");
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    await writeSecretFile(`${dir}/instance.crt`, "c", { mode: 0o644 });
    assert.equal((await Deno.stat(`${dir}/instance.crt`)).mode! & 0o777, 0o644);
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names.sort(), ["instance.crt", "instance.key"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeSecretFile() with exclusive never replaces an existing file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/root.key`;
    await writeSecretFile(path, "first", { exclusive: true });
    await assert.rejects(
      writeSecretFile(path, "second", { exclusive: true }),
      Deno.errors.AlreadyExists,
    );
    assert.equal(await Deno.readTextFile(path), "first");
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names, ["root.key"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
