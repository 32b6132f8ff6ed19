/** Response shaping for Deno.serve over TLS. @module */

/**
 * Works around a Deno.serve-over-TLS stall (used by the CA, the router API and
 * the router's HTTPS front). Deno.serve over TLS does not set TCP_NODELAY and writes the response head
 * and the body in separate sends, so a small body waits for the client's
 * delayed ACK: about 40 ms per keep-alive response (measured with wrk: 90
 * req/s over HTTPS against 13.7k over HTTP for 2 KiB bodies). Relaying the
 * body as a stream without Content-Length (chunked framing) lets its first
 * chunk go out with the head: 11k req/s over HTTPS for the same bodies.
 * Bodies larger than one TLS record still stall on their last segment (115
 * req/s for 200 KB over HTTPS; a Deno limit). Upgrades (101) and bodiless
 * responses pass through untouched.
 *
 * @example
 * ```ts
 * import { oneSegment } from "./tls_response.ts";
 * const res = oneSegment(new Response("hello", { headers: { "content-length": "5" } }));
 * console.assert(res.headers.get("content-length") === null && (await res.text()) === "hello");
 * ```
 */
export function oneSegment(res: Response): Response {
  if (!res.body || res.status === 101) return res;
  const headers = new Headers(res.headers);
  headers.delete("content-length");
  const reader = res.body.getReader();
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  return new Response(body, {
    status: res.status,
    statusText: res.statusText,
    headers,
  });
}
