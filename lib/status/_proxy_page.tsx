/**
 * A proxy's status page (admin listener): per instance, the served
 * certificate with a countdown, listeners with connections and bytes,
 * refusals by reason, and registration state per router.
 * @module
 */
import { formatBytes } from "./_format.ts";
import { CertTable, Page, Section, Since, State, Td } from "./_layout.tsx";
import type { InstanceStatus, ProxyStatus } from "./_types.ts";

/** Renders {@linkcode ProxyStatus} as HTML. */
export function ProxyPage(props: { s: ProxyStatus }) {
  const s = props.s;
  return (
    <Page title="sigil proxy" time={s.time}>
      <Section
        title="Instances"
        empty={s.instances.length === 0}
        none="No instance configured."
      >
        {s.instances.map((i) => <Instance key={i.id} i={i} now={s.time} />)}
      </Section>
    </Page>
  );
}

function Instance(props: { i: InstanceStatus; now: string }) {
  const { i, now } = props;
  return (
    <div class="instance" data-instance={i.id}>
      <h3>
        {i.id} <span class="muted">({i.mode})</span>
      </h3>
      <CertTable certs={[i.certificate]} now={now} />
      <h4>Listeners</h4>
      <div class="scroll">
        <table class="cards listeners">
          <thead>
            <tr>
              <th>Name</th>
              <th>Listen</th>
              <th>App</th>
              <th>Open</th>
              <th>Total</th>
              <th>Client → app</th>
              <th>App → client</th>
              <th>Refusals</th>
            </tr>
          </thead>
          <tbody>
            {i.listeners.map((l) => (
              <tr data-listener={l.name}>
                <Td label="Name">{l.name}</Td>
                <Td label="Listen">
                  <code>{l.listen}</code>
                </Td>
                <Td label="App">
                  <code>{l.app}</code>
                </Td>
                <Td label="Open" num>{String(l.active)}</Td>
                <Td label="Total" num>{String(l.total)}</Td>
                <Td label="Client → app" num>
                  {formatBytes(l.bytes_client_to_app)}
                </Td>
                <Td label="App → client" num>
                  {formatBytes(l.bytes_app_to_client)}
                </Td>
                <Td label="Refusals">
                  {Object.keys(l.refusals).length === 0
                    ? <span class="muted">none</span>
                    : Object.entries(l.refusals).map(([why, n]) => (
                      <div>
                        {why}: <strong>{String(n)}</strong>
                      </div>
                    ))}
                </Td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h4>Route registration</h4>
      {i.registrations.length === 0
        ? <p class="empty">This instance registers no routes.</p>
        : (
          <div class="scroll">
            <table class="cards registrations">
              <thead>
                <tr>
                  <th>Router</th>
                  <th>State</th>
                  <th>Last success</th>
                  <th>Last error</th>
                </tr>
              </thead>
              <tbody>
                {i.registrations.map((r) => (
                  <tr data-target={r.target} data-state={r.state}>
                    <Td label="Router">
                      <code>{r.target}</code>
                    </Td>
                    <Td label="State">
                      <State state={r.state} />
                    </Td>
                    <Td label="Last success">
                      <Since since={r.last_ok} now={now} />
                    </Td>
                    <Td label="Last error">
                      {r.last_error === ""
                        ? <span class="muted">none</span>
                        : <code>{r.last_error}</code>}
                    </Td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
    </div>
  );
}
