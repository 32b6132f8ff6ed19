/**
 * The credential store: SQLite (`node:sqlite`, WAL, synchronous=FULL so an
 * acknowledged write survives kill -9), every value sealed by the
 * {@linkcode KeyRing}; the active key id lives in the database so a rotation
 * in another process is seen by every writer.
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { KeyRing } from "./_keys.ts";
import type { Sealed } from "./_keys.ts";
import { CredhubError } from "./errors.ts";

/** One stored version of a credential. */
export interface CredentialVersion {
  id: string;
  name: string;
  type: string;
  createdAt: number;
  value: unknown;
  metadata: unknown;
}

/** A permission entry (CredHub v2). */
export interface Permission {
  uuid: string;
  actor: string;
  path: string;
  operations: string[];
}

/** A stored row (both backends). */
export interface Row {
  id: string;
  name: string;
  type: string;
  created_at: number | string;
  key_id: string;
  nonce: Uint8Array;
  ciphertext: Uint8Array;
}

/**
 * The credential store the API uses: {@linkcode SqliteCredentialStore} (one
 * file, one server) or `PgCredentialStore` (PostgreSQL, shared by replicas).
 * Names are case-insensitive; a new version keeps the first-written name.
 */
export interface CredentialStore {
  readonly keys: KeyRing;
  /** The file or the server (no password) in messages. */
  readonly path: string;
  put(
    name: string,
    type: string,
    value: unknown,
    metadata: unknown,
    options?: { now?: number; grant?: Permission },
  ): Promise<CredentialVersion>;
  versions(name: string, limit?: number): Promise<CredentialVersion[]>;
  byId(id: string): Promise<CredentialVersion | undefined>;
  exists(name: string): Promise<boolean>;
  names(): Promise<Array<{ name: string; createdAt: number }>>;
  delete(name: string): Promise<boolean>;
  count(): Promise<number>;
  /** The value the last count() (or write) saw, for the metrics gauge. */
  readonly lastCount: number;
  permissions(): Promise<Permission[]>;
  permission(uuid: string): Promise<Permission | undefined>;
  savePermission(p: Permission): Promise<Permission>;
  deletePermission(uuid: string): Promise<void>;
  rotateKey(): Promise<{ keyId: string; rows: number }>;
  close(): Promise<void>;
}

/** The SQLite store. */
export class SqliteCredentialStore implements CredentialStore {
  readonly db: DatabaseSync;
  readonly keys: KeyRing;
  readonly path: string;
  lastCount = 0;

  /** Opens (creating when missing) the database and the key ring. */
  constructor(path: string, keysDir: string) {
    this.path = path;
    this.keys = new KeyRing(keysDir);
    Deno.mkdirSync(keysDir, { recursive: true, mode: 0o700 });
    this.keys.reload();
    this.db = new DatabaseSync(path);
    this.db.exec(`PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
      PRAGMA busy_timeout=10000; PRAGMA secure_delete=ON;
      CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS credentials (id TEXT PRIMARY KEY,
        name TEXT NOT NULL, type TEXT NOT NULL, created_at INTEGER NOT NULL,
        key_id TEXT NOT NULL, nonce BLOB NOT NULL, ciphertext BLOB NOT NULL);
      CREATE INDEX IF NOT EXISTS credentials_name ON credentials(name, created_at);
      CREATE INDEX IF NOT EXISTS credentials_name_nocase
        ON credentials(name COLLATE NOCASE, created_at);
      CREATE TABLE IF NOT EXISTS permissions (uuid TEXT PRIMARY KEY,
        actor TEXT NOT NULL, path TEXT NOT NULL, operations TEXT NOT NULL,
        UNIQUE(actor, path));`);
    if (!this.activeKeyId()) {
      const id = this.keys.ids()[0] ?? this.keys.create();
      this.db.prepare("INSERT OR IGNORE INTO meta VALUES ('active_key', ?)")
        .run(id);
    }
    const active = this.activeKeyId()!;
    if (!this.keys.has(active)) this.keys.reload();
    requireKeys(
      this.keys,
      (this.db.prepare("SELECT DISTINCT key_id FROM credentials")
        .all() as Array<
          { key_id: string }
        >).map((r) => r.key_id),
    );
  }

  activeKeyId(): string | undefined {
    const r = this.db.prepare("SELECT v FROM meta WHERE k = 'active_key'")
      .get() as
        | { v: string }
        | undefined;
    return r?.v;
  }

