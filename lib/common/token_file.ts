/**
 * Bearer tokens kept in files (rotator → CA, proxy → router API).
 * @module
 */

/**
 * Reads a token file fresh (a rotated token is picked up at once), trimmed.
 *
 * @throws {Error} `Cannot read token file "<path>": <why>` when it is missing,
 *   unreadable or empty; the message never holds the token.
 * @example
 * ```ts
 * import { readTokenFile } from "./token_file.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "eyJ.x.y\n");
 * console.assert((await readTokenFile(path)) === "eyJ.x.y");
 * await Deno.remove(path);
 * ```
 */
export async function readTokenFile(path: string): Promise<string> {
  let token: string;
  try {
    token = (await Deno.readTextFile(path)).trim();
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound
      ? "file not found"
      : (err as Error).message;
    throw new Error(`Cannot read token file "${path}": ${why}`, {
      cause: err,
    });
  }
  if (!token) {
    throw new Error(`Cannot read token file "${path}": file is empty`);
  }
  return token;
}
