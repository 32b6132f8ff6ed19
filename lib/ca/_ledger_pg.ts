/**
 * The ledger in PostgreSQL, shared by CA replicas. Rows handed in while the
 * event loop is busy go to the server as one multi-row INSERT (one commit,
 * as SQLite's group commit); a row is committed before its promise resolves.
 * @module
 */
import { join } from "node:path";
import type { LedgerStoreConfig, PostgresStore } from "../config/mod.ts";
import type { CaError } from "./errors.ts";
import { Ledger } from "./_ledger.ts";
import type { LedgerEntry, LedgerRow, LedgerStore } from "./_ledger.ts";
import { CA_FILES } from "./_store.ts";
import { SqliteRevocations } from "./_revocations.ts";
import type { RevocationStore } from "./_revocations.ts";
import { PgRevocations } from "./_revocations_pg.ts";
import { connectPg, migrate, pgError } from "./_pg.ts";
import type { PgDeps, Sql } from "./_pg.ts";

const COLUMNS = [
  "time",
  "result",
  "serial",
  "instance_id",
  "app",
  "space",
  "org",
  "ips",
  "not_after",
  "caller",
  "reason",
] as const;

type Row = Record<(typeof COLUMNS)[number], string | null>;

function rowOf(entry: LedgerRow): Row {
  return {
    time: entry.time ?? new Date().toISOString(),
    result: entry.result,
    serial: entry.serial,
    instance_id: entry.instance_id,
    app: entry.app,
    space: entry.space,
    org: entry.org,
    ips: entry.ips,
    not_after: entry.not_after,
    caller: entry.caller,
    reason: entry.reason,
  };
}

interface Pending {
  row: Row;
  resolve: () => void;
  reject: (err: CaError) => void;
}

/** Largest batch of one INSERT (11 parameters a row, 65535 at most). */
const MAX_BATCH = 1000;

/**
 * A ledger in PostgreSQL.
 *
 * @example
 * ```ts ignore
 * const ledger = await PgLedger.open(config.ca.store);
 * await ledger.commit(row);
 * await ledger.close();
 * ```
 */
export class PgLedger implements LedgerStore {
  readonly path: string;
  /** The pool, shared with the revocation list of the same server. */
  readonly sql: Sql;
  #replica: string;
  #pending: Pending[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #inFlight = new Set<Promise<void>>();

  private constructor(path: string, sql: Sql, replica: string) {
    this.path = path;
    this.sql = sql;
    this.#replica = replica;
  }

  /**
   * Connects and brings the schema up to date (see `migrate()`).
   *
   * @param store The resolved `ca.store`.
   * @param options `replica`: this process's name in the probe table; `migrate: false` for read-only use.
   * @throws {CaError} `ERR_CA_LEDGER_UNAVAILABLE` when the server cannot be reached, `ERR_CA_LEDGER` otherwise.
   */
  static async open(
    store: PostgresStore,
    options: { replica?: string; migrate?: boolean } & PgDeps = {},
  ): Promise<PgLedger> {
    const sql = await connectPg(store, options);
    try {
      if (options.migrate ?? true) await migrate(sql, store.display);
      else await sql`SELECT 1 FROM issuances LIMIT 1`;
    } catch (err) {
      await sql.end({ timeout: 1 }).catch(() => {});
      throw pgError(err, `Cannot open ledger "${store.display}"`);
    }
    return new PgLedger(
      store.display,
      sql,
      options.replica ?? `${Deno.hostname()}:${Deno.pid}`,
    );
  }

