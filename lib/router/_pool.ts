/**
 * Endpoints and pools: the backends registered for one route, and the choice
 * of the next one (round-robin or least-connection, sticky sessions, failure
 * cooldown, connection limit).
 * @module
 */

/** Load-balancing algorithm names (Cloud Foundry's). */
export type Balancing = "round-robin" | "least-connection";

/**
 * The rarely read, usually identical part of a registration (tags, zone,
 * protocol, isolation segment). Shared between endpoints: see
 * {@linkcode internMeta}. Frozen, never mutated.
 */
export interface EndpointMeta {
  readonly tags: Readonly<Record<string, string>> | undefined;
  readonly availabilityZone: string | undefined;
  readonly protocol: string | undefined;
  readonly isolationSegment: string | undefined;
}

/** Metadata of an endpoint registered without any. */
export const NO_META: EndpointMeta = Object.freeze({
  tags: undefined,
  availabilityZone: undefined,
  protocol: undefined,
  isolationSegment: undefined,
});

/** Distinct metadata seen recently (bounded: cleared when full). */
const metas = new Map<string, EndpointMeta>();
const METAS_MAX = 4096;

/**
 * One shared, frozen {@linkcode EndpointMeta} per distinct value, so 100k
 * endpoints registered with the same tags hold one object, not 100k.
 */
export function internMeta(
  tags: Record<string, string> | undefined,
  availabilityZone: string | undefined,
  protocol: string | undefined,
  isolationSegment: string | undefined,
): EndpointMeta {
  if (
    tags === undefined && availabilityZone === undefined &&
    protocol === undefined && isolationSegment === undefined
  ) return NO_META;
  const k = JSON.stringify([
    tags,
    availabilityZone,
    protocol,
    isolationSegment,
  ]);
  let m = metas.get(k);
  if (m === undefined) {
    if (metas.size >= METAS_MAX) metas.clear();
    m = Object.freeze({
      tags: tags === undefined ? undefined : Object.freeze({ ...tags }),
      availabilityZone,
      protocol,
      isolationSegment,
    });
    metas.set(k, m);
  }
  return m;
}

/**
 * One registered backend. Fields are plain and fixed so 100k of them stay
 * small: shared metadata ({@linkcode EndpointMeta}), no per-endpoint Maps,
 * closures or timers, and the connection pool (`transport`) is created on
 * first use.
 */
export class Endpoint {
  /** `host:port` (the TLS port for TLS endpoints): the key within a pool. */
  key: string;
  host: string;
  port: number;
  tls: boolean;
  /** `private_instance_id`: X-CF-InstanceID and the sticky-session value. */
  instanceId: string;
  /** `server_cert_domain_san`: the name the backend certificate must carry. */
  san: string;
  app: string;
  index: string;
  /** Tags, zone, protocol, isolation segment (shared, frozen). */
  meta: EndpointMeta;
  /** Stale threshold in ms. */
  staleMs: number;
  /** Last registration (clock ms). */
  updatedAt: number;
  /** Last successful liveness probe (clock ms), 0 when never probed. */
  probedAt = 0;
  /** Requests in flight to this endpoint. */
  inflight = 0;
  /** Requests (attempts and WebSockets) sent to this endpoint. */
  requests = 0;
  /** Skipped until this time (clock ms) after a failure. */
  failedUntil = 0;
  /** Connection pool, owned by the router's transport cache. */
  transport: unknown = undefined;
  /** Set when removed from its pool, so late callbacks can tell. */
  removed = false;

  constructor(key: string, host: string, port: number, tls: boolean) {
    this.key = key;
    this.host = host;
    this.port = port;
    this.tls = tls;
    this.instanceId = "";
    this.san = "";
    this.app = "";
    this.index = "";
    this.meta = NO_META;
    this.staleMs = 0;
    this.updatedAt = 0;
  }

  get tags(): Readonly<Record<string, string>> | undefined {
    return this.meta.tags;
  }
  get availabilityZone(): string | undefined {
    return this.meta.availabilityZone;
  }
  get protocol(): string | undefined {
    return this.meta.protocol;
  }
  get isolationSegment(): string | undefined {
    return this.meta.isolationSegment;
  }
}

const NO_ENDPOINTS: Endpoint[] = [];
/** Pools up to this size copy their array on add (exact size). */
const EXACT_UP_TO = 8;

/** Pools with more endpoints than this get a key index. */
const INDEX_AT = 16;

/** Why {@linkcode Pool.pick} found nothing. */
export type PickMiss = "none" | "exhausted";

