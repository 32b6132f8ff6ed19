/**
 * Recent route events for the status page: endpoints pruned (stale, failed
 * probe, failed identity check = misroute, untrusted certificate, ...) in a
 * bounded ring, and each endpoint's last error, held beside the endpoint
 * (a WeakMap, so endpoints carry no extra field and leave with their pool).
 * @module
 */
import type { RouteEventStatus } from "../status/mod.ts";
import type { Endpoint, Pool } from "./_pool.ts";

/** One recorded event (the shape `/status.json` lists). */
export type RouteEvent = RouteEventStatus;

/** An endpoint's last failure. */
export interface LastError {
  time: string;
  kind: string;
  detail: string;
}

/**
 * A ring of the last `capacity` events plus the last error per endpoint.
 *
 * @example
 * ```ts
 * import { RouteEvents } from "./_events.ts";
 * import { Endpoint, Pool } from "./_pool.ts";
 * const events = new RouteEvents(2);
 * const ep = new Endpoint("10.0.0.5:61001", "10.0.0.5", 61001, true);
 * for (const r of ["stale", "probe", "identity"]) {
 *   events.pruned(new Pool("a.example.com", ""), ep, r, "", 0);
 * }
 * console.assert(events.recent().map((e) => e.reason).join() === "identity,probe");
 * ```
 */
export class RouteEvents {
  #ring: RouteEvent[] = [];
  #next = 0;
  #capacity: number;
  #lastError = new WeakMap<Endpoint, LastError>();

  /** @param capacity Events kept. @default {200} */
  constructor(capacity = 200) {
    this.#capacity = capacity;
  }

  /** Records that `ep` left `pool` for `reason`. */
  pruned(
    pool: Pool,
    ep: Endpoint,
    reason: string,
    detail: string,
    now: number,
  ): void {
    const e: RouteEvent = {
      time: new Date(now).toISOString(),
      kind: "pruned",
      reason,
      route: pool.uri,
      backend: ep.key,
      instance_id: ep.instanceId || ep.san,
      app: ep.app,
      detail,
    };
    if (this.#ring.length < this.#capacity) this.#ring.push(e);
    else this.#ring[this.#next] = e;
    this.#next = (this.#next + 1) % this.#capacity;
  }

  /** Records an endpoint's failure (shown as its last error). */
  failed(ep: Endpoint, kind: string, detail: string, now: number): void {
    this.#lastError.set(ep, {
      time: new Date(now).toISOString(),
      kind,
      detail,
    });
  }

  /** The endpoint's last failure, if any. */
  lastError(ep: Endpoint): LastError | undefined {
    return this.#lastError.get(ep);
  }

  /** Events, newest first. */
  recent(): RouteEvent[] {
    const n = this.#ring.length;
    const out: RouteEvent[] = [];
    for (let i = 1; i <= n; i++) {
      out.push(this.#ring[(this.#next - i + n) % n]!);
    }
    return out;
  }
}
