/**
 * Trivial HTTP backend for `bench/proxy.ts` (not a test): `GET /` → "hello",
 * `GET /bulk` → 1 MiB, `POST /upload` → reads the body, answers "ok".
 * Run: `deno run -A bench/proxy_backend.ts PORT`.
 * @module
 */
const port = Number(Deno.args[0] ?? 9000);
const bulk = new Uint8Array(1024 * 1024).fill(97);
Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, async (req) => {
  const path = new URL(req.url).pathname;
  if (path === "/bulk") return new Response(bulk);
  if (req.method === "POST") {
    let n = 0;
    for await (const chunk of req.body!) n += chunk.length;
    return new Response(`ok ${n}`);
  }
  return new Response("hello");
});
