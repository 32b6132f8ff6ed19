/**
 * The router's status page: routes and endpoints with their state, recent
 * prunes (a misroute is a prune with reason `identity`), NATS, certificates.
 * @module
 */
import { CertTable, Page, Section, Since, State, Td } from "./_layout.tsx";
import type { RouteEventStatus, RouterStatus } from "./_types.ts";

const REASONS: Record<string, string> = {
  identity: "misroute: the backend proved another instance id",
  untrusted: "certificate not from the trusted CA",
  handshake: "TLS handshake failed",
  dial: "connection refused or timed out",
  stale: "no heartbeat within the stale threshold",
  probe: "stale, and the liveness probe failed",
};

/** Renders {@linkcode RouterStatus} as HTML. */
export function RouterPage(props: { s: RouterStatus }) {
  const s = props.s;
  const endpoints = s.routes.reduce((n, r) => n + r.endpoints.length, 0);
  return (
    <Page title="sigil router" time={s.time}>
      <form class="filter" method="get" action="/status">
        <input
          type="search"
          name="host"
          value={s.host}
          placeholder="filter by host"
          aria-label="Filter by host"
        />
        <button type="submit">Filter</button>
        {s.host !== "" && <a href="/status">Clear</a>}
      </form>
      <dl class="kv">
        <dt>Routes</dt>
        <dd id="route-count">{String(s.routes.length)}</dd>
        <dt>Endpoints</dt>
        <dd>{String(endpoints)}</dd>
        <dt>NATS</dt>
        <dd id="nats-state">
          {s.nats.configured
            ? (
              <>
                <State
                  state={s.nats.connected ? "connected" : "disconnected"}
                />{" "}
                <code>{s.nats.servers.join(", ")}</code>
              </>
            )
            : (
              <span class="muted">
                not configured (HTTP registration only)
              </span>
            )}
        </dd>
      </dl>
      <Section
        title="Routes"
        empty={s.routes.length === 0}
        none={s.host === ""
          ? "No routes registered."
          : `No route matches "${s.host}".`}
      >
        {s.routes.map((r) => (
          <div class="route" data-route={r.uri}>
            <h3>{r.uri}</h3>
            <div class="scroll">
              <table class="cards endpoints">
                <thead>
                  <tr>
                    <th>Address</th>
                    <th>Instance</th>
                    <th>App</th>
                    <th>Index</th>
                    <th>TLS</th>
                    <th>Heartbeat</th>
                    <th>State</th>
                    <th>In flight</th>
                    <th>Requests</th>
                    <th>Last error</th>
                  </tr>
                </thead>
                <tbody>
                  {r.endpoints.map((e) => (
                    <tr class="endpoint" data-address={e.address}>
                      <Td label="Address">
                        <code>{e.address}</code>
                      </Td>
                      <Td label="Instance">
                        <code>{e.instance_id}</code>
                      </Td>
                      <Td label="App">
                        <code>{e.app}</code>
                      </Td>
                      <Td label="Index">{e.index}</Td>
                      <Td label="TLS">
                        {e.mtls ? "mTLS" : e.tls ? "TLS" : "plain"}
                      </Td>
                      <Td label="Heartbeat">
                        <Since since={e.last_heartbeat} now={s.time} />
                      </Td>
                      <Td label="State">
                        <State state={e.state} />
                      </Td>
                      <Td label="In flight" num>{String(e.inflight)}</Td>
                      <Td label="Requests" num>{String(e.requests)}</Td>
                      <Td label="Last error">
                        {e.last_error
                          ? (
                            <span title={e.last_error.time}>
                              {e.last_error.kind}:{" "}
                              <code>{e.last_error.detail}</code>
                            </span>
                          )
                          : <span class="muted">none</span>}
                      </Td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </div>
        ))}
      </Section>
      <Section
        title="Recent prunes and misroutes"
        empty={s.events.length === 0}
        none="No endpoint pruned since the router started."
      >
        <Events events={s.events} now={s.time} />
      </Section>
      <Section
        title="Router certificates"
        empty={s.certificates.length === 0}
        none="No certificate configured (plain HTTP API, no client certificate)."
      >
        <CertTable certs={s.certificates} now={s.time} />
      </Section>
    </Page>
  );
}

function Events(props: { events: RouteEventStatus[]; now: string }) {
  return (
    <div class="scroll">
      <table class="cards events">
        <thead>
          <tr>
            <th>When</th>
            <th>Event</th>
            <th>Reason</th>
            <th>Route</th>
            <th>Backend</th>
            <th>Instance</th>
            <th>Detail</th>
          </tr>
        </thead>
        <tbody>
          {props.events.map((e) => (
            <tr class="event" data-reason={e.reason}>
              <Td label="When">
                <Since since={e.time} now={props.now} />
              </Td>
              <Td label="Event">
                <State state={e.kind} />
              </Td>
              <Td label="Reason">
                <strong>{e.reason}</strong>{" "}
                <span class="muted">{REASONS[e.reason] ?? ""}</span>
              </Td>
              <Td label="Route">
                <code>{e.route}</code>
              </Td>
              <Td label="Backend">
                <code>{e.backend}</code>
              </Td>
              <Td label="Instance">
                <code>{e.instance_id}</code>
              </Td>
              <Td label="Detail">
                <code>{e.detail}</code>
              </Td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