/** The endpoints of one route (a hostname with an optional path prefix). */
export class Pool {
  /** The route, lowercased: `host` or `host/path`. */
  readonly uri: string;
  /** Path prefix without trailing slash, `""` for the whole host. */
  readonly path: string;
  /**
   * The endpoints (replaced, not grown, while small: an array grown by
   * `push` reserves 16 more slots, 128 bytes per one-endpoint route).
   */
  endpoints: Endpoint[] = NO_ENDPOINTS;
  /** Per-route override from `options.loadbalancing`. */
  balancing: Balancing | undefined;
  /** `route_service_url` of the latest registration (https). */
  routeServiceUrl: string | undefined;
  /** Key → index, built only for big pools (small ones scan: less memory). */
  #byKey: Map<string, number> | undefined;
  #next = 0;

  constructor(uri: string, path: string) {
    this.uri = uri;
    this.path = path;
  }

  get size(): number {
    return this.endpoints.length;
  }

  #indexOf(key: string): number {
    if (this.#byKey !== undefined) return this.#byKey.get(key) ?? -1;
    const eps = this.endpoints;
    for (let i = 0; i < eps.length; i++) if (eps[i]!.key === key) return i;
    return -1;
  }

  get(key: string): Endpoint | undefined {
    const i = this.#indexOf(key);
    return i === -1 ? undefined : this.endpoints[i];
  }

  /** Adds an endpoint (the caller checked that its key is new). */
  add(ep: Endpoint): void {
    const eps = this.endpoints;
    if (this.#byKey !== undefined) this.#byKey.set(ep.key, eps.length);
    else if (eps.length >= INDEX_AT) {
      this.#byKey = new Map(eps.map((e, i) => [e.key, i]));
      this.#byKey.set(ep.key, eps.length);
    }
    if (eps.length < EXACT_UP_TO) this.endpoints = eps.concat(ep);
    else eps.push(ep);
  }

  /** Removes the endpoint with this key (swap-remove). */
  remove(key: string): Endpoint | undefined {
    const i = this.#indexOf(key);
    if (i === -1) return undefined;
    const eps = this.endpoints;
    const ep = eps[i]!;
    const last = eps.pop()!;
    if (last !== ep) {
      eps[i] = last;
      this.#byKey?.set(last.key, i);
    }
    this.#byKey?.delete(key);
    ep.removed = true;
    return ep;
  }

  /** The endpoint serving this instance id, if it is in the pool. */
  /** The endpoint of app `app`, instance `index` (`X-CF-App-Instance`). */
  findAppInstance(app: string, index: string): Endpoint | undefined {
    for (const ep of this.endpoints) {
      if (ep.app === app && ep.index === index) return ep;
    }
    return undefined;
  }

  findInstance(instanceId: string): Endpoint | undefined {
    for (const ep of this.endpoints) {
      if (ep.instanceId === instanceId) return ep;
    }
    return undefined;
  }

  /**
   * Chooses the next endpoint, skipping those already `tried` by this request,
   * those at `maxConns`, and (unless every candidate failed recently) those in
   * their failure cooldown.
   *
   * @returns An endpoint, or why there is none.
   */
  pick(
    now: number,
    tried: Endpoint[] | undefined,
    algorithm: Balancing,
    maxConns: number,
  ): Endpoint | PickMiss {
    const eps = this.endpoints;
    const n = eps.length;
    if (n === 0) return "none";
    let full = false;
    let cooling: Endpoint | undefined;
    let best: Endpoint | undefined;
    const start = algorithm === "round-robin"
      ? this.#next++ % n
      : (Math.random() * n) | 0;
    if (this.#next > 1e9) this.#next = 0;
    for (let k = 0; k < n; k++) {
      const ep = eps[(start + k) % n]!;
      if (tried !== undefined && tried.includes(ep)) continue;
      if (ep.inflight >= maxConns) {
        full = true;
        continue;
      }
      if (ep.failedUntil > now) {
        if (cooling === undefined || ep.failedUntil < cooling.failedUntil) {
          cooling = ep;
        }
        continue;
      }
      if (algorithm === "round-robin") {
        this.#next = (start + k + 1) % n;
        return ep;
      }
      if (best === undefined || ep.inflight < best.inflight) best = ep;
    }
    if (best !== undefined) return best;
    // Every candidate failed recently: try the one whose cooldown ends first
    // (gorouter clears the marks when all endpoints are marked).
    if (cooling !== undefined) return cooling;
    return full ? "exhausted" : "none";
  }
}
