/**
 * PostgreSQL for CA replicas: one connection pool per process (npm
 * `postgres`), the schema's migrations (run once, under an advisory lock,
 * however many replicas start together), and the split of driver errors
 * into "database unavailable" (503, retry) and the rest.
 * @module
 */
import postgres from "postgres";
import type { PostgresStore } from "../config/mod.ts";
import { CaError } from "./errors.ts";

/** An open pool. */
export type Sql = postgres.Sql;

/**
 * The schema, one step per entry, applied in order and recorded in
 * `sigil_migrations`. Never edit a released step: append a new one.
 */
export const MIGRATIONS: readonly { version: number; sql: string }[] = [
  {
    version: 1,
    sql: `CREATE TABLE issuances (
        id BIGSERIAL PRIMARY KEY,
        time TEXT NOT NULL, result TEXT NOT NULL, serial TEXT, instance_id TEXT,
        app TEXT, space TEXT, org TEXT, ips TEXT NOT NULL DEFAULT '[]',
        not_after TEXT, caller TEXT, reason TEXT);
      CREATE INDEX issuances_instance ON issuances (instance_id);
      CREATE INDEX issuances_result ON issuances (result, id);
      CREATE UNIQUE INDEX issuances_serial ON issuances (serial)
        WHERE serial IS NOT NULL;
      CREATE TABLE ledger_probe (
        replica TEXT PRIMARY KEY, time TIMESTAMPTZ NOT NULL)`,
  },
  {
    version: 2,
    sql: `CREATE TABLE revocations (
        id BIGSERIAL PRIMARY KEY,
        time TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL,
        reason TEXT, UNIQUE (kind, value));
      CREATE INDEX issuances_app ON issuances (app)`,
  },
];

/** `pg_advisory_xact_lock` key of the migrations ("sigil" in ASCII). */
const MIGRATION_LOCK = 0x736967696c;

/** Dependencies of {@linkcode connectPg}. */
export interface PgDeps {
  readFile?: (path: string) => Promise<string>;
  /** The setting named in errors (default `ca.store`). */
  setting?: string;
  /** What the store holds, in errors (default `ledger`). */
  what?: string;
  /** `application_name` of the connections (default `sigil-ca`). */
  applicationName?: string;
}

/**
 * Opens a pool to the configured server. Nothing connects until the first
 * query; the password file is read for every new connection, so a rotated
 * password is picked up without a restart.
 *
 * @param store The resolved `ca.store`.
 * @returns The pool; end it with `sql.end()`.
 * @throws {CaError} `ERR_CA_LEDGER` when the CA bundle cannot be read.
 */
export async function connectPg(
  store: PostgresStore,
  deps: PgDeps = {},
): Promise<Sql> {
  const readFile = deps.readFile ?? ((p: string) => Deno.readTextFile(p));
  const setting = deps.setting ?? "ca.store";
  let ssl: boolean | object = false;
  if (store.sslmode !== "disable") {
    let ca: string | undefined;
    if (store.ca_bundle) {
      try {
        ca = await readFile(store.ca_bundle);
      } catch (err) {
        throw new CaError(
          "ERR_CA_LEDGER",
          `Cannot open ${
            deps.what ?? "ledger"
          } "${store.display}": cannot read ${setting}.ca_bundle "${store.ca_bundle}": ${
            (err as Error).message
          }`,
          { cause: err },
        );
      }
    }
    ssl = {
      ...(ca ? { ca } : {}),
      rejectUnauthorized: store.sslmode !== "require",
      ...(store.sslmode === "verify-ca"
        ? { checkServerIdentity: () => undefined }
        : {}),
      servername: store.host,
    };
  }
  const passwordFile = store.password_file;
  return postgres({
    host: store.host,
    port: store.port,
    ...(store.socketDir
      ? { path: `${store.socketDir}/.s.PGSQL.${store.port}` }
      : {}),
    database: store.database,
    username: store.username,
    ...(passwordFile
      ? {
        password: async () => {
          try {
            return (await readFile(passwordFile)).replace(/\r?\n$/, "");
          } catch (err) {
            throw new CaError(
              "ERR_CA_LEDGER_UNAVAILABLE",
              `Cannot read ${setting}.password_file "${passwordFile}": ${
                (err as Error).message
              }`,
              { cause: err },
            );
          }
        },
      }
      : {}),
    ssl,
    max: 10,
    // A stopped server is noticed in seconds, not the driver's 30 s.
    connect_timeout: 5,
    idle_timeout: 60,
    // Every query names its columns; no need to load the server's types.
    fetch_types: false,
    onnotice: () => {},
    connection: { application_name: deps.applicationName ?? "sigil-ca" },
  });
}

