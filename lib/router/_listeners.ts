/**
 * Binding the router's listeners (the client fronts of `_front.ts`, the API
 * with `Deno.serve`), and turning a bind
 * failure into a `RouterError` that names the address and what to do.
 * @module
 */
import {
  describeError,
  describeListenError,
  oneSegment,
} from "../common/mod.ts";
import type { Clock } from "../common/mod.ts";
import { formatAddress } from "../config/mod.ts";
import type { Logger } from "../observe/mod.ts";
import { RouterError } from "./errors.ts";
import { startFront } from "./_front.ts";
import type { ClientFront, FrontCounters, FrontLimits } from "./_front.ts";

const REUSE_PORT_NEEDS_FLAG =
  'reuse_port needs Deno\'s --unstable-net flag (deno run --unstable-net ..., or "unstable": ["net"] in deno.json)';

/** An address to bind. */
export interface ListenAddress {
  hostname: string;
  port: number;
}

/** A PEM key pair for a TLS listener. */
export interface ListenTls {
  cert: string;
  key: string;
}

/**
 * Whether Deno runs with `--unstable-net`, which `Deno.serve({ reusePort })`
 * needs in Deno 2.9: `Deno.listenDatagram` exists only then.
 */
function unstableNetEnabled(): boolean {
  return typeof (Deno as { listenDatagram?: unknown }).listenDatagram ===
    "function";
}

/**
 * Fails early when `reuse_port` is set without `--unstable-net`: Deno would
 * exit the whole process (status 70) inside `Deno.serve`.
 *
 * @throws {RouterError} `ERR_ROUTER_LISTEN`.
 */
export function checkReusePort(reusePort: boolean, addr: ListenAddress): void {
  if (reusePort && !unstableNetEnabled()) {
    throw new RouterError(
      "ERR_ROUTER_LISTEN",
      `Cannot listen on "${
        formatAddress(addr)
      }" (router.reuse_port): ${REUSE_PORT_NEEDS_FLAG}`,
    );
  }
}

/**
 * A bound client listener, whatever engine serves it. The drain
 * (`_shutdown.ts`) needs only these two steps, as gorouter's
 * `stopListening` + `closeIdleConns` in router/router.go.
 */
export interface ClientListener {
  readonly addr: Deno.NetAddr;
  /**
   * Stops accepting connections and closes idle keep-alive ones; resolves
   * once the requests in flight have been answered.
   */
  stopAccepting(): Promise<void>;
  /** Resolves once every connection has closed. */
  readonly finished: Promise<void>;
}

/** Options of {@linkcode serveClients}. */
export interface ClientListenerOptions {
  /** `"http"` or `"https"`, passed to the handler (X-Forwarded-Proto). */
  proto: string;
  /** The config key of the address, named in bind errors (`router.listen`). */
  setting: string;
  tls?: ListenTls;
  reusePort: boolean;
  /** Deadlines, the connection cap and the head size limit. */
  limits: FrontLimits;
  /** Connection counts for the router's metrics. */
  counters: FrontCounters;
  clock: Clock;
  logger: Logger;
  /**
   * True while the router drains: HTTP/1.1 responses then carry
   * `Connection: close`, so keep-alive clients (and load balancers) open
   * their next connection elsewhere instead of racing the listener's close.
   */
  closing?: () => boolean;
}

/**
 * Adds `Connection: close` to a response (copying it when its headers are
 * immutable). Upgrades keep their `Connection: upgrade`; HTTP/2 drops the
 * header (Deno strips it) and learns of the drain by GOAWAY instead.
 */
export function closeAfter(res: Response): Response {
  if (res.status === 101) return res;
  try {
    res.headers.set("connection", "close");
    return res;
  } catch {
    const headers = new Headers(res.headers);
    headers.set("connection", "close");
    return new Response(res.body, {
      status: res.status,
      statusText: res.statusText,
      headers,
    });
  }
}

/**
 * Binds a client listener: a {@linkcode startFront} front (TCP_NODELAY,
 * deadlines, connection cap, 431) before `Deno.serve`.
 *
 * @throws {RouterError} `ERR_ROUTER_LISTEN` when the address cannot be bound.
 */
export async function serveClients(
  addr: ListenAddress,
  handle: (
    req: Request,
    info: Deno.ServeHandlerInfo,
    proto: string,
  ) => Response | Promise<Response>,
  o: ClientListenerOptions,
): Promise<ClientFront> {
  const { proto, closing } = o;
  const served = closing
    ? async (req: Request, info: Deno.ServeHandlerInfo) => {
      const res = await handle(req, info, proto);
      return closing() ? closeAfter(res) : res;
    }
    : (req: Request, info: Deno.ServeHandlerInfo) => handle(req, info, proto);
  try {
    return await startFront(served, {
      hostname: addr.hostname,
      port: addr.port,
      tls: o.tls,
      reusePort: o.reusePort,
      limits: o.limits,
      counters: o.counters,
      clock: o.clock,
      logger: o.logger,
      onError: (err) => {
        o.logger.error("request-failed", { error: describeError(err) });
        return new Response("500 Internal Server Error\n", { status: 500 });
      },
    });
  } catch (err) {
    throw listenError(addr, o.setting, err);
  }
}

/**
 * Binds the registration API.
 *
 * @throws {RouterError} `ERR_ROUTER_LISTEN` when the address cannot be bound.
 */
export function serveApi(
  addr: ListenAddress,
  fetch: (
    req: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ) => Response | Promise<Response>,
  tls: ListenTls | undefined,
  setting = "router.api.listen",
): Deno.HttpServer<Deno.NetAddr> {
  try {
    return Deno.serve(
      { hostname: addr.hostname, port: addr.port, onListen: () => {}, ...tls },
      tls ? async (req, info) => oneSegment(await fetch(req, info)) : fetch,
    );
  } catch (err) {
    throw listenError(addr, setting, err);
  }
}

function listenError(
  addr: ListenAddress,
  setting: string,
  err: unknown,
): RouterError {
  const why = /unstable-net/.test(String(err))
    ? REUSE_PORT_NEEDS_FLAG
    : describeListenError(err);
  return new RouterError(
    "ERR_ROUTER_LISTEN",
    `Cannot listen on "${formatAddress(addr)}" (${setting}): ${why}`,
    { cause: err },
  );
}
