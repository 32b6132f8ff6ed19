/**
 * The credential store in PostgreSQL, shared by `sigil credhub` replicas:
 * the CA's connection code (`connectPg`: password file, CA bundle, sslmode)
 * and migrations (once, under an advisory lock), its own tables. Values are
 * sealed by the {@linkcode KeyRing} as in SQLite; every replica needs the
 * same key files in its `keys_dir`.
 * @module
 */
import type postgres from "postgres";
import type { LedgerStoreConfig, PostgresStore } from "../config/mod.ts";
import { connectPg, isUnavailable, migrate } from "../ca/mod.ts";
import type { PgDeps, Sql } from "../ca/mod.ts";
import { KeyRing } from "./_keys.ts";
import {
  openRow,
  requireKeys,
  resealRow,
  SqliteCredentialStore,
} from "./_store.ts";
import type {
  CredentialStore,
  CredentialVersion,
  Permission,
  Row,
} from "./_store.ts";
import { CredhubError } from "./errors.ts";

/** The schema; append steps, never edit a released one. */
const MIGRATIONS: readonly { version: number; sql: string }[] = [{
  version: 1,
  sql: `CREATE TABLE credhub_meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
    CREATE TABLE credhub_credentials (seq BIGSERIAL PRIMARY KEY,
      id TEXT NOT NULL UNIQUE, name TEXT NOT NULL, type TEXT NOT NULL,
      created_at BIGINT NOT NULL, key_id TEXT NOT NULL,
      nonce BYTEA NOT NULL, ciphertext BYTEA NOT NULL);
    CREATE INDEX credhub_credentials_name
      ON credhub_credentials (lower(name), created_at);
    CREATE INDEX credhub_credentials_key ON credhub_credentials (key_id);
    CREATE TABLE credhub_permissions (uuid TEXT PRIMARY KEY,
      actor TEXT NOT NULL, path TEXT NOT NULL, operations TEXT NOT NULL,
      UNIQUE (actor, path))`,
}];

/** Advisory lock keys: migrations ("chmig"), rotation ("chrot"). */
const MIGRATION_LOCK = 0x63686d6967;
const ROTATION_LOCK = 0x6368726f74;

/** A {@linkcode CredhubError} for a failed query (503 when the server is down). */
function pgFail(err: unknown, what: string): CredhubError {
  if (err instanceof CredhubError) return err;
  const unavailable = isUnavailable(err);
  return new CredhubError(
    unavailable ? "ERR_CREDHUB_STORE_UNAVAILABLE" : "ERR_CREDHUB_STORE",
    unavailable ? 503 : 500,
    `${what}: ${unavailable ? "PostgreSQL is unavailable: " : ""}${
      (err as Error)?.message ?? String(err)
    }`,
    { cause: err },
  );
}

/** The PostgreSQL store. */
export class PgCredentialStore implements CredentialStore {
  readonly keys: KeyRing;
  readonly path: string;
  readonly sql: Sql;
  lastCount = 0;

  private constructor(path: string, sql: Sql, keys: KeyRing) {
    this.path = path;
    this.sql = sql;
    this.keys = keys;
  }

  /**
   * Connects, migrates, records the active key when none is.
   * @throws {CredhubError} `ERR_CREDHUB_STORE_UNAVAILABLE` / `ERR_CREDHUB_STORE`.
   */
  static async open(
    store: PostgresStore,
    keysDir: string,
    deps: PgDeps = {},
  ): Promise<PgCredentialStore> {
    const keys = new KeyRing(keysDir);
    Deno.mkdirSync(keysDir, { recursive: true, mode: 0o700 });
    keys.reload();
    let sql: Sql;
    try {
      sql = await connectPg(store, {
        setting: "credhub.store",
        what: "credential store",
        applicationName: "sigil-credhub",
        ...deps,
      });
    } catch (err) {
      throw pgFail(err, `Cannot open credential store "${store.display}"`);
    }
    const s = new PgCredentialStore(store.display, sql, keys);
    try {
      await migrate(sql, store.display, MIGRATIONS, {
        table: "credhub_migrations",
        lock: MIGRATION_LOCK,
        what: "credential store",
      });
      if (!await s.#activeKeyId()) {
        const id = keys.ids()[0] ?? keys.create();
        await sql`INSERT INTO credhub_meta VALUES ('active_key', ${id})
          ON CONFLICT (k) DO NOTHING`;
      }
      const active = (await s.#activeKeyId())!;
      if (!keys.has(active)) keys.reload();
      requireKeys(
        keys,
        (await sql<{ key_id: string }[]>`
          SELECT DISTINCT key_id FROM credhub_credentials`).map((r) =>
          r.key_id
        ),
      );
      await s.count();
    } catch (err) {
      await sql.end({ timeout: 1 }).catch(() => {});
      throw pgFail(err, `Cannot open credential store "${store.display}"`);
    }
    return s;
  }

  async #activeKeyId(): Promise<string | undefined> {
    const [r] = await this.sql<{ v: string }[]>`
      SELECT v FROM credhub_meta WHERE k = 'active_key'`;
    return r?.v;
  }

