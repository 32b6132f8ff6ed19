/**
 * The route table: hostname (lowercased, port dropped) → pools, one per path
 * prefix, each holding endpoints keyed by `host:port`. Lookup is one Map get
 * plus, only for hosts that have path routes, a longest-prefix scan.
 * @module
 */
import { routeKey } from "../routes/mod.ts";
import type { RegistryMessage } from "../routes/mod.ts";
import { Endpoint, internMeta, Pool } from "./_pool.ts";
import type { Balancing } from "./_pool.ts";

const NO_PATHS: Pool[] = [];
/** Bound on remembered emptied routes (a churn storm must not grow memory). */
const EMPTIED_MAX = 100_000;

/** The routes of a host that has path routes. */
class HostRoutes {
  /** The pool for the whole host (no path), if registered. */
  root: Pool | undefined;
  /** Path pools, longest path first. */
  paths: Pool[];
  constructor(root: Pool | undefined) {
    this.root = root;
    this.paths = NO_PATHS;
  }
}

/**
 * A host's entry in the table: its one pool when it has no path routes (the
 * common case, no wrapper object), else a {@linkcode HostRoutes}.
 */
type HostEntry = Pool | HostRoutes;

/** Options of {@linkcode Registry}. */
export interface RegistryOptions {
  /** Default stale threshold in ms. @default {120000} */
  staleThresholdMs?: number;
  /** Called when an endpoint leaves its pool (release its connections). */
  onRemove?: (ep: Endpoint) => void;
  /**
   * How long a route whose last endpoint left still answers 503
   * `no_endpoints` instead of 404 (gorouter's `empty_pool_timeout` with
   * `empty_pool_response_code_503`); 0: at once 404. @default {0}
   */
  emptyPoolMs?: number;
  /** Clock for {@linkcode RegistryOptions.emptyPoolMs}. @default {Date.now} */
  now?: () => number;
}

/** What a register or unregister did. */
export interface ApplyResult {
  added: number;
  updated: number;
  removed: number;
}

/**
 * One entry of `GET /routes`, in gorouter's shape and field order
 * (`route/pool.go` `Endpoint.MarshalJSON`): `ttl` is the stale threshold in
 * seconds; the optional fields are left out when empty.
 */
export interface RouteJson {
  address: string;
  availability_zone: string;
  protocol: string;
  tls: boolean;
  ttl: number;
  route_service_url?: string;
  tags: Record<string, string> | null;
  isolation_segment?: string;
  private_instance_id?: string;
  server_cert_domain_san?: string;
  load_balancing_algorithm?: string;
}

/**
 * The route table.
 *
 * @example
 * ```ts
 * import { Registry } from "./_registry.ts";
 * const r = new Registry();
 * r.register({ host: "10.0.0.5", port: 8080, uris: ["Hello.example.com"] }, 0);
 * console.assert(r.lookup("hello.example.com", "/")?.size === 1);
 * ```
 */
export class Registry {
  #hosts = new Map<string, HostEntry>();
  #staleMs: number;
  #onRemove: ((ep: Endpoint) => void) | undefined;
  #pools = 0;
  #endpoints = 0;
  /** Hosts registered as `*.domain`: lookups try wildcards only when > 0. */
  #wildcards = 0;
  /** Routes that lost their last endpoint → when (see `emptyPoolMs`). */
  #emptied = new Map<string, number>();
  #emptyPoolMs: number;
  #now: () => number;

  constructor(options: RegistryOptions = {}) {
    this.#staleMs = options.staleThresholdMs ?? 120_000;
    this.#onRemove = options.onRemove;
    this.#emptyPoolMs = options.emptyPoolMs ?? 0;
    this.#now = options.now ?? Date.now;
  }

  /** Number of routes (pools). */
  get routeCount(): number {
    return this.#pools;
  }

  /** Number of endpoints summed over routes. */
  get endpointCount(): number {
    return this.#endpoints;
  }

