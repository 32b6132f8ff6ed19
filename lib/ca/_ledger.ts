/**
 * The issuance ledger: every issuance and refusal. {@linkcode LedgerStore}
 * is what the CA uses; {@linkcode Ledger} keeps it in SQLite (`node:sqlite`,
 * the embedded default), `PgLedger` (`_ledger_pg.ts`) in PostgreSQL.
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import type { SQLInputValue } from "node:sqlite";
import { CaError } from "./errors.ts";

/** A row as handed in (the time defaults to now). */
export type LedgerRow = Omit<LedgerEntry, "time"> & { time?: string };

/**
 * Where the CA records every decision. A row is durable before
 * {@linkcode LedgerStore.commit} resolves; the CA answers only after that.
 */
export interface LedgerStore {
  /** The file path, or the database URL without password (for logs). */
  readonly path: string;
  /** Records one row; rejects with `ERR_CA_LEDGER` or `ERR_CA_LEDGER_UNAVAILABLE`. */
  commit(entry: LedgerRow): Promise<void>;
  /** Proves a row could be written now (`/healthz`). */
  probe(): Promise<void>;
  /** Rows, oldest first, optionally for one instance. */
  list(
    filter?: { instanceId?: string; limit?: number },
  ): Promise<LedgerEntry[]>;
  /** The newest rows of one result, newest first. */
  recent(result: LedgerEntry["result"], limit: number): Promise<LedgerEntry[]>;
  /** Commits pending rows, then closes. */
  close(): Promise<void>;
}

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

function rowOf(
  entry: LedgerRow,
): SQLInputValue[] {
  return [
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
  ];
}

/**
 * The ledger row for an issued certificate.
 *
 * @example
 * ```ts
 * import { issuedEntry } from "./_ledger.ts";
 * const row = issuedEntry(
 *   { instanceId: "i", app: "a", space: "s", org: "o", ips: [] },
 *   { serial: "0a", notAfter: new Date(0), clamped: false },
 *   "cell-1",
 * );
 * console.assert(row.result === "issued" && row.caller === "cell-1");
 * ```
 */
export function issuedEntry(
  identity: {
    instanceId: string;
    app: string;
    space: string;
    org: string;
    ips: string[];
  },
  leaf: { serial: string; notAfter: Date; clamped: boolean },
  caller: string,
  time?: string,
): LedgerRow {
  return {
    time,
    result: "issued",
    serial: leaf.serial,
    instance_id: identity.instanceId,
    app: identity.app,
    space: identity.space,
    org: identity.org,
    ips: JSON.stringify(identity.ips),
    not_after: leaf.notAfter.toISOString(),
    caller,
    reason: leaf.clamped ? "validity-clamped-to-issuer" : null,
  };
}

