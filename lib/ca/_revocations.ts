/**
 * Revocations: tokens (by `jti` or subject) and identities (by instance id or
 * app GUID) the CA no longer serves. The CA asks a {@linkcode RevocationStore}
 * on every sign (passive revocation, as step-ca) and builds `/v1/crl.pem`
 * from the unexpired certificates it issued to revoked identities.
 *
 * The store is an async interface so that a shared SQL database can hold it
 * for several CA replicas; {@linkcode SqliteRevocations} keeps it in the
 * ledger's SQLite file (table `revocations`, beside `issuances`).
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { CaError } from "./errors.ts";

/** What a revocation names. */
export type RevocationKind = "token" | "subject" | "instance" | "app";

/** Kinds of revocation, as `sigil ca revoke` flags name them. */
export const REVOCATION_KINDS: readonly RevocationKind[] = [
  "token",
  "subject",
  "instance",
  "app",
];

/** One revocation. */
export interface Revocation {
  /** When it was recorded (ISO 8601). */
  time: string;
  kind: RevocationKind;
  /** The token's `jti`, the token subject, the instance id or the app GUID. */
  value: string;
  /** The operator's words, if any. */
  reason: string | null;
}

/** An unexpired certificate of a revoked identity: one CRL entry. */
export interface RevokedCertificate {
  /** Lowercase hex, as in the ledger. */
  serial: string;
  /** The revocation's time (ISO 8601). */
  revokedAt: string;
  /** The certificate's notAfter (ISO 8601). */
  notAfter: string;
  kind: "instance" | "app";
  value: string;
}

/**
 * Where revocations live. Every method is async (a SQL server may answer);
 * implementations throw {@linkcode CaError} `ERR_CA_LEDGER` naming the store
 * when it cannot be read or written.
 */
export interface RevocationStore {
  /**
   * Records a revocation; revoking the same kind and value again keeps the
   * first record (`added: false`).
   */
  add(
    r: Omit<Revocation, "time"> & { time?: string },
  ): Promise<{ added: boolean; revocation: Revocation }>;
  /** Every revocation, oldest first. */
  list(): Promise<Revocation[]>;
  /** The revocation that covers a token with this `jti` or subject, if any. */
  tokenRevocation(
    jti: string,
    subject: string,
  ): Promise<Revocation | undefined>;
  /** The revocation that covers this instance or app, if any. */
  identityRevocation(
    instanceId: string,
    app: string,
  ): Promise<Revocation | undefined>;
  /**
   * Certificates issued (per the ledger) to revoked instances or apps that
   * have not expired at `now`, by serial.
   */
  revokedCertificates(now: Date): Promise<RevokedCertificate[]>;
  /** Releases the store. */
  close(): Promise<void>;
}

type Row = Record<string, string | null>;

/**
 * Revocations in the ledger's SQLite file (its own connection; WAL lets it
 * share the file with the ledger's connection and with `sigil ca revoke`
 * writing from another process).
 *
 * @example
 * ```ts
 * import { SqliteRevocations } from "./_revocations.ts";
 * const dir = Deno.makeTempDirSync();
 * const store = SqliteRevocations.open(`${dir}/ledger.sqlite`);
 * await store.add({ kind: "instance", value: "i-1", reason: "compromised" });
 * console.assert((await store.identityRevocation("i-1", "a"))?.kind === "instance");
 * await store.close();
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
/** The revocations table (and the app index the CRL lookup uses). */
function createSchema(db: DatabaseSync): void {
  db.prepare("PRAGMA journal_mode = WAL").get();
  db.exec(`CREATE TABLE IF NOT EXISTS revocations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL,
    reason TEXT, UNIQUE (kind, value))`);
  const ledger = db.prepare(
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'issuances'",
  ).get();
  if (ledger) {
    db.exec("CREATE INDEX IF NOT EXISTS issuances_app ON issuances(app)");
  }
}

export class SqliteRevocations implements RevocationStore {
  readonly path: string;
  #db: DatabaseSync;

  private constructor(path: string, db: DatabaseSync) {
    this.path = path;
    this.#db = db;
  }

