/**
 * Encryption keys: a directory of `<id>.key` files (32 random bytes, base64,
 * mode 0600). Values are sealed with AES-256-GCM; the key id is stored beside
 * each row so rotation can re-encrypt row by row.
 * @module
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  randomBytes,
} from "node:crypto";
import { join } from "node:path";
import { CredhubError } from "./errors.ts";

/** A sealed value. */
export interface Sealed {
  keyId: string;
  nonce: Uint8Array;
  ciphertext: Uint8Array;
}

/** The keys found in `keys_dir`. */
export class KeyRing {
  readonly dir: string;
  #keys = new Map<string, Uint8Array>();
  /** The file each key came from (an operator may name them as they like). */
  #files = new Map<string, string>();

  constructor(dir: string) {
    this.dir = dir;
  }

  /**
   * Loads every key file; refuses group/world-readable ones.
   * @throws {CredhubError} `ERR_CREDHUB_KEY_PERMISSIONS`, `ERR_CREDHUB_KEY_INVALID`.
   */
  reload(): void {
    const keys = new Map<string, Uint8Array>();
    const files = new Map<string, string>();
    for (const entry of Deno.readDirSync(this.dir)) {
      if (!entry.isFile || !entry.name.endsWith(".key")) continue;
      const path = join(this.dir, entry.name);
      let mode: number, text: string;
      try {
        mode = Deno.statSync(path).mode ?? 0;
        text = Deno.readTextFileSync(path);
      } catch (err) {
        // A rotation in another process deleted it after the listing.
        if (err instanceof Deno.errors.NotFound) continue;
        throw err;
      }
      if (mode & 0o077) {
        throw new CredhubError(
          "ERR_CREDHUB_KEY_PERMISSIONS",
          500,
          `Cannot use encryption key "${path}": it is readable by group or others (mode ${
            (mode & 0o777).toString(8)
          }); run 'chmod 600 ${path}'`,
        );
      }
      const bytes = decodeKey(text);
      if (!bytes) {
        throw new CredhubError(
          "ERR_CREDHUB_KEY_INVALID",
          500,
          `Cannot use encryption key "${path}": expected 32 bytes in base64`,
        );
      }
      keys.set(keyId(bytes), bytes);
      files.set(keyId(bytes), path);
    }
    this.#keys = keys;
    this.#files = files;
  }

  /** Key ids available. */
  ids(): string[] {
    return [...this.#keys.keys()];
  }

  has(id: string): boolean {
    return this.#keys.has(id);
  }

  /** Creates a new key file; returns its id. */
  create(): string {
    Deno.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const bytes = new Uint8Array(randomBytes(32));
    const id = keyId(bytes);
    const path = join(this.dir, `${id}.key`);
    Deno.writeTextFileSync(
      path + ".tmp",
      btoa(String.fromCharCode(...bytes)) + "\n",
      {
        mode: 0o600,
      },
    );
    Deno.chmodSync(path + ".tmp", 0o600);
    Deno.renameSync(path + ".tmp", path);
    this.#keys.set(id, bytes);
    this.#files.set(id, path);
    return id;
  }

  /** Deletes a key's file (whatever its name) and forgets the key. */
  remove(id: string): void {
    try {
      Deno.removeSync(this.#files.get(id) ?? join(this.dir, `${id}.key`));
    } catch (err) {
      // Another rotation removed it first.
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    this.#keys.delete(id);
    this.#files.delete(id);
  }

  /** Seals `plain` under key `id`, binding it to `aad`. */
  seal(id: string, plain: string, aad: string): Sealed {
    const key = this.#get(id);
    const nonce = new Uint8Array(randomBytes(12));
    const c = createCipheriv("aes-256-gcm", key, nonce);
    c.setAAD(new TextEncoder().encode(aad));
    const body = Buffer.concat([
      c.update(plain, "utf8"),
      c.final(),
      c.getAuthTag(),
    ]);
    return { keyId: id, nonce, ciphertext: new Uint8Array(body) };
  }

  /** Opens a sealed value. */
  open(sealed: Sealed, aad: string): string {
    const key = this.#get(sealed.keyId);
    const d = createDecipheriv("aes-256-gcm", key, sealed.nonce);
    d.setAAD(new TextEncoder().encode(aad));
    const ct = sealed.ciphertext;
    d.setAuthTag(ct.subarray(ct.length - 16));
    return Buffer.concat([d.update(ct.subarray(0, ct.length - 16)), d.final()])
      .toString("utf8");
  }

  #get(id: string): Uint8Array {
    let key = this.#keys.get(id);
    if (!key) {
      // A rotation in another process may have added it.
      this.reload();
      key = this.#keys.get(id);
    }
    if (!key) {
      throw new CredhubError(
        "ERR_CREDHUB_KEY_MISSING",
        500,
        "The credential could not be accessed with the provided encryption keys. You must update your deployment configuration to continue.",
      );
    }
    return key;
  }
}

function keyId(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex").slice(0, 16);
}

function decodeKey(text: string): Uint8Array | undefined {
  try {
    const raw = atob(text.trim());
    if (raw.length !== 32) return undefined;
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}
