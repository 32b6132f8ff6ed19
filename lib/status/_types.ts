/**
 * What the status pages and `sigil status` show: one JSON shape per role,
 * served as `/status.json` beside the HTML `/status`.
 * @module
 */

/** A certificate a role holds or serves, without its key. */
export interface CertSummary {
  /** What it is for: `api`, `https`, `backend client`, an instance id... */
  role: string;
  serial: string;
  subject: string;
  /** Instance id, SPIFFE id or DNS name it proves. */
  identity: string;
  not_after: string;
  /** Milliseconds until `not_after` (negative once expired). */
  time_left_ms: number;
}

/**
 * Endpoint states on the router page: `cooling down` after a failure,
 * `stale` (plain, past its threshold: pruned next cycle), `probing` (TLS,
 * past its threshold: kept while its liveness probe succeeds), `pruned`
 * (removed recently, kept on the page from the event ring).
 */
export type EndpointState =
  | "healthy"
  | "cooling down"
  | "stale"
  | "probing"
  | "pruned";

/** One endpoint of a route. */
export interface EndpointStatus {
  address: string;
  instance_id: string;
  app: string;
  index: string;
  tls: boolean;
  /** The router presents its client certificate to this endpoint. */
  mtls: boolean;
  /** ISO time of the last registration; `""` for pruned endpoints. */
  last_heartbeat: string;
  /** Milliseconds since the last registration (or since the prune). */
  heartbeat_age_ms: number;
  state: EndpointState;
  inflight: number;
  requests: number;
  last_error: { time: string; kind: string; detail: string } | null;
  tags: Record<string, string>;
}

/** One route (host plus optional path). */
export interface RouteStatus {
  uri: string;
  endpoints: EndpointStatus[];
}

/** A prune (or misroute, reason `identity`). */
export interface RouteEventStatus {
  time: string;
  kind: string;
  reason: string;
  route: string;
  backend: string;
  instance_id: string;
  app: string;
  detail: string;
}

/** `GET /status.json` on the router's API listener. */
export interface RouterStatus {
  role: "router";
  time: string;
  /** Set when filtered with `?host=`. */
  host: string;
  nats: { configured: boolean; connected: boolean; servers: string[] };
  routes: RouteStatus[];
  events: RouteEventStatus[];
  certificates: CertSummary[];
}

/** Registration state of one instance towards one router (or NATS). */
export interface RegistrationStatus {
  target: string;
  state: "registered" | "failing" | "pending";
  last_ok: string;
  last_error: string;
}

/** One proxy listener. */
export interface ListenerStatus {
  name: string;
  listen: string;
  app: string;
  active: number;
  total: number;
  bytes_client_to_app: number;
  bytes_app_to_client: number;
  /** Refused handshakes and failed app connections, by reason. */
  refusals: Record<string, number>;
}

/** One proxied instance. */
export interface InstanceStatus {
  id: string;
  mode: string;
  certificate: CertSummary;
  listeners: ListenerStatus[];
  registrations: RegistrationStatus[];
}

/** `GET /status.json` on a proxy's admin listener. */
export interface ProxyStatus {
  role: "proxy";
  time: string;
  instances: InstanceStatus[];
}

/** One ledger row without secrets. */
export interface IssuanceStatus {
  time: string;
  result: "issued" | "refused";
  serial: string;
  instance_id: string;
  app: string;
  caller: string;
  not_after: string;
  reason: string;
}

/** One revoked serial. */
export interface RevocationStatus {
  serial: string;
  time: string;
  reason: string;
}

/** `GET /status.json` on the CA. */
export interface CaStatus {
  role: "ca";
  time: string;
  trust_domain: string;
  issuers: CertSummary[];
  issuances: IssuanceStatus[];
  refusals: IssuanceStatus[];
  /** `null` while this CA keeps no revocation list. */
  revocations: RevocationStatus[] | null;
}

/** Any role's status. */
export type RoleStatus = RouterStatus | ProxyStatus | CaStatus;
