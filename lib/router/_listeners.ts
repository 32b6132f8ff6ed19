/**
 * Binding the router's listeners with `Deno.serve`, and turning a bind
 * failure into a `RouterError` that names the address and what to do.
 * @module
 */
import {
  describeError,
  describeListenError,
  oneSegment,
} from "../common/mod.ts";
import { formatAddress } from "../config/mod.ts";
import type { Logger } from "../observe/mod.ts";
import { RouterError } from "./errors.ts";

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

/** Options of {@linkcode serveClients}. */
export interface ClientListenerOptions {
  /** `"http"` or `"https"`, passed to the handler (X-Forwarded-Proto). */
  proto: string;
  /** The config key of the address, named in bind errors (`router.listen`). */
  setting: string;
  tls?: ListenTls;
  reusePort: boolean;
  logger: Logger;
}

/**
 * Binds a client listener.
 *
 * @throws {RouterError} `ERR_ROUTER_LISTEN` when the address cannot be bound.
 */
export function serveClients(
  addr: ListenAddress,
  handle: (
    req: Request,
    info: Deno.ServeHandlerInfo,
    proto: string,
  ) => Response | Promise<Response>,
  o: ClientListenerOptions,
): Deno.HttpServer<Deno.NetAddr> {
  const { proto, tls } = o;
  try {
    return Deno.serve(
      {
        hostname: addr.hostname,
        port: addr.port,
        // Only pass the flag when asked: Deno 2.9 treats it as unstable.
        ...(o.reusePort ? { reusePort: true } : {}),
        onListen: () => {},
        onError: (err) => {
          o.logger.error("request-failed", { error: describeError(err) });
          return new Response("500 Internal Server Error\n", {
            status: 500,
          });
        },
        ...tls,
      },
      // Over TLS, stream the body (see oneSegment) or each keep-alive
      // response waits ~40 ms for the client's delayed ACK.
      tls
        ? async (req, info) => oneSegment(await handle(req, info, proto))
        : (req, info) => handle(req, info, proto),
    );
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
