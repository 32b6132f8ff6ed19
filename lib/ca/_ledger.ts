/**
 * The issuance ledger: every issuance and refusal, in SQLite (`node:sqlite`)
 * inside the CA directory.
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { CaError } from "./errors.ts";

/** One ledger row. */
export interface LedgerEntry {
  time: string;
  result: "issued" | "refused";
  serial: string | null;
  instance_id: string | null;
  app: string | null;
  space: string | null;
  org: string | null;
  ips: string;
  not_after: string | null;
  caller: string | null;
  reason: string | null;
}

/**
 * An open ledger. Writes are synchronous, so a row is on disk before the
 * certificate leaves the CA.
 *
 * @example
 * ```ts ignore
 * const ledger = Ledger.open("/var/lib/sigil/ca/ledger.sqlite");
 * ledger.list({ instanceId: "i-1" });
 * ```
 */
export class Ledger {
  readonly path: string;
  #db: DatabaseSync;
  #insert: ReturnType<DatabaseSync["prepare"]>;

  private constructor(path: string, db: DatabaseSync) {
    this.path = path;
    this.#db = db;
    this.#insert = db.prepare(
      `INSERT INTO issuances (time, result, serial, instance_id, app, space, org, ips, not_after, caller, reason)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
  }

  /**
   * Opens (creating if needed) the ledger file.
   *
   * @throws {CaError} `ERR_CA_LEDGER` naming the file when it is corrupt, locked or unreadable.
   */
  static open(path: string, options: { readOnly?: boolean } = {}): Ledger {
    try {
      const db = new DatabaseSync(path, {
        readOnly: options.readOnly ?? false,
        timeout: 2000,
      });
      if (!options.readOnly) {
        db.exec("PRAGMA journal_mode = WAL");
        db.exec(`CREATE TABLE IF NOT EXISTS issuances (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          time TEXT NOT NULL, result TEXT NOT NULL, serial TEXT, instance_id TEXT,
          app TEXT, space TEXT, org TEXT, ips TEXT NOT NULL DEFAULT '[]',
          not_after TEXT, caller TEXT, reason TEXT)`);
        db.exec(
          "CREATE INDEX IF NOT EXISTS issuances_instance ON issuances(instance_id)",
        );
      }
      db.prepare("SELECT count(*) AS n FROM issuances").get();
      return new Ledger(path, db);
    } catch (err) {
      throw new CaError(
        "ERR_CA_LEDGER",
        `Cannot open ledger "${path}": ${
          (err as Error).message
        }; move the file aside to start a new one, or restore it from backup`,
        { cause: err },
      );
    }
  }

  /**
   * Appends one row.
   *
   * @throws {CaError} `ERR_CA_LEDGER` when the write fails.
   */
  record(entry: Omit<LedgerEntry, "time"> & { time?: string }): void {
    try {
      this.#insert.run(
        entry.time ?? new Date().toISOString(),
        entry.result,
        entry.serial,
        entry.instance_id,
        entry.app,
        entry.space,
        entry.org,
        entry.ips,
        entry.not_after,
        entry.caller,
        entry.reason,
      );
    } catch (err) {
      throw new CaError(
        "ERR_CA_LEDGER",
        `Cannot write ledger "${this.path}": ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
  }

  /** Rows, newest last, optionally for one instance. */
  list(filter: { instanceId?: string; limit?: number } = {}): LedgerEntry[] {
    try {
      const limit = filter.limit ?? 1_000_000;
      const rows = filter.instanceId
        ? this.#db.prepare(
          "SELECT time, result, serial, instance_id, app, space, org, ips, not_after, caller, reason FROM issuances WHERE instance_id = ? ORDER BY id LIMIT ?",
        ).all(filter.instanceId, limit)
        : this.#db.prepare(
          "SELECT time, result, serial, instance_id, app, space, org, ips, not_after, caller, reason FROM issuances ORDER BY id LIMIT ?",
        ).all(limit);
      return rows as unknown as LedgerEntry[];
    } catch (err) {
      throw new CaError(
        "ERR_CA_LEDGER",
        `Cannot read ledger "${this.path}": ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
  }

  close(): void {
    try {
      this.#db.close();
    } catch {
      // already closed
    }
  }
}
