/**
 * Binding the proxy's admin API on `admin_listen`, with the bind error naming
 * the setting and the address.
 * @module
 */
import { describeListenError } from "../common/mod.ts";
import { formatAddress } from "../config/mod.ts";
import type { ProxySection } from "../config/mod.ts";
import { ListenError } from "./errors.ts";

/**
 * Serves `handler` on `config.admin_listen`.
 *
 * @throws {ListenError} When the address cannot be bound.
 */
export function serveAdmin(
  config: ProxySection,
  handler: (req: Request) => Response | Promise<Response>,
): Deno.HttpServer<Deno.NetAddr> {
  const { hostname, port } = config.admin_listen;
  try {
    return Deno.serve({
      hostname,
      port,
      onListen: () => {},
      onError: () => new Response("internal error", { status: 500 }),
    }, handler);
  } catch (err) {
    throw new ListenError(
      `Cannot listen on "${
        formatAddress(config.admin_listen)
      }" for the admin API (proxy.admin_listen): ${describeListenError(err)}`,
      { cause: err },
    );
  }
}
