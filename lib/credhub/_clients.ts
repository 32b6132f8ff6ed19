/**
 * The CredHub clients file: UAA-style client credentials (name, scopes,
 * salted scrypt hash of the secret) that `sigil credhub client add` writes and
 * the token endpoint (`_uaa.ts`) checks. The file must be 0600: a group- or
 * world-readable file is refused, since its hashes are guessable offline.
 * @module
 */
import { Buffer } from "node:buffer";
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { ApplianceError } from "../common/errors.ts";

/** A clients-file condition callers catch (`ERR_CREDHUB_CLIENTS_*`). */
export class CredhubClientsError extends ApplianceError {}

/** One client as stored (no secret, only its hash). */
export interface StoredClient {
  scopes: string[];
  salt: string;
  hash: string;
  created_at: string;
}

/** A client as listed. */
export interface ClientInfo {
  name: string;
  scopes: string[];
  createdAt: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const SCOPE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const KEY_LEN = 32;

const ALPHANUMERIC =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/**
 * 32 letters and digits (190 bits). No "-" or "_": a secret starting with
 * "-" is taken for a flag by `credhub login --client-secret`.
 */
function newSecret(): string {
  let out = "";
  while (out.length < 32) {
    for (const b of randomBytes(48)) {
      // 248 = 4 * 62: rejecting larger bytes keeps every character equally likely.
      if (b < 248 && out.length < 32) out += ALPHANUMERIC[b % 62];
    }
  }
  return out;
}

function hashSecret(secret: string, salt: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(
      secret,
      salt,
      KEY_LEN,
      { N: 16384, r: 8, p: 1 },
      (err, key) => err ? reject(err) : resolve(key),
    )
  );
}

/**
 * Reads the clients file; a missing file is an empty set.
 *
 * @param path The clients file.
 * @returns Clients by name.
 * @throws {CredhubClientsError} `ERR_CREDHUB_CLIENTS_PERMISSIONS` when group or
 *   world can read it, `ERR_CREDHUB_CLIENTS_INVALID` when it is not a clients file.
 *
 * @example
 * ```ts ignore
 * const clients = await readClients("/var/lib/sigil/credhub-clients.json");
 * ```
 */
export async function readClients(
  path: string,
): Promise<Record<string, StoredClient>> {
  let text: string;
  try {
    const info = await Deno.stat(path);
    if (info.mode !== null && (info.mode & 0o077) !== 0) {
      throw new CredhubClientsError(
        "ERR_CREDHUB_CLIENTS_PERMISSIONS",
        `Cannot use clients file "${path}": it is readable by group or others (mode ${
          (info.mode & 0o777).toString(8)
        }); run 'chmod 600 ${path}'`,
      );
    }
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return {};
    throw err;
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw invalid(path, "it is not JSON", err);
  }
  const clients = (data as { clients?: unknown })?.clients;
  if (typeof clients !== "object" || clients === null) {
    throw invalid(path, 'it has no "clients" object');
  }
  for (const [name, c] of Object.entries(clients)) {
    const v = c as Partial<StoredClient>;
    if (
      !Array.isArray(v?.scopes) || typeof v.salt !== "string" ||
      typeof v.hash !== "string"
    ) throw invalid(path, `client "${name}" lacks scopes, salt or hash`);
  }
  return clients as Record<string, StoredClient>;
}

function invalid(path: string, why: string, cause?: unknown) {
  return new CredhubClientsError(
    "ERR_CREDHUB_CLIENTS_INVALID",
    `Cannot read clients file "${path}": ${why}; recreate it with 'sigil credhub client add'`,
    { cause },
  );
}

async function writeClients(
  path: string,
  clients: Record<string, StoredClient>,
): Promise<void> {
  const tmp = `${path}.tmp-${crypto.randomUUID()}`;
  await Deno.writeTextFile(tmp, JSON.stringify({ clients }, null, 2) + "\n", {
    mode: 0o600,
  });
  await Deno.chmod(tmp, 0o600);
  await Deno.rename(tmp, path);
}