  async #q<T>(what: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (err) {
      throw pgFail(err, `Cannot ${what} in "${this.path}"`);
    }
  }

  async put(
    name: string,
    type: string,
    value: unknown,
    metadata: unknown,
    options: { now?: number; grant?: Permission } = {},
  ): Promise<CredentialVersion> {
    const id = crypto.randomUUID();
    const now = options.now ?? Date.now();
    const stored = await this.#q(
      "write a credential",
      () =>
        this.sql.begin(async (tx) => {
          // One writer per name (any case) at a time: the first spelling wins.
          await tx`SELECT pg_advisory_xact_lock(hashtext(lower(${name})))`;
          // FOR SHARE waits for a rotation switching keys, then sees its key.
          const [meta] = await tx<{ v: string }[]>`
          SELECT v FROM credhub_meta WHERE k = 'active_key' FOR SHARE`;
          const keyId = meta!.v;
          if (!this.keys.has(keyId)) this.keys.reload();
          if (options.grant) await this.#savePermission(tx, options.grant);
          const [first] = await tx<{ name: string }[]>`
          SELECT name FROM credhub_credentials WHERE lower(name) = lower(${name})
          ORDER BY created_at, seq LIMIT 1`;
          const n = first?.name ?? name;
          const s = this.keys.seal(
            keyId,
            JSON.stringify({ value, metadata }),
            id + n,
          );
          await tx`INSERT INTO credhub_credentials
          (id, name, type, created_at, key_id, nonce, ciphertext)
          VALUES (${id}, ${n}, ${type}, ${now}, ${s.keyId},
            ${s.nonce}, ${s.ciphertext})`;
          return n;
        }),
    );
    await this.count().catch(() => {});
    return { id, name: stored, type, createdAt: now, value, metadata };
  }

  async versions(name: string, limit?: number): Promise<CredentialVersion[]> {
    const rows = await this.#q(
      "read a credential",
      () =>
        this.sql<Row[]>`SELECT id, name, type, created_at, key_id, nonce,
          ciphertext FROM credhub_credentials WHERE lower(name) = lower(${name})
        ORDER BY created_at DESC, seq DESC LIMIT ${limit ?? null}`,
    );
    return rows.map((r) => openRow(this.keys, r));
  }

  async byId(id: string): Promise<CredentialVersion | undefined> {
    const [r] = await this.#q(
      "read a credential",
      () =>
        this.sql<Row[]>`SELECT id, name, type, created_at, key_id, nonce,
          ciphertext FROM credhub_credentials WHERE id = ${id}`,
    );
    return r ? openRow(this.keys, r) : undefined;
  }

  async exists(name: string): Promise<boolean> {
    const [r] = await this.#q(
      "read a credential",
      () =>
        this.sql`SELECT 1 FROM credhub_credentials
        WHERE lower(name) = lower(${name}) LIMIT 1`,
    );
    return r !== undefined;
  }

  async names(): Promise<Array<{ name: string; createdAt: number }>> {
    const rows = await this.#q(
      "list credentials",
      () =>
        this.sql<{ name: string; t: string }[]>`SELECT name,
          MAX(created_at) AS t FROM credhub_credentials GROUP BY name
        ORDER BY t DESC`,
    );
    return rows.map((r) => ({ name: r.name, createdAt: Number(r.t) }));
  }

  async delete(name: string): Promise<boolean> {
    const r = await this.#q(
      "delete a credential",
      () =>
        this.sql`DELETE FROM credhub_credentials
        WHERE lower(name) = lower(${name})`,
    );
    await this.count().catch(() => {});
    return r.count > 0;
  }

  async count(): Promise<number> {
    const [r] = await this.#q(
      "count credentials",
      () =>
        this.sql<{ n: string }[]>`SELECT COUNT(DISTINCT name) AS n
        FROM credhub_credentials`,
    );
    return this.lastCount = Number(r!.n);
  }

  async permissions(): Promise<Permission[]> {
    const rows = await this.#q("read permissions", () =>
      this.sql<
        { uuid: string; actor: string; path: string; operations: string }[]
      >`SELECT uuid, actor, path, operations FROM credhub_permissions`);
    return rows.map((r) => ({
      uuid: r.uuid,
      actor: r.actor,
      path: r.path,
      operations: JSON.parse(r.operations),
    }));
  }

  async permission(uuid: string): Promise<Permission | undefined> {
    return (await this.permissions()).find((p) => p.uuid === uuid);
  }

  async savePermission(p: Permission): Promise<Permission> {
    await this.#q(
      "write a permission",
      () => this.#savePermission(this.sql, p),
    );
    return p;
  }

  async #savePermission(
    sql: Sql | postgres.TransactionSql,
    p: Permission,
  ): Promise<void> {
    await sql`INSERT INTO credhub_permissions
      VALUES (${p.uuid}, ${p.actor}, ${p.path}, ${JSON.stringify(p.operations)})
      ON CONFLICT (uuid) DO UPDATE SET actor = excluded.actor,
        path = excluded.path, operations = excluded.operations`;
  }

  async deletePermission(uuid: string): Promise<void> {
    await this.#q(
      "delete a permission",
      () => this.sql`DELETE FROM credhub_permissions WHERE uuid = ${uuid}`,
    );
  }

  /**
   * Rotates to a new key in one transaction under an advisory lock (one
   * rotation at a time across replicas): the active key switches and every
   * row is re-encrypted, or nothing is; then the old key files go.
   */
  async rotateKey(): Promise<{ keyId: string; rows: number }> {
    let keyId = "";
    const rows = await this.#q(
      "rotate the key",
      () =>
        this.sql.begin(async (tx) => {
          await tx`SELECT pg_advisory_xact_lock(${ROTATION_LOCK})`;
          this.keys.reload();
          keyId = this.keys.create();
          // Writers (FOR SHARE on this row) wait, then seal with the new key.
          await tx`UPDATE credhub_meta SET v = ${keyId} WHERE k = 'active_key'`;
          let n = 0;
          for (;;) {
            const batch = await tx<Row[]>`SELECT id, name, type, created_at,
              key_id, nonce, ciphertext FROM credhub_credentials
            WHERE key_id <> ${keyId} LIMIT 100`;
            if (batch.length === 0) break;
            for (const r of batch) {
              const s = resealRow(this.keys, r, keyId);
              await tx`UPDATE credhub_credentials SET key_id = ${keyId},
                nonce = ${s.nonce}, ciphertext = ${s.ciphertext}
              WHERE id = ${r.id}`;
            }
            n += batch.length;
          }
          return n;
        }),
    ).catch((err) => {
      // The new key of a failed rotation is unused: remove it.
      if (keyId) this.keys.remove(keyId);
      throw err;
    });
    for (const id of this.keys.ids()) if (id !== keyId) this.keys.remove(id);
    return { keyId, rows };
  }

  async close(): Promise<void> {
    await this.sql.end({ timeout: 5 });
  }
}

/**
 * Opens the configured store: `credhub.store` (SQLite path or PostgreSQL),
 * else the SQLite file `credhub.database`.
 */
export async function openCredentialStore(
  config: {
    database?: string;
    store?: LedgerStoreConfig;
    keys_dir: string;
  },
  deps: PgDeps = {},
): Promise<CredentialStore> {
  if (config.store?.kind === "postgres") {
    return await PgCredentialStore.open(config.store, config.keys_dir, deps);
  }
  const path = config.store?.path ?? config.database;
  if (!path) {
    throw new CredhubError(
      "ERR_CREDHUB_STORE",
      500,
      "Cannot open the credential store: set credhub.database or credhub.store",
    );
  }
  return new SqliteCredentialStore(path, config.keys_dir);
}