  /**
   * Writes a new version; returns it. `options.grant` is saved in the same
   * transaction (the creator's permission: a crash never leaves a credential
   * its creator cannot reach).
   */
  // deno-lint-ignore require-await
  async put(
    name: string,
    type: string,
    value: unknown,
    metadata: unknown,
    options: { now?: number; grant?: Permission } = {},
  ): Promise<CredentialVersion> {
    const id = crypto.randomUUID();
    const now = options.now ?? Date.now();
    this.db.exec("BEGIN IMMEDIATE");
    try {
      if (options.grant) this.#savePermission(options.grant);
      // Names are case-insensitive, as CredHub's (its name_lowercase column):
      // a new version joins the credential under the name it was first
      // written with.
      name = this.#storedName(name) ?? name;
      const keyId = this.activeKeyId()!;
      const s = this.keys.seal(
        keyId,
        JSON.stringify({ value, metadata }),
        id + name,
      );
      this.db.prepare("INSERT INTO credentials VALUES (?, ?, ?, ?, ?, ?, ?)")
        .run(id, name, type, now, s.keyId, s.nonce, s.ciphertext);
      this.db.exec("COMMIT");
    } catch (err) {
      this.db.exec("ROLLBACK");
      throw err;
    }
    this.#count();
    return { id, name, type, createdAt: now, value, metadata };
  }

  /** Newest versions first (`limit` of them; all when undefined). */
  // deno-lint-ignore require-await
  async versions(name: string, limit?: number): Promise<CredentialVersion[]> {
    const rows = this.db.prepare(
      "SELECT * FROM credentials WHERE name = ? COLLATE NOCASE ORDER BY created_at DESC, rowid DESC LIMIT ?",
    ).all(name, limit ?? -1) as unknown as Row[];
    return rows.map((r) => this.#open(r));
  }

  // deno-lint-ignore require-await
  async byId(id: string): Promise<CredentialVersion | undefined> {
    const r = this.db.prepare("SELECT * FROM credentials WHERE id = ?").get(
      id,
    ) as
      | Row
      | undefined;
    return r ? this.#open(r) : undefined;
  }

  /** Whether any version of `name` is stored (nothing is decrypted). */
  // deno-lint-ignore require-await
  async exists(name: string): Promise<boolean> {
    return this.#storedName(name) !== undefined;
  }

  /** The name `name` was first stored under, matched without case. */
  #storedName(name: string): string | undefined {
    const r = this.db.prepare(
      "SELECT name FROM credentials WHERE name = ? COLLATE NOCASE ORDER BY created_at, rowid LIMIT 1",
    ).get(name) as { name: string } | undefined;
    return r?.name;
  }

  /** Latest version time of every name (for path / name-like searches). */
  // deno-lint-ignore require-await
  async names(): Promise<Array<{ name: string; createdAt: number }>> {
    return (this.db.prepare(
      "SELECT name, MAX(created_at) AS t FROM credentials GROUP BY name ORDER BY t DESC",
    ).all() as Array<{ name: string; t: number }>).map((r) => ({
      name: r.name,
      createdAt: r.t,
    }));
  }

  /** Deletes every version; false when there was none. */
  // deno-lint-ignore require-await
  async delete(name: string): Promise<boolean> {
    const gone = Number(
      this.db.prepare("DELETE FROM credentials WHERE name = ? COLLATE NOCASE")
        .run(name)
        .changes,
    ) > 0;
    this.#count();
    return gone;
  }

  /** Number of credential names. */
  // deno-lint-ignore require-await
  async count(): Promise<number> {
    return this.#count();
  }