  /**
   * Records one row with the others handed in on the same turn.
   *
   * @throws {CaError} `ERR_CA_LEDGER_UNAVAILABLE` (as a rejection) while the server is unusable.
   */
  commit(entry: LedgerRow): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ row: rowOf(entry), resolve, reject });
      this.#timer ??= setTimeout(() => this.#flush(), 0);
    });
  }

  #flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    while (this.#pending.length > 0) {
      const batch = this.#pending.splice(0, MAX_BATCH);
      const done = this.#write(batch).finally(() =>
        this.#inFlight.delete(done)
      );
      this.#inFlight.add(done);
    }
  }

  async #write(batch: Pending[]): Promise<void> {
    const sql = this.sql;
    try {
      await sql`INSERT INTO issuances ${sql(batch.map((p) => p.row), COLUMNS)}`;
      for (const p of batch) p.resolve();
      return;
    } catch (err) {
      const e = pgError(err, `Cannot write ledger "${this.path}"`);
      if (batch.length === 1 || e.code === "ERR_CA_LEDGER_UNAVAILABLE") {
        for (const p of batch) p.reject(e);
        return;
      }
    }
    // A bad row (say, a duplicate serial) fails alone.
    await Promise.all(batch.map(async (p) => {
      try {
        await sql`INSERT INTO issuances ${sql(p.row, COLUMNS)}`;
        p.resolve();
      } catch (err) {
        p.reject(pgError(err, `Cannot write ledger "${this.path}"`));
      }
    }));
  }

  /**
   * Writes this replica's probe row: a real write, as a sign would do.
   *
   * @throws {CaError} `ERR_CA_LEDGER_UNAVAILABLE` / `ERR_CA_LEDGER`.
   */
  async probe(): Promise<void> {
    try {
      await this.sql`INSERT INTO ledger_probe (replica, time)
        VALUES (${this.#replica}, now())
        ON CONFLICT (replica) DO UPDATE SET time = excluded.time`;
    } catch (err) {
      throw pgError(err, `Cannot write ledger "${this.path}"`);
    }
  }

  /** Rows, oldest first, optionally for one instance. */
  async list(
    filter: { instanceId?: string; limit?: number } = {},
  ): Promise<LedgerEntry[]> {
    await this.#settle();
    const sql = this.sql;
    const limit = filter.limit ?? 1_000_000;
    try {
      const rows = filter.instanceId
        ? await sql<LedgerEntry[]>`SELECT ${sql(COLUMNS)} FROM issuances
            WHERE instance_id = ${filter.instanceId} ORDER BY id LIMIT ${limit}`
        : await sql<LedgerEntry[]>`SELECT ${sql(COLUMNS)} FROM issuances
            ORDER BY id LIMIT ${limit}`;
      return rows.map((r) => ({ ...r }));
    } catch (err) {
      throw pgError(err, `Cannot read ledger "${this.path}"`);
    }
  }

  /** The newest rows of one result, newest first. */
  async recent(
    result: LedgerEntry["result"],
    limit: number,
  ): Promise<LedgerEntry[]> {
    await this.#settle();
    const sql = this.sql;
    try {
      const rows = await sql<LedgerEntry[]>`SELECT ${sql(COLUMNS)}
        FROM issuances WHERE result = ${result} ORDER BY id DESC LIMIT ${limit}`;
      return rows.map((r) => ({ ...r }));
    } catch (err) {
      throw pgError(err, `Cannot read ledger "${this.path}"`);
    }
  }

  /** Rows handed to commit() are part of what was recorded. */
  async #settle(): Promise<void> {
    this.#flush();
    await Promise.all([...this.#inFlight]);
  }

  /** Writes pending rows, then ends the pool. */
  async close(): Promise<void> {
    await this.#settle();
    await this.sql.end({ timeout: 5 });
  }
}

/**
 * Opens the configured ledger: `ca.store` when set, else the SQLite file in
 * the CA directory.
 *
 * @param dir The CA directory (`ca.dir`).
 * @param store The resolved `ca.store`, if any.
 * @param options `readOnly` for `sigil ca ledger`.
 * @throws {CaError} `ERR_CA_LEDGER` / `ERR_CA_LEDGER_UNAVAILABLE` naming the file or server.
 */
export async function openLedgerStore(
  dir: string,
  store: LedgerStoreConfig | undefined,
  options: { readOnly?: boolean } & PgDeps = {},
): Promise<LedgerStore> {
  if (store?.kind === "postgres") {
    return await PgLedger.open(store, {
      ...options,
      migrate: !options.readOnly,
    });
  }
  return Ledger.open(store?.path ?? join(dir, CA_FILES.ledger), options);
}

/** The configured ledger with its revocations (same database). */
export interface CaStores {
  ledger: LedgerStore;
  revocations: RevocationStore;
  /** Closes the revocations, then the ledger. */
  close(): Promise<void>;
}

/**
 * Opens the ledger ({@linkcode openLedgerStore}) and the revocation store
 * beside it: the same PostgreSQL pool, or the ledger's SQLite file.
 *
 * @throws {CaError} `ERR_CA_LEDGER` / `ERR_CA_LEDGER_UNAVAILABLE` naming the file or server.
 */
export async function openCaStores(
  dir: string,
  store: LedgerStoreConfig | undefined,
  options: { readOnly?: boolean } & PgDeps = {},
): Promise<CaStores> {
  const ledger = await openLedgerStore(dir, store, options);
  let revocations: RevocationStore;
  try {
    revocations = ledger instanceof PgLedger
      ? new PgRevocations(ledger.sql, ledger.path)
      : SqliteRevocations.open(ledger.path, options);
  } catch (err) {
    await ledger.close();
    throw err;
  }
  return {
    ledger,
    revocations,
    async close() {
      await revocations.close();
      await ledger.close();
    },
  };
}
