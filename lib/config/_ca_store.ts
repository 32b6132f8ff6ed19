/** The `ca.store` setting: SQLite file or PostgreSQL URL. @module */
import { z } from "zod";
import { FilePath, isLoopback } from "./_common.ts";

/** TLS modes accepted in `?sslmode=` (libpq's names). */
export const SSL_MODES = [
  "disable",
  "require",
  "verify-ca",
  "verify-full",
] as const;

/** A resolved PostgreSQL target: no password (that comes from a file). */
export interface PostgresStore {
  kind: "postgres";
  /** The URL as shown in logs and errors (no password, no query). */
  display: string;
  host: string;
  port: number;
  database: string;
  username: string;
  /** Directory of the server's unix socket, from `?host=/dir`. */
  socketDir?: string;
  sslmode: (typeof SSL_MODES)[number];
  /** File holding the password, read on every new connection. */
  password_file?: string;
  /** PEM bundle the server's certificate must chain to. */
  ca_bundle?: string;
}

/** A resolved `ca.store`. */
export type LedgerStoreConfig =
  | { kind: "sqlite"; path: string }
  | PostgresStore;

const PG_URL = /^postgres(ql)?:\/\//i;

function parsePostgres(
  input: { url: string; password_file?: string; ca_bundle?: string },
  ctx: z.RefinementCtx,
): PostgresStore | typeof z.NEVER {
  const fail = (message: string) => {
    ctx.addIssue({ code: "custom", message });
    return z.NEVER;
  };
  let u: URL;
  try {
    // The WHATWG parser treats postgres: as opaque; parse it as http.
    u = new URL(input.url.replace(PG_URL, "http://"));
  } catch {
    return fail(
      "is not a valid URL: use postgres://USER@HOST:5432/DATABASE?sslmode=verify-full",
    );
  }
  const display = `postgres://${u.username ? `${u.username}@` : ""}${u.host}${
    u.pathname === "/" ? "" : u.pathname
  }`;
  if (u.password) {
    return fail(
      `"${display}" carries a password: remove it from the URL and put it in store.password_file`,
    );
  }
  const database = decodeURIComponent(u.pathname.replace(/^\//, ""));
  if (!database || database.includes("/")) {
    return fail(
      `"${display}" names no database: add it as the path, e.g. postgres://sigil@db:5432/sigil`,
    );
  }
  if (!u.username) {
    return fail(
      `"${display}" names no user: add it before the host, e.g. postgres://sigil@db:5432/${database}`,
    );
  }
  for (const key of u.searchParams.keys()) {
    if (key !== "sslmode" && key !== "host") {
      return fail(
        `"${display}": unknown parameter "${key}" (accepted: sslmode, host)`,
      );
    }
  }
  const socketDir = u.searchParams.get("host") ?? undefined;
  if (socketDir !== undefined && !socketDir.startsWith("/")) {
    return fail(
      `"${display}": host= must be the absolute directory of the server's unix socket`,
    );
  }
  const local = socketDir !== undefined || isLoopback(u.hostname);
  const mode = u.searchParams.get("sslmode") ??
    (local ? "disable" : "verify-full");
  if (!(SSL_MODES as readonly string[]).includes(mode)) {
    return fail(
      `"${display}": sslmode "${mode}" is not one of ${SSL_MODES.join(", ")}`,
    );
  }
  const sslmode = mode as PostgresStore["sslmode"];
  if (input.ca_bundle && (sslmode === "disable" || sslmode === "require")) {
    return fail(
      `ca_bundle is only used with sslmode=verify-ca or verify-full (the URL has "${sslmode}")`,
    );
  }
  return {
    kind: "postgres",
    display,
    host: u.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: u.port ? Number(u.port) : 5432,
    database,
    username: decodeURIComponent(u.username),
    ...(socketDir ? { socketDir } : {}),
    sslmode,
    ...(input.password_file ? { password_file: input.password_file } : {}),
    ...(input.ca_bundle ? { ca_bundle: input.ca_bundle } : {}),
  };
}

/**
 * `ca.store`: a SQLite path, a `postgres://` URL, or
 * `{ url, password_file, ca_bundle }` for PostgreSQL with a password or a
 * private CA.
 */
export const LedgerStoreSetting = z.union([
  z.string().min(1, "must be a path or a postgres:// URL"),
  z.strictObject({
    /** `postgres://USER@HOST:PORT/DATABASE?sslmode=verify-full`. */
    url: z.string().regex(PG_URL, "must start with postgres://"),
    /** File holding the database password (never in the URL). */
    password_file: FilePath.optional(),
    /** PEM bundle the server's TLS certificate must chain to. */
    ca_bundle: FilePath.optional(),
  }),
]).transform((v, ctx): LedgerStoreConfig => {
  if (typeof v === "string") {
    if (PG_URL.test(v)) return parsePostgres({ url: v }, ctx);
    return { kind: "sqlite", path: v };
  }
  return parsePostgres(v, ctx);
});
