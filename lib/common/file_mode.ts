/**
 * Mode checks for files that hold secrets (private keys, bearer tokens): a
 * role refuses one that group or others can read, as the CA does for its keys.
 * @module
 */
import { ApplianceError } from "./errors.ts";

/** A secret file is readable by group or others. */
export class FilePermissionError extends ApplianceError {
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_FILE_PERMISSIONS", message, options);
  }
}

/**
 * Throws when `path` can be read or written by group or others (any of the
 * mode bits 0o077). Platforms without modes (Windows) pass.
 *
 * @param path The file.
 * @param what What it holds, for the message (`"proxy instance key"`).
 * @throws {FilePermissionError} `Cannot use <what> "<path>": it is readable by
 *   group or others (mode 644); run 'chmod 600 <path>'`.
 * @throws {Deno.errors.NotFound} when the file does not exist.
 * @example
 * ```ts
 * import { assertPrivateFile } from "./file_mode.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.chmod(path, 0o600);
 * await assertPrivateFile(path, "key");
 * await Deno.remove(path);
 * ```
 */
export async function assertPrivateFile(
  path: string,
  what: string,
): Promise<void> {
  const st = await Deno.stat(path);
  if (st.mode !== null && (st.mode & 0o077) !== 0) {
    throw new FilePermissionError(
      `Cannot use ${what} "${path}": it is readable by group or others (mode ${
        (st.mode & 0o777).toString(8)
      }); run 'chmod 600 ${path}'`,
    );
  }
}