/**
 * Applies the steps of {@linkcode MIGRATIONS} not yet recorded, in one
 * transaction holding an advisory lock: replicas starting together wait for
 * the first, then find nothing left to do.
 *
 * @returns The versions this call applied (empty when up to date).
 * @throws {CaError} `ERR_CA_LEDGER` / `ERR_CA_LEDGER_UNAVAILABLE` naming the server.
 */
export async function migrate(
  sql: Sql,
  display: string,
  migrations: readonly { version: number; sql: string }[] = MIGRATIONS,
  options: { table?: string; lock?: number; what?: string } = {},
): Promise<number[]> {
  const table = options.table ?? "sigil_migrations";
  try {
    return await sql.begin(async (tx) => {
      await tx`SELECT pg_advisory_xact_lock(${options.lock ?? MIGRATION_LOCK})`;
      await tx.unsafe(`CREATE TABLE IF NOT EXISTS ${table} (
          version INTEGER PRIMARY KEY,
          applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`);
      const done = new Set(
        (await tx<{ version: number }[]>`SELECT version FROM ${tx(table)}`)
          .map((r) => Number(r.version)),
      );
      const applied: number[] = [];
      for (const m of migrations) {
        if (done.has(m.version)) continue;
        await tx.unsafe(m.sql);
        await tx`INSERT INTO ${tx(table)} (version) VALUES (${m.version})`;
        applied.push(m.version);
      }
      return applied;
    });
  } catch (err) {
    throw pgError(
      err,
      `Cannot migrate ${options.what ?? "ledger"} "${display}"`,
    );
  }
}

/**
 * Whether a driver error means the server cannot be used now (down,
 * restarting, unreachable, out of connections) rather than a bad query.
 */
export function isUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; errno?: unknown };
  const code = typeof e?.code === "string" ? e.code : "";
  // SQLSTATE classes: 08 connection exception, 53 insufficient resources,
  // 57P01-57P03 shutdown / cannot connect now.
  if (/^(08|53)[0-9A-Z]{3}$/.test(code) || /^57P0[123]$/.test(code)) {
    return true;
  }
  if (/^[0-9A-Z]{5}$/.test(code)) return false; // any other SQLSTATE
  // Socket and driver codes: ECONNREFUSED, CONNECT_TIMEOUT, CONNECTION_CLOSED ...
  return code !== "" || err instanceof Deno.errors.ConnectionRefused;
}

/**
 * A {@linkcode CaError} for a failed query: `ERR_CA_LEDGER_UNAVAILABLE`
 * (HTTP 503) when the server is unusable, `ERR_CA_LEDGER` otherwise. The
 * driver's message names host and port, never the password.
 */
export function pgError(err: unknown, what: string): CaError {
  if (err instanceof CaError) return err;
  const unavailable = isUnavailable(err);
  const message = (err as Error)?.message ?? String(err);
  return new CaError(
    unavailable ? "ERR_CA_LEDGER_UNAVAILABLE" : "ERR_CA_LEDGER",
    `${what}: ${unavailable ? "PostgreSQL is unavailable: " : ""}${message}`,
    { cause: err },
  );
}