  /**
   * Finds the pool for a request.
   *
   * @param host Lowercased hostname without port.
   * @param path Request path (starting with `/`).
   */
  lookup(host: string, path: string): Pool | undefined {
    const pool = this.#lookupHost(host, path);
    if (pool !== undefined || this.#wildcards === 0) return pool;
    // The most specific wildcard first, as gorouter's `Uri.NextWildcard`:
    // a.b.example.com tries *.b.example.com, *.example.com, then *.com.
    for (let i = host.indexOf("."); i !== -1; i = host.indexOf(".", i + 1)) {
      const w = this.#lookupHost("*" + host.slice(i), path);
      if (w !== undefined) return w;
    }
    return undefined;
  }

  /**
   * Whether a route that would serve `host` + `path` lost its last endpoint
   * less than `emptyPoolMs` ago: the request then gets 503 `no_endpoints`
   * (the app is there, its instances are not), not 404. Only asked after
   * {@linkcode lookup} found nothing.
   */
  recentlyEmptied(host: string, path: string): boolean {
    if (this.#emptied.size === 0) return false;
    const now = this.#now();
    let uri = host + path.toLowerCase();
    const q = uri.indexOf("?");
    if (q !== -1) uri = uri.slice(0, q);
    // The route itself, then each shorter path prefix, as lookup matches.
    for (;;) {
      const at = this.#emptied.get(uri);
      if (at !== undefined && now - at < this.#emptyPoolMs) return true;
      const slash = uri.lastIndexOf("/");
      if (slash === -1) return false;
      uri = uri.slice(0, slash);
    }
  }

  /** Forgets emptied routes older than `emptyPoolMs` (the prune cycle). */
  sweepEmptied(): void {
    if (this.#emptied.size === 0) return;
    const now = this.#now();
    for (const [uri, at] of this.#emptied) {
      if (now - at >= this.#emptyPoolMs) this.#emptied.delete(uri);
    }
  }

  #lookupHost(host: string, path: string): Pool | undefined {
    const h = this.#hosts.get(host);
    if (h === undefined || h instanceof Pool) return h;
    const paths = h.paths;
    if (paths.length === 0) return h.root;
    const lower = path.toLowerCase();
    for (const pool of paths) {
      const p = pool.path;
      if (
        lower.startsWith(p) &&
        (lower.length === p.length || lower.charCodeAt(p.length) === 47 ||
          lower.charCodeAt(p.length) === 63)
      ) {
        return pool;
      }
    }
    return h.root;
  }

  /** Adds or refreshes the message's endpoint in each of its routes. */
  register(msg: RegistryMessage, now: number): ApplyResult {
    const res: ApplyResult = { added: 0, updated: 0, removed: 0 };
    const tls = (msg.tls_port ?? 0) > 0;
    const port = tls ? msg.tls_port! : msg.port!;
    // join() builds one flat string; a template literal would keep a chain
    // of cons strings alive per endpoint.
    const key = [msg.host, port].join(":");
    const threshold = msg.stale_threshold_in_seconds;
    const staleMs = threshold !== undefined && threshold > 0
      ? Math.min(threshold * 1000, this.#staleMs)
      : this.#staleMs;
    for (const uri of msg.uris) {
      const [host, path] = splitUri(uri);
      const entry = this.#hosts.get(host);
      let pool = findPool(entry, path);
      if (pool === undefined) {
        pool = new Pool(path === "" ? host : `${host}${path}`, path);
        if (entry === undefined) {
          this.#hosts.set(host, path === "" ? pool : new HostRoutes(undefined));
          if (host.startsWith("*.")) this.#wildcards++;
        }
        if (path !== "") {
          let h = this.#hosts.get(host)!;
          if (h instanceof Pool) {
            h = new HostRoutes(h);
            this.#hosts.set(host, h);
          }
          h.paths = [...h.paths, pool].sort((a, b) =>
            b.path.length - a.path.length
          );
        } else if (entry !== undefined) {
          (entry as HostRoutes).root = pool;
        }
        this.#pools++;
        this.#emptied.delete(pool.uri);
      }
      const lb = msg.options?.loadbalancing;
      if (lb !== undefined) pool.balancing = lb as Balancing;
      // As gorouter's pool: the last registration names the route service.
      pool.routeServiceUrl = msg.route_service_url;
      let ep = pool.get(key);
      if (ep === undefined) {
        ep = new Endpoint(key, msg.host, port, tls);
        pool.add(ep);
        this.#endpoints++;
        res.added++;
      } else {
        res.updated++;
        if (ep.tls !== tls || ep.san !== identityOf(msg)) {
          // A new identity needs a new transport (servername, identity check).
          this.#onRemove?.(ep);
          ep.transport = undefined;
          ep.tls = tls;
          ep.failedUntil = 0;
        }
      }
      fill(ep, msg, staleMs, now);
    }
    return res;
  }

  /** Removes the message's `host:port` from each of its routes. */
  unregister(msg: RegistryMessage): ApplyResult {
    const res: ApplyResult = { added: 0, updated: 0, removed: 0 };
    const tls = (msg.tls_port ?? 0) > 0;
    const key = `${msg.host}:${tls ? msg.tls_port : msg.port}`;
    for (const uri of msg.uris) {
      const [host, path] = splitUri(uri);
      const pool = findPool(this.#hosts.get(host), path);
      if (pool === undefined) continue;
      if (this.#removeFrom(host, pool, key)) res.removed++;
    }
    return res;
  }

  /**
   * Removes one endpoint from one pool (after a failed handshake or probe).
   * @returns Whether it was still there.
   */
  prune(pool: Pool, ep: Endpoint): boolean {
    if (ep.removed) return false;
    const slash = pool.uri.indexOf("/");
    const host = slash === -1 ? pool.uri : pool.uri.slice(0, slash);
    if (pool.get(ep.key) !== ep) return false;
    return this.#removeFrom(host, pool, ep.key);
  }

  /** Marks every endpoint as just registered (after NATS comes back). */
  refreshAll(now: number): void {
    for (const pool of this.pools()) {
      for (const ep of pool.endpoints) ep.updatedAt = now;
    }
  }

  /** Iterates every pool. */
  *pools(): IterableIterator<Pool> {
    for (const h of this.#hosts.values()) {
      if (h instanceof Pool) yield h;
      else {
        if (h.root !== undefined) yield h.root;
        yield* h.paths;
      }
    }
  }

  /** The table as gorouter's `/routes` JSON: uri → endpoints. */
  toJson(): Record<string, RouteJson[]> {
    const out: Record<string, RouteJson[]> = {};
    for (const pool of this.pools()) {
      const rs = pool.routeServiceUrl;
      const lb = pool.balancing;
      out[pool.uri] = pool.endpoints.map((ep) => ({
        address: ep.key,
        availability_zone: ep.availabilityZone ?? "",
        protocol: ep.protocol ?? "http1",
        tls: ep.tls,
        ttl: Math.round(ep.staleMs / 1000),
        ...(rs ? { route_service_url: rs } : {}),
        tags: ep.tags ?? null,
        ...(ep.isolationSegment
          ? { isolation_segment: ep.isolationSegment }
          : {}),
        ...(ep.instanceId ? { private_instance_id: ep.instanceId } : {}),
        // Without a SAN the host is the identity (identityOf): not shown.
        ...(ep.tls && ep.san !== ep.host
          ? { server_cert_domain_san: ep.san }
          : {}),
        ...(lb ? { load_balancing_algorithm: lb } : {}),
      }));
    }
    return out;
  }

  #removeFrom(host: string, pool: Pool, key: string): boolean {
    const ep = pool.remove(key);
    if (ep === undefined) return false;
    this.#endpoints--;
    this.#onRemove?.(ep);
    if (pool.size === 0) {
      const h = this.#hosts.get(host);
      let gone = false;
      if (h === pool) gone = this.#hosts.delete(host);
      else if (h instanceof HostRoutes) {
        if (h.root === pool) h.root = undefined;
        else h.paths = h.paths.filter((p) => p !== pool);
        if (h.root === undefined && h.paths.length === 0) {
          gone = this.#hosts.delete(host);
        } else if (h.paths.length === 0) this.#hosts.set(host, h.root!);
      }
      if (gone && host.startsWith("*.")) this.#wildcards--;
      this.#pools--;
      if (this.#emptyPoolMs > 0) {
        if (this.#emptied.size >= EMPTIED_MAX) this.#emptied.clear();
        this.#emptied.set(pool.uri, this.#now());
      }
    }
    return true;
  }
}

/** The host entry's pool for `path` (`""`: the whole host). */
function findPool(
  entry: HostEntry | undefined,
  path: string,
): Pool | undefined {
  if (entry === undefined) return undefined;
  if (entry instanceof Pool) return path === "" ? entry : undefined;
  return path === "" ? entry.root : entry.paths.find((p) => p.path === path);
}

function fill(
  ep: Endpoint,
  msg: RegistryMessage,
  staleMs: number,
  now: number,
): void {
  // These go into request headers and cookies: keep them printable.
  ep.instanceId = headerSafe(msg.private_instance_id);
  const san = identityOf(msg);
  // Usually the same text: keep one copy.
  ep.san = san === ep.instanceId ? ep.instanceId : san;
  ep.app = headerSafe(msg.app);
  ep.index = headerSafe(msg.private_instance_index);
  ep.meta = internMeta(
    msg.tags,
    msg.availability_zone,
    msg.protocol,
    msg.isolation_segment,
  );
  ep.staleMs = staleMs;
  ep.updatedAt = now;
}

/**
 * The name a TLS backend's certificate must carry: `server_cert_domain_san`,
 * or without one the registered host (gorouter dials with ServerName "", so
 * Go checks the certificate against the dialed address).
 */
function identityOf(msg: RegistryMessage): string {
  return msg.server_cert_domain_san || msg.host;
}

const UNSAFE = /[^\x20-\x7e]|[;,]/;
const UNSAFE_ALL = /[^\x20-\x7e]|[;,]/g;

/** Drops characters that could break a header or cookie (CR, LF, `;`, ...). */
function headerSafe(value: string | undefined): string {
  if (value === undefined) return "";
  return UNSAFE.test(value) ? value.replace(UNSAFE_ALL, "") : value;
}

/** Splits `Host.Example.com/API/` into `["host.example.com", "/api"]`. */
export function splitUri(uri: string): [string, string] {
  const lower = routeKey(uri);
  const slash = lower.indexOf("/");
  if (slash === -1) return [lower, ""];
  let path = lower.slice(slash);
  while (path.length > 1 && path.endsWith("/")) path = path.slice(0, -1);
  return [lower.slice(0, slash), path === "/" ? "" : path];
}
