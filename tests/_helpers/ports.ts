/**
 * Test helper: free loopback ports.
 * @module
 */

/**
 * Picks a free loopback TCP port (bind port 0, read it, close). Nothing
 * listens on it afterwards, so it also serves as a "connection refused" port.
 */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}
