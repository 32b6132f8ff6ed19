/**
 * Test helper: a throw-away PostgreSQL cluster (Debian's `postgresql`
 * package): `initdb` into a temp dir, a free loopback port, the unix socket
 * in the same temp dir, password (SCRAM) auth for user `sigil`, database
 * `sigil`; stopped and removed at the end. PostgreSQL refuses to run as
 * root, so as root the cluster runs as `nobody` through `runuser`.
 *
 * @example
 * ```ts ignore
 * import { startPostgres } from "../_helpers/postgres.ts";
 * await using pg = await startPostgres();
 * // config: store: { url: pg.url, password_file: pg.passwordFile }
 * await pg.stop(); await pg.start(); // same port, same data
 * ```
 * @module
 */
import { join } from "node:path";
import { freePort } from "./ports.ts";

/** The newest `/usr/lib/postgresql/<ver>/bin`, or `undefined`. */
export function findPostgresBin(): string | undefined {
  const env = Deno.env.get("SIGIL_PG_BIN");
  if (env) return env;
  let best: { ver: number; dir: string } | undefined;
  try {
    for (const e of Deno.readDirSync("/usr/lib/postgresql")) {
      const dir = `/usr/lib/postgresql/${e.name}/bin`;
      const ver = Number(e.name);
      try {
        if (!Deno.statSync(`${dir}/initdb`).isFile) continue;
      } catch {
        continue;
      }
      if (!best || ver > best.ver) best = { ver, dir };
    }
  } catch {
    return undefined;
  }
  return best?.dir;
}

/** Why PostgreSQL tests cannot run here, or `undefined` when they can. */
export function postgresUnavailable(): string | undefined {
  if (!findPostgresBin()) {
    return "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb; .ci/run installs Debian's postgresql)";
  }
  if (Deno.uid() === 0 && !runuserPath()) {
    return "running as root and runuser is missing: PostgreSQL refuses to run as root";
  }
  return undefined;
}

function runuserPath(): string | undefined {
  for (const p of ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]) {
    try {
      if (Deno.statSync(p).isFile) return p;
    } catch {
      // next
    }
  }
  return undefined;
}

/** A throw-away cluster. */
export interface PostgresCluster extends AsyncDisposable {
  readonly port: number;
  /** `postgres://sigil@127.0.0.1:<port>/sigil` (no password). */
  readonly url: string;
  /** File holding the password of `sigil`. */
  readonly passwordFile: string;
  /** Temp dir: data, socket, log. */
  readonly dir: string;
  /** Starts the server (same port, same data); waits until it accepts. */
  start(): Promise<void>;
  /** Stops the server (fast shutdown: open connections are cut). */
  stop(): Promise<void>;
  /** Runs SQL through `psql` as the superuser (database `sigil`); returns its stdout. */
  psql(sql: string, database?: string): Promise<string>;
}

const NOBODY = { uid: 65534, gid: 65534 };

/**
 * Creates and starts a cluster.
 *
 * @throws {Error} When PostgreSQL is missing (check {@linkcode postgresUnavailable} first) or fails to start (its log is in the message).
 */
export async function startPostgres(): Promise<PostgresCluster> {
  const bin = findPostgresBin();
  if (!bin) throw new Error(postgresUnavailable());
  const asRoot = Deno.uid() === 0;
  const dir = await Deno.makeTempDir({ prefix: "sigil-pg-" });
  const data = join(dir, "data");
  const log = join(dir, "server.log");
  const superPw = join(dir, "super.pw");
  const passwordFile = join(dir, "sigil.pw");
  const password = crypto.randomUUID();
  await Deno.writeTextFile(superPw, crypto.randomUUID() + "\n");
  await Deno.writeTextFile(passwordFile, password + "\n");
  if (asRoot) {
    await Deno.chmod(dir, 0o755);
    for (const p of [dir, superPw]) {
      await Deno.chown(p, NOBODY.uid, NOBODY.gid);
    }
  }
  const port = freePort();
  const run = async (cmd: string, args: string[]) => {
    const argv = asRoot
      ? [runuserPath()!, "-u", "nobody", "--", `${bin}/${cmd}`, ...args]
      : [`${bin}/${cmd}`, ...args];
    const child = new Deno.Command(argv[0]!, {
      args: argv.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      cwd: dir,
      env: { PGPASSFILE: "/dev/null", LC_ALL: "C" },
    }).output();
    const out = await child;
    const text = new TextDecoder();
    if (!out.success) {
      const serverLog = await Deno.readTextFile(log).catch(() => "");
      throw new Error(
        `${cmd} failed (${out.code}): ${text.decode(out.stderr)}\n${serverLog}`,
      );
    }
    return text.decode(out.stdout);
  };
  await run("initdb", [
    "-D",
    data,
    "-U",
    "postgres",
    "--auth=scram-sha-256",
    `--pwfile=${superPw}`,
    "--no-sync",
    "-E",
    "UTF8",
  ]);
  const start = () =>
    run("pg_ctl", [
      "-D",
      data,
      "-l",
      log,
      "-w",
      "-t",
      "60",
      "-o",
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100`,
      "start",
    ]).then(() => {});
  const stop = () =>
    run("pg_ctl", ["-D", data, "-m", "fast", "-w", "-t", "60", "stop"]).then(
      () => {},
    );
  const superPassword = (await Deno.readTextFile(superPw)).trim();
  const psql = (sql: string, database = "sigil") =>
    new Deno.Command(`${bin}/psql`, {
      args: [
        "-X",
        "-q",
        "-A",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        "127.0.0.1",
        "-p",
        String(port),
        "-U",
        "postgres",
        "-d",
        database,
        "-c",
        sql,
      ],
      env: { PGPASSWORD: superPassword, PGPASSFILE: "/dev/null" },
      stdout: "piped",
      stderr: "piped",
    }).output().then((out) => {
      const text = new TextDecoder();
      if (!out.success) {
        throw new Error(`psql failed: ${text.decode(out.stderr)}`);
      }
      return text.decode(out.stdout);
    });
  let running = false;
  try {
    await start();
    running = true;
    await psql(`CREATE ROLE sigil LOGIN PASSWORD '${password}'`, "postgres");
    await psql("CREATE DATABASE sigil OWNER sigil", "postgres");
  } catch (err) {
    if (running) await stop().catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw err;
  }
  return {
    port,
    url: `postgres://sigil@127.0.0.1:${port}/sigil`,
    passwordFile,
    dir,
    psql,
    async start() {
      if (running) return;
      await start();
      running = true;
    },
    async stop() {
      if (!running) return;
      await stop();
      running = false;
    },
    async [Symbol.asyncDispose]() {
      if (running) await stop().catch(() => {});
      running = false;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
