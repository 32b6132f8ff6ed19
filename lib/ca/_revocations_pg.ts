/**
 * Revocations in PostgreSQL, beside the ledger, for CA replicas. Every sign
 * asks the database (no cache), so a revocation committed through any
 * replica or `sigil ca revoke` is enforced by every replica from the next
 * request on.
 * @module
 */
import type {
  Revocation,
  RevocationKind,
  RevocationStore,
  RevokedCertificate,
} from "./_revocations.ts";
import { pgError } from "./_pg.ts";
import type { Sql } from "./_pg.ts";

/**
 * Revocations on the ledger's pool (table `revocations`, migration 2).
 *
 * @example
 * ```ts ignore
 * const ledger = await PgLedger.open(config.ca.store);
 * const revocations = new PgRevocations(ledger.sql, ledger.path);
 * await revocations.add({ kind: "instance", value: "i-1", reason: null });
 * ```
 */
export class PgRevocations implements RevocationStore {
  readonly path: string;
  #sql: Sql;

  /** @param sql The pool, owned (and ended) by the ledger. */
  constructor(sql: Sql, path: string) {
    this.#sql = sql;
    this.path = path;
  }

  async #run<T>(what: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (err) {
      throw pgError(err, `Cannot ${what} revocations in "${this.path}"`);
    }
  }

  add(
    r: Omit<Revocation, "time"> & { time?: string },
  ): Promise<{ added: boolean; revocation: Revocation }> {
    return this.#run("write", async () => {
      const sql = this.#sql;
      const time = r.time ?? new Date().toISOString();
      const inserted =
        await sql`INSERT INTO revocations (time, kind, value, reason)
        VALUES (${time}, ${r.kind}, ${r.value}, ${r.reason})
        ON CONFLICT (kind, value) DO NOTHING RETURNING id`;
      const [row] = await sql<Revocation[]>`SELECT time, kind, value, reason
        FROM revocations WHERE kind = ${r.kind} AND value = ${r.value}`;
      return { added: inserted.length > 0, revocation: { ...row! } };
    });
  }

  list(): Promise<Revocation[]> {
    return this.#run(
      "read",
      async () =>
        (await this.#sql<Revocation[]>`SELECT time, kind, value, reason
        FROM revocations ORDER BY id`).map((r) => ({ ...r })),
    );
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
    return this.#run("read", async () => {
      const [row] = await this.#sql<
        Revocation[]
      >`SELECT time, kind, value, reason
        FROM revocations
        WHERE (kind = ${kindA} AND value = ${a}) OR (kind = ${kindB} AND value = ${b})
        ORDER BY id LIMIT 1`;
      return row ? { ...row } : undefined;
    });
  }

  revokedCertificates(now: Date): Promise<RevokedCertificate[]> {
    return this.#run("read", async () => {
      const t = now.toISOString();
      const rows = await this.#sql<RevokedCertificate[]>`
        SELECT i.serial AS serial, r.time AS "revokedAt",
               i.not_after AS "notAfter", r.kind AS kind, r.value AS value
        FROM revocations r JOIN issuances i ON i.instance_id = r.value
        WHERE r.kind = 'instance' AND i.result = 'issued'
          AND i.serial IS NOT NULL AND i.not_after > ${t}
        UNION ALL
        SELECT i.serial, r.time, i.not_after, r.kind, r.value
        FROM revocations r JOIN issuances i ON i.app = r.value
        WHERE r.kind = 'app' AND i.result = 'issued'
          AND i.serial IS NOT NULL AND i.not_after > ${t}`;
      return rows.map((r) => ({ ...r }));
    });
  }

  /** The pool belongs to the ledger, which ends it. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
