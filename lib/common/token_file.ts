/**
 * Bearer tokens kept in files (rotator → CA, proxy → router API).
 * @module
 */
import { ApplianceError } from "./errors.ts";
import { assertPrivateFile, FilePermissionError } from "./file_mode.ts";

/** A token file cannot be used (missing, unreadable, open to others, not a JWT). */
export class TokenFileError extends ApplianceError {
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}

// The compact JWS alphabet: base64url parts joined by dots. Anything else (a
// line break inside a wrapped token, a PEM key's spaces, '+', '/', '=') would
// make an invalid header value, and the runtime's error quotes the value.
const JWT_ALPHABET = /^[A-Za-z0-9_\-.]+$/;

/**
 * Reads a token file fresh (a rotated token is picked up at once). One
 * trailing newline (`\n` or `\r\n`) is dropped; nothing else is trimmed.
 *
 * @throws {TokenFileError} `ERR_TOKEN_FILE_UNREADABLE` when it is missing,
 *   unreadable or empty; `ERR_FILE_PERMISSIONS` when group or others can read
 *   it; `ERR_TOKEN_FILE_NOT_JWT` (`token file "<path>" is not a JWT`) for any
 *   character outside the JWT alphabet. No message holds the content.
 * @example
 * ```ts
 * import { readTokenFile } from "./token_file.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "eyJ.x.y\n", { mode: 0o600 });
 * console.assert((await readTokenFile(path)) === "eyJ.x.y");
 * await Deno.remove(path);
 * ```
 */
export async function readTokenFile(path: string): Promise<string> {
  let text: string;
  try {
    await assertPrivateFile(path, "token file");
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof FilePermissionError) {
      throw new TokenFileError(err.code, err.message, { cause: err });
    }
    const why = err instanceof Deno.errors.NotFound
      ? "file not found"
      : err instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : (err as Error).message;
    throw new TokenFileError(
      "ERR_TOKEN_FILE_UNREADABLE",
      `Cannot read token file "${path}": ${why}`,
      { cause: err },
    );
  }
  const token = text.replace(/\r?\n$/, "");
  if (!token) {
    throw new TokenFileError(
      "ERR_TOKEN_FILE_UNREADABLE",
      `Cannot read token file "${path}": file is empty`,
    );
  }
  if (!JWT_ALPHABET.test(token)) {
    throw new TokenFileError(
      "ERR_TOKEN_FILE_NOT_JWT",
      `Cannot use token: token file "${path}" is not a JWT (it must hold the token alone on one line, as 'sigil ca token' prints it; a wrapped line or a key file does not work)`,
    );
  }
  return token;
}
