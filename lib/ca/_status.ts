/**
 * The CA's `/status.json` (and page): the issuers with their expiry and the
 * newest ledger rows. Serials, instance ids and callers only: the ledger
 * holds no keys, tokens or PEM.
 * @module
 */
import { certSummary } from "../status/mod.ts";
import type { CaStatus, CertSummary, IssuanceStatus } from "../status/mod.ts";
import type { LedgerEntry } from "./_ledger.ts";
import type { CertificateAuthority } from "./_authority.ts";

/** Ledger rows shown per table. */
export const STATUS_ROWS = 50;

/**
 * Takes the snapshot.
 *
 * @param ca The running authority.
 * @param now Clock ms.
 */
export async function caStatus(
  ca: CertificateAuthority,
  now: number,
): Promise<CaStatus> {
  const row = (e: LedgerEntry): IssuanceStatus => ({
    time: e.time,
    result: e.result,
    serial: e.serial ?? "",
    instance_id: e.instance_id ?? "",
    app: e.app ?? "",
    caller: e.caller ?? "",
    not_after: e.not_after ?? "",
    reason: e.reason ?? "",
  });
  return {
    role: "ca",
    time: new Date(now).toISOString(),
    trust_domain: ca.store.meta.trust_domain,
    issuers: issuers(ca, now),
    issuances: (await ca.ledger.recent("issued", STATUS_ROWS)).map(row),
    refusals: (await ca.ledger.recent("refused", STATUS_ROWS)).map(row),
    revocations: null,
  };
}

const parsed = new WeakMap<CertificateAuthority, CertSummary[]>();

function issuers(ca: CertificateAuthority, now: number): CertSummary[] {
  let list = parsed.get(ca);
  if (!list) {
    list = [
      certSummary("root", ca.store.rootPem, 0),
      certSummary(
        "intermediate (signs instances)",
        ca.store.intermediatePem,
        0,
      ),
      ...ca.store.previousIntermediates.map((p) =>
        certSummary("previous intermediate (its leaves still valid)", p.pem, 0)
      ),
    ];
    parsed.set(ca, list);
  }
  return list.filter((c) =>
    !c.role.startsWith("previous") || Date.parse(c.not_after) > now
  ).map((c) => ({
    ...c,
    time_left_ms: Date.parse(c.not_after) - now,
  }));
}