  /**
   * Opens (creating the table when writable) the revocations of the ledger
   * file at `path`.
   *
   * @throws {CaError} `ERR_CA_LEDGER` naming the file.
   */
  static open(
    path: string,
    options: { readOnly?: boolean } = {},
  ): SqliteRevocations {
    const readOnly = options.readOnly ?? false;
    let db: DatabaseSync | undefined;
    try {
      db = new DatabaseSync(path, { readOnly, timeout: 2000 });
      if (!readOnly) {
        try {
          createSchema(db);
        } catch (err) {
          // A ledger the CA cannot write now (healthz says so) must not stop
          // it from starting; `add` creates the table once it can write.
          if (!/readonly/i.test((err as Error).message)) throw err;
        }
      }
      return new SqliteRevocations(path, db);
    } catch (err) {
      db?.close();
      throw new CaError(
        "ERR_CA_LEDGER",
        `Cannot open revocations in "${path}": ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  #run<T>(what: string, f: () => T): Promise<T> {
    try {
      return Promise.resolve(f());
    } catch (err) {
      return Promise.reject(
        new CaError(
          "ERR_CA_LEDGER",
          `Cannot ${what} revocations in "${this.path}": ${
            (err as Error).message
          }`,
          { cause: err },
        ),
      );
    }
  }

  /** True when the table exists (a read-only ledger may predate it). */
  #has(table: string): boolean {
    return this.#db.prepare(
      "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
    ).get(table) !== undefined;
  }

  add(
    r: Omit<Revocation, "time"> & { time?: string },
  ): Promise<{ added: boolean; revocation: Revocation }> {
    return this.#run("write", () => {
      if (!this.#has("revocations")) createSchema(this.#db);
      const time = r.time ?? new Date().toISOString();
      const res = this.#db.prepare(
        "INSERT OR IGNORE INTO revocations (time, kind, value, reason) VALUES (?, ?, ?, ?)",
      ).run(time, r.kind, r.value, r.reason);
      const row = this.#db.prepare(
        "SELECT time, kind, value, reason FROM revocations WHERE kind = ? AND value = ?",
      ).get(r.kind, r.value) as unknown as Revocation;
      return { added: Number(res.changes) > 0, revocation: row };
    });
  }

  list(): Promise<Revocation[]> {
    return this.#run("read", () => {
      if (!this.#has("revocations")) return [];
      return this.#db.prepare(
        "SELECT time, kind, value, reason FROM revocations ORDER BY id",
      ).all() as unknown as Revocation[];
    });
  }

  tokenRevocation(
    jti: string,
    subject: string,
  ): Promise<Revocation | undefined> {
    return this.#one("token", jti, "subject", subject);
  }

  identityRevocation(
    instanceId: string,
    app: string,
  ): Promise<Revocation | undefined> {
    return this.#one("instance", instanceId, "app", app);
  }

  #one(
    kindA: RevocationKind,
    a: string,
    kindB: RevocationKind,
    b: string,
  ): Promise<Revocation | undefined> {
    return this.#run("read", () => {
      if (!this.#has("revocations")) return undefined;
      return this.#db.prepare(
        `SELECT time, kind, value, reason FROM revocations
         WHERE (kind = ? AND value = ?) OR (kind = ? AND value = ?)
         ORDER BY id LIMIT 1`,
      ).get(kindA, a, kindB, b) as unknown as Revocation | undefined;
    });
  }

  revokedCertificates(now: Date): Promise<RevokedCertificate[]> {
    return this.#run("read", () => {
      if (!this.#has("revocations") || !this.#has("issuances")) return [];
      // One indexed lookup per revoked identity (issuances_instance,
      // issuances_app), not a scan of the whole ledger.
      const rows = this.#db.prepare(
        `SELECT i.serial AS serial, r.time AS revokedAt, i.not_after AS notAfter,
                r.kind AS kind, r.value AS value
         FROM revocations r JOIN issuances i ON i.instance_id = r.value
         WHERE r.kind = 'instance' AND i.result = 'issued'
           AND i.serial IS NOT NULL AND i.not_after > ?1
         UNION ALL
         SELECT i.serial, r.time, i.not_after, r.kind, r.value
         FROM revocations r JOIN issuances i ON i.app = r.value
         WHERE r.kind = 'app' AND i.result = 'issued'
           AND i.serial IS NOT NULL AND i.not_after > ?1`,
      ).all(now.toISOString()) as Row[];
      return rows as unknown as RevokedCertificate[];
    });
  }

  close(): Promise<void> {
    try {
      this.#db.close();
    } catch {
      // already closed
    }
    return Promise.resolve();
  }
}