  #count(): number {
    return this.lastCount = Number(
      (this.db.prepare("SELECT COUNT(DISTINCT name) AS n FROM credentials")
        .get() as { n: number }).n,
    );
  }

  // deno-lint-ignore require-await
  async permissions(): Promise<Permission[]> {
    return this.#permissions();
  }

  #permissions(): Permission[] {
    return (this.db.prepare("SELECT * FROM permissions").all() as Array<
      { uuid: string; actor: string; path: string; operations: string }
    >).map((r) => ({ ...r, operations: JSON.parse(r.operations) }));
  }

  // deno-lint-ignore require-await
  async permission(uuid: string): Promise<Permission | undefined> {
    return this.#permissions().find((p) => p.uuid === uuid);
  }

  /** Inserts or replaces a permission entry. */
  // deno-lint-ignore require-await
  async savePermission(p: Permission): Promise<Permission> {
    return this.#savePermission(p);
  }

  #savePermission(p: Permission): Permission {
    this.db.prepare(
      "INSERT INTO permissions VALUES (?, ?, ?, ?) ON CONFLICT(uuid) DO UPDATE SET actor=excluded.actor, path=excluded.path, operations=excluded.operations",
    ).run(p.uuid, p.actor, p.path, JSON.stringify(p.operations));
    return p;
  }

  // deno-lint-ignore require-await
  async deletePermission(uuid: string): Promise<void> {
    this.db.prepare("DELETE FROM permissions WHERE uuid = ?").run(uuid);
  }

  /**
   * Rotates to a new key: records it as active, re-encrypts every row in
   * small transactions (readers never wait long), copies the WAL into the
   * database and truncates it (with `secure_delete` the old ciphertext is
   * zeroed, not just unlinked), then deletes the old key files.
   * @returns The new key id and the rows re-encrypted.
   * @throws {CredhubError} `ERR_CREDHUB_CHECKPOINT` when the WAL could not be
   *   truncated (the old key files are kept then; run the rotation again).
   */
  // deno-lint-ignore require-await
  async rotateKey(): Promise<{ keyId: string; rows: number }> {
    // One rotation at a time: a second one waits (an OS lock, released when
    // a killed rotation's process goes); otherwise each would delete the
    // other's new key.
    const lock = Deno.openSync(join(this.keys.dir, ".rotate.lock"), {
      write: true,
      create: true,
      mode: 0o600,
    });
    try {
      lock.lockSync(true);
      // Keys another rotation made and kept while this one waited.
      this.keys.reload();
      return this.#rotate();
    } finally {
      lock.close();
    }
  }

  #rotate(): { keyId: string; rows: number } {
    const keyId = this.keys.create();
    this.db.prepare("UPDATE meta SET v = ? WHERE k = 'active_key'").run(keyId);
    let rows = 0;
    for (;;) {
      const batch = this.db.prepare(
        "SELECT * FROM credentials WHERE key_id != ? LIMIT 100",
      ).all(keyId) as unknown as Row[];
      if (batch.length === 0) break;
      this.db.exec("BEGIN IMMEDIATE");
      try {
        for (const r of batch) {
          const s = resealRow(this.keys, r, keyId);
          this.db.prepare(
            "UPDATE credentials SET key_id = ?, nonce = ?, ciphertext = ? WHERE id = ? AND key_id = ?",
          )
            .run(keyId, s.nonce, s.ciphertext, r.id, r.key_id);
        }
        this.db.exec("COMMIT");
      } catch (err) {
        this.db.exec("ROLLBACK");
        throw err;
      }
      rows += batch.length;
    }
    this.#truncateWal();
    for (const id of this.keys.ids()) if (id !== keyId) this.keys.remove(id);
    return { keyId, rows };
  }

  // deno-lint-ignore require-await
  async close(): Promise<void> {
    this.db.close();
  }

  /**
   * `wal_checkpoint(TRUNCATE)`, retried while a reader holds an old snapshot
   * (each attempt already waits `busy_timeout`).
   */
  #truncateWal(): void {
    for (let attempt = 0; attempt < 5; attempt++) {
      const r = this.db.prepare("PRAGMA wal_checkpoint(TRUNCATE)").get() as {
        busy: number;
      };
      if (r.busy === 0) return;
    }
    throw new CredhubError(
      "ERR_CREDHUB_CHECKPOINT",
      500,
      `Cannot finish the key rotation of "${this.path}": the write-ahead log is still in use; the old keys are kept, run 'sigil credhub rotate-key' again`,
    );
  }

  #open(r: Row): CredentialVersion {
    return openRow(this.keys, r);
  }
}

/** Seals a row's value again under `keyId` (a key rotation). */
export function resealRow(keys: KeyRing, r: Row, keyId: string): Sealed {
  const plain = keys.open({
    keyId: r.key_id,
    nonce: r.nonce,
    ciphertext: r.ciphertext,
  }, r.id + r.name);
  return keys.seal(keyId, plain, r.id + r.name);
}

/**
 * Refuses to open a store whose rows need a key not in the ring (the error
 * names the key and the directory).
 */
export function requireKeys(keys: KeyRing, ids: string[]): void {
  for (const keyId of ids) {
    if (!keys.has(keyId)) {
      keys.open({
        keyId,
        nonce: new Uint8Array(12),
        ciphertext: new Uint8Array(16),
      }, "");
    }
  }
}

/** Decrypts one row (`aad` binds the ciphertext to its id and name). */
export function openRow(keys: KeyRing, r: Row): CredentialVersion {
  const plain = JSON.parse(
    keys.open({
      keyId: r.key_id,
      nonce: r.nonce,
      ciphertext: r.ciphertext,
    }, r.id + r.name),
  );
  return {
    id: r.id,
    name: r.name,
    type: r.type,
    createdAt: Number(r.created_at),
    value: plain.value,
    metadata: plain.metadata ?? null,
  };
}
