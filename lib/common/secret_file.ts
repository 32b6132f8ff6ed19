/**
 * The one way Sigil writes a secret (or any file a reader must never see half
 * written): a temporary file created with the final mode, every byte written,
 * fsynced, then renamed (or, with `exclusive`, hard-linked so an existing file
 * is never replaced) over the target.
 * @module
 */
import { basename, dirname, join } from "node:path";

/** Options of {@linkcode writeSecretFile}. */
export interface WriteSecretFileOptions {
  /** File mode. @default {0o600} */
  mode?: number;
  /** Fail with `Deno.errors.AlreadyExists` when the target exists. @default {false} */
  exclusive?: boolean;
  /** fsync the file before it becomes visible (off only in benchmarks). @default {true} */
  sync?: boolean;
}

/**
 * Writes `data` to `path` atomically with mode 0600 (or `mode`).
 *
 * @throws {Deno.errors.AlreadyExists} With `exclusive` when `path` exists.
 * @example
 * ```ts
 * import { writeSecretFile } from "./secret_file.ts";
 * const dir = await Deno.makeTempDir();
 * await writeSecretFile(`${dir}/k.pem`, "secret");
 * console.assert(((await Deno.stat(`${dir}/k.pem`)).mode! & 0o777) === 0o600);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeSecretFile(
  path: string,
  data: string | Uint8Array,
  options: WriteSecretFileOptions = {},
): Promise<void> {
  const mode = options.mode ?? 0o600;
  const bytes = typeof data === "string"
    ? new TextEncoder().encode(data)
    : data;
  const tmp = join(
    dirname(path),
    `.${basename(path)}.tmp-${crypto.randomUUID().slice(0, 8)}`,
  );
  const f = await Deno.open(tmp, { write: true, createNew: true, mode });
  try {
    // The umask may have narrowed `mode` (or, for 0644, nothing to widen).
    await Deno.chmod(tmp, mode);
    let off = 0;
    while (off < bytes.length) off += await f.write(bytes.subarray(off));
    if (options.sync ?? true) await f.sync();
  } catch (err) {
    f.close();
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  f.close();
  try {
    if (options.exclusive) await Deno.link(tmp, path);
    else await Deno.rename(tmp, path);
  } finally {
    if (options.exclusive) await Deno.remove(tmp).catch(() => {});
  }
}