const INSERT =
  `INSERT INTO issuances (time, result, serial, instance_id, app, space, org, ips, not_after, caller, reason)
   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

/** Opens the SQLite file, in WAL mode when writable, creating the table. */
function connect(
  path: string,
  readOnly: boolean,
): { db: DatabaseSync; walMode: boolean } {
  const db = new DatabaseSync(path, { readOnly, timeout: 2000 });
  try {
    let walMode = false;
    if (!readOnly) {
      const mode = db.prepare("PRAGMA journal_mode = WAL").get() as
        | { journal_mode?: string }
        | undefined;
      walMode = mode?.journal_mode === "wal";
      if (walMode) {
        // SQLite does not sync the WAL at commit; Ledger does, with an
        // fdatasync of the WAL file after every commit and before a row is
        // reported written -- the same guarantee as synchronous=FULL, but
        // the sync of a group commit runs off the JS thread.
        db.exec("PRAGMA synchronous = NORMAL");
      }
      db.exec(`CREATE TABLE IF NOT EXISTS issuances (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time TEXT NOT NULL, result TEXT NOT NULL, serial TEXT, instance_id TEXT,
        app TEXT, space TEXT, org TEXT, ips TEXT NOT NULL DEFAULT '[]',
        not_after TEXT, caller TEXT, reason TEXT)`);
      db.exec(
        "CREATE INDEX IF NOT EXISTS issuances_instance ON issuances(instance_id)",
      );
      // The status page's newest refusals: without it, a ledger of issuances
      // with few refusals is scanned whole on every refresh.
      db.exec(
        "CREATE INDEX IF NOT EXISTS issuances_result ON issuances(result)",
      );
    }
    db.prepare("SELECT count(*) AS n FROM issuances").get();
    return { db, walMode };
  } catch (err) {
    db.close();
    throw err;
  }
}

/**
 * An open ledger. A row is committed to disk before the certificate leaves
 * the CA: {@linkcode Ledger.record} writes synchronously, and
 * {@linkcode Ledger.commit} resolves only after its (group) commit.
 *
 * @example
 * ```ts ignore
 * const ledger = Ledger.open("/var/lib/sigil/ca/ledger.sqlite");
 * ledger.list({ instanceId: "i-1" });
 * ```
 */
export class Ledger implements LedgerStore {
  readonly path: string;
  #db: DatabaseSync;
  #insert: ReturnType<DatabaseSync["prepare"]>;
  #pending: Array<{
    row: SQLInputValue[];
    resolve: () => void;
    reject: (err: CaError) => void;
  }> = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** In WAL mode: the WAL file, which this class syncs itself (see open()). */
  #wal: Deno.FsFile | undefined;
  #walMode: boolean;
  /** A write failed with "readonly": SQLite opened the file read-only. */
  #readOnly = false;

  private constructor(path: string, db: DatabaseSync, walMode: boolean) {
    this.path = path;
    this.#db = db;
    this.#walMode = walMode;
    this.#insert = db.prepare(INSERT);
  }

  /**
   * Opens (creating if needed) the ledger file.
   *
   * @throws {CaError} `ERR_CA_LEDGER` naming the file when it is corrupt, locked or unreadable.
   */
  static open(path: string, options: { readOnly?: boolean } = {}): Ledger {
    try {
      const { db, walMode } = connect(path, options.readOnly ?? false);
      return new Ledger(path, db, walMode);
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
   * Proves the ledger can be written now: writes and syncs one probe row
   * (a real write, as a sign would do; `BEGIN IMMEDIATE` alone succeeds on a
   * read-only file). A connection SQLite opened read-only (the file was not
   * writable at open) is reopened first, so the CA recovers once the file is
   * writable again, without a restart.
   *
   * @throws {CaError} `ERR_CA_LEDGER` naming the file and SQLite's reason.
   */
  probe(): Promise<void> {
    try {
      this.probeSync();
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** {@linkcode probe}, synchronously. */
  probeSync(): void {
    this.#flush(true);
    try {
      this.#reopenIfReadOnly();
      this.#db.exec(`CREATE TABLE IF NOT EXISTS probe (
        id INTEGER PRIMARY KEY CHECK (id = 1), time TEXT NOT NULL)`);
      this.#db.prepare("INSERT OR REPLACE INTO probe (id, time) VALUES (1, ?)")
        .run(new Date().toISOString());
      this.#walFile()?.syncDataSync();
    } catch (err) {
      throw this.#writeError(err);
    }
  }

  /** Replaces a connection a write found read-only (see {@linkcode probe}). */
  #reopenIfReadOnly(): void {
    if (!this.#readOnly) return;
    // Close first: connections of one process share SQLite's per-file state
    // (the read-only WAL index), so a second connection would stay read-only.
    // Until a reopen succeeds, #readOnly stays set and the next write retries.
    this.#closeConnections();
    const { db, walMode } = connect(this.path, false);
    this.#db = db;
    this.#walMode = walMode;
    this.#insert = db.prepare(INSERT);
    this.#readOnly = false;
  }

  /**
   * Appends one row in its own transaction.
   *
   * @throws {CaError} `ERR_CA_LEDGER` when the write fails.
   */
  record(entry: LedgerRow): void {
    try {
      this.#reopenIfReadOnly();
      this.#insert.run(...rowOf(entry));
      this.#walFile()?.syncDataSync();
    } catch (err) {
      throw this.#writeError(err);
    }
  }

  /** The WAL file (opened on first use); `undefined` when not in WAL mode. */
  #walFile(): Deno.FsFile | undefined {
    if (!this.#walMode) return undefined;
    return this.#wal ??= Deno.openSync(`${this.path}-wal`, { read: true });
  }

  /**
   * Appends one row with a group commit: rows handed in while the event loop
   * is busy share one transaction, so concurrent issuances pay for one disk
   * sync instead of one each. Resolves once the row is committed (durably, as
   * with {@linkcode record}); a row that cannot be written rejects alone.
   *
   * @throws {CaError} `ERR_CA_LEDGER` (as a rejection) when the write fails.
   */
  commit(entry: LedgerRow): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ row: rowOf(entry), resolve, reject });
      this.#timer ??= setTimeout(() => this.#flush(), 0);
    });
  }

  #flush(syncNow = false): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const batch = this.#pending;
    this.#pending = [];
    if (batch.length === 0) return;
    try {
      this.#reopenIfReadOnly();
    } catch (err) {
      for (const p of batch) p.reject(this.#writeError(err));
      return;
    }
    const written: typeof batch = [];
    if (batch.length > 1) {
      try {
        this.#db.exec("BEGIN IMMEDIATE");
      } catch (err) {
        // Locked or unwritable: every row of the batch fails the same way.
        for (const p of batch) p.reject(this.#writeError(err));
        return;
      }
      try {
        for (const p of batch) this.#insert.run(...p.row);
        this.#db.exec("COMMIT");
        written.push(...batch);
      } catch {
        // One transaction per row below, so only a bad row fails.
        try {
          if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
        } catch {
          // checked just below
        }
        if (this.#db.isTransaction) {
          const err = new Error("cannot roll back a failed group commit");
          for (const p of batch) p.reject(this.#writeError(err));
          return;
        }
      }
    }
    if (written.length === 0) {
      for (const p of batch) {
        try {
          this.#insert.run(...p.row);
          written.push(p);
        } catch (err) {
          p.reject(this.#writeError(err));
        }
      }
    }
    if (written.length === 0) return;
    let wal: Deno.FsFile | undefined;
    try {
      wal = this.#walFile();
    } catch (err) {
      for (const p of written) p.reject(this.#writeError(err));
      return;
    }
    if (!wal || syncNow) {
      try {
        wal?.syncDataSync();
      } catch (err) {
        for (const p of written) p.reject(this.#writeError(err));
        return;
      }
      for (const p of written) p.resolve();
      return;
    }
    wal.syncData().then(
      () => {
        for (const p of written) p.resolve();
      },
      (err) => {
        for (const p of written) p.reject(this.#writeError(err));
      },
    );
  }

  #writeError(err: unknown): CaError {
    const message = (err as Error).message;
    // SQLite opens a file it cannot write read-only, and creates the -wal
    // and -shm files with the database file's mode.
    const readOnly = /readonly/i.test(message);
    if (readOnly) this.#readOnly = true;
    const hint = readOnly
      ? `; make it and its -wal and -shm files writable by the CA's user`
      : "";
    return new CaError(
      "ERR_CA_LEDGER",
      `Cannot write ledger "${this.path}": ${message}${hint}`,
      { cause: err },
    );
  }

  /** Rows, newest last, optionally for one instance. */
  list(
    filter: { instanceId?: string; limit?: number } = {},
  ): Promise<LedgerEntry[]> {
    try {
      return Promise.resolve(this.listSync(filter));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** {@linkcode list}, synchronously. */
  listSync(
    filter: { instanceId?: string; limit?: number } = {},
  ): LedgerEntry[] {
    this.#flush(); // rows handed to commit() are part of what was recorded
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

  /**
   * The newest rows of one result, newest first (for the status page).
   *
   * @throws {CaError} `ERR_CA_LEDGER` when the file cannot be read.
   */
  recent(
    result: LedgerEntry["result"],
    limit: number,
  ): Promise<LedgerEntry[]> {
    this.#flush();
    try {
      return Promise.resolve(
        this.#db.prepare(
          "SELECT time, result, serial, instance_id, app, space, org, ips, not_after, caller, reason FROM issuances WHERE result = ? ORDER BY id DESC LIMIT ?",
        ).all(result, limit) as unknown as LedgerEntry[],
      );
    } catch (err) {
      return Promise.reject(
        new CaError(
          "ERR_CA_LEDGER",
          `Cannot read ledger "${this.path}": ${(err as Error).message}`,
          { cause: err },
        ),
      );
    }
  }

  /** Commits pending rows, then closes the file (synchronously). */
  close(): Promise<void> {
    this.#flush(true);
    this.#closeConnections();
    return Promise.resolve();
  }

  /** Closes the WAL-holder and the main connection (either may be closed). */
  #closeConnections(): void {
    try {
      this.#wal?.close();
    } catch {
      // already closed
    }
    this.#wal = undefined;
    try {
      this.#db.close();
    } catch {
      // already closed
    }
  }
}
