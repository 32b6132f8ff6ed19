/**
 * The CA's status page: issuers and their expiry, recent issuances and
 * refusals from the ledger (serials, instance ids, callers: no keys, tokens
 * or PEM), and revocations when the CA keeps them.
 * @module
 */
import { CertTable, Page, Section, Since, State, Td } from "./_layout.tsx";
import type { CaStatus, IssuanceStatus } from "./_types.ts";

/** Renders {@linkcode CaStatus} as HTML. */
export function CaPage(props: { s: CaStatus }) {
  const s = props.s;
  return (
    <Page title="sigil ca" time={s.time}>
      <dl class="kv">
        <dt>Trust domain</dt>
        <dd>
          <code>{s.trust_domain}</code>
        </dd>
      </dl>
      <Section title="Issuers" empty={s.issuers.length === 0} none="None.">
        <CertTable certs={s.issuers} now={s.time} />
      </Section>
      <Section
        title="Recent issuances"
        empty={s.issuances.length === 0}
        none="Nothing issued yet."
      >
        <Ledger rows={s.issuances} now={s.time} />
      </Section>
      <Section
        title="Recent refusals"
        empty={s.refusals.length === 0}
        none="No request refused."
      >
        <Ledger rows={s.refusals} now={s.time} />
      </Section>
      <Section
        title="Revocations"
        empty={s.revocations === null || s.revocations.length === 0}
        none={s.revocations === null
          ? "This CA keeps no revocation list yet."
          : "No certificate revoked."}
      >
        <div class="scroll">
          <table class="cards revocations">
            <thead>
              <tr>
                <th>Serial</th>
                <th>When</th>
                <th>Reason</th>
              </tr>
            </thead>
            <tbody>
              {(s.revocations ?? []).map((r) => (
                <tr>
                  <Td label="Serial">
                    <code>{r.serial}</code>
                  </Td>
                  <Td label="When">
                    <Since since={r.time} now={s.time} />
                  </Td>
                  <Td label="Reason">{r.reason}</Td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </Section>
    </Page>
  );
}

function Ledger(props: { rows: IssuanceStatus[]; now: string }) {
  return (
    <div class="scroll">
      <table class="cards ledger">
        <thead>
          <tr>
            <th>When</th>
            <th>Result</th>
            <th>Instance</th>
            <th>App</th>
            <th>Caller</th>
            <th>Serial</th>
            <th>Not after / reason</th>
          </tr>
        </thead>
        <tbody>
          {props.rows.map((r) => (
            <tr data-serial={r.serial} data-instance={r.instance_id}>
              <Td label="When">
                <Since since={r.time} now={props.now} />
              </Td>
              <Td label="Result">
                <State state={r.result} />
              </Td>
              <Td label="Instance">
                <code>{r.instance_id}</code>
              </Td>
              <Td label="App">
                <code>{r.app}</code>
              </Td>
              <Td label="Caller">
                <code>{r.caller}</code>
              </Td>
              <Td label="Serial">
                <code>{r.serial}</code>
              </Td>
              <Td label="Not after / reason">
                {r.result === "issued" ? r.not_after : r.reason}
              </Td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