/**
 * Adds a client with a fresh random secret and returns the secret (the only
 * time it exists in clear).
 *
 * @param path The clients file (created 0600 if missing).
 * @param name Client name (`[A-Za-z0-9._-]`).
 * @param scopes Scopes such as `credhub.read`, `credhub.write`.
 * @returns The secret.
 * @throws {CredhubClientsError} `ERR_CREDHUB_CLIENT_EXISTS`, `ERR_CREDHUB_CLIENT_INVALID`.
 *
 * @example
 * ```ts ignore
 * const secret = await addClient(file, "broker", ["credhub.write"]);
 * ```
 */
export async function addClient(
  path: string,
  name: string,
  scopes: string[],
): Promise<string> {
  if (!NAME.test(name)) {
    throw new CredhubClientsError(
      "ERR_CREDHUB_CLIENT_INVALID",
      `Cannot add client "${name}": names use letters, digits, ".", "_" and "-"`,
    );
  }
  const bad = scopes.find((s) => !SCOPE.test(s));
  if (scopes.length === 0 || bad !== undefined) {
    throw new CredhubClientsError(
      "ERR_CREDHUB_CLIENT_INVALID",
      bad === undefined
        ? `Cannot add client "${name}": give at least one --scope (e.g. credhub.write)`
        : `Cannot add client "${name}": scope "${bad}" is not a scope name`,
    );
  }
  const clients = await readClients(path);
  if (clients[name]) {
    throw new CredhubClientsError(
      "ERR_CREDHUB_CLIENT_EXISTS",
      `Cannot add client "${name}": it exists; remove it first with 'sigil credhub client remove ${name}'`,
    );
  }
  const secret = newSecret();
  const salt = randomBytes(16);
  clients[name] = {
    scopes: [...new Set(scopes)],
    salt: salt.toString("base64"),
    hash: (await hashSecret(secret, salt)).toString("base64"),
    created_at: new Date().toISOString(),
  };
  await writeClients(path, clients);
  return secret;
}

/**
 * Removes a client.
 *
 * @returns Whether it existed.
 *
 * @example
 * ```ts ignore
 * await removeClient(file, "broker");
 * ```
 */
export async function removeClient(
  path: string,
  name: string,
): Promise<boolean> {
  const clients = await readClients(path);
  if (!clients[name]) return false;
  delete clients[name];
  await writeClients(path, clients);
  return true;
}

/**
 * Lists clients by name.
 *
 * @example
 * ```ts ignore
 * for (const c of await listClients(file)) console.log(c.name, c.scopes);
 * ```
 */
export async function listClients(path: string): Promise<ClientInfo[]> {
  return Object.entries(await readClients(path))
    .sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
    .map(([name, c]) => ({ name, scopes: c.scopes, createdAt: c.created_at }));
}

/**
 * Checks a client's secret in constant time.
 *
 * @returns The client's scopes, or `undefined` for an unknown client or a
 *   wrong secret (the two are not told apart).
 *
 * @example
 * ```ts ignore
 * const scopes = await verifyClient(await readClients(file), "broker", secret);
 * ```
 */
export async function verifyClient(
  clients: Record<string, StoredClient>,
  name: string,
  secret: string,
): Promise<string[] | undefined> {
  const c = Object.hasOwn(clients, name) ? clients[name] : undefined;
  // Unknown clients still pay one hash so timing does not reveal names.
  const salt = Buffer.from(c?.salt ?? "AAAAAAAAAAAAAAAAAAAAAA==", "base64");
  const got = await hashSecret(secret, salt);
  const want = c ? Buffer.from(c.hash, "base64") : Buffer.alloc(KEY_LEN);
  const same = want.length === got.length && timingSafeEqual(want, got);
  return c && same ? c.scopes : undefined;
}
