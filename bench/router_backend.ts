/**
 * Backends for `bench/router.ts`:
 *
 * - `deno run -A bench/router_backend.ts app PORT`: a trivial `Deno.serve`
 *   app on 127.0.0.1:PORT answering `ok`, or N bytes for `GET /bytes/N`
 *   (N up to 16 MiB; the body sizes of `bench/router_gorouter.ts`).
 * - `deno run -A bench/router_backend.ts tls-pipe PORT APP_PORT DIR`: a
 *   stand-in for `sigil proxy` in mtls mode (node:tls server with
 *   `DIR/instance.crt`/`instance.key`, client certificate required and
 *   verified against `DIR/ca.pem`, bytes piped to the app), used only when the
 *   real proxy cannot be started.
 *
 * Both print `{"ready":true}` once listening.
 * @module
 */
import * as net from "node:net";
import * as tls from "node:tls";

const [mode, portArg, appPortArg, dir] = Deno.args;
const port = Number(portArg);

if (mode === "app") {
  const body = new TextEncoder().encode("ok\n");
  const sized = new Map<number, Uint8Array<ArrayBuffer>>();
  Deno.serve(
    { hostname: "127.0.0.1", port, onListen: () => ready() },
    (req) => {
      const n = Number(
        new URL(req.url).pathname.match(/^\/bytes\/(\d+)$/)?.[1],
      );
      let b = body;
      if (n >= 0 && n <= 16 * 2 ** 20) {
        b = sized.get(n) ?? new Uint8Array(n).fill(0x61);
        sized.set(n, b);
      }
      return new Response(b, { headers: { "content-type": "text/plain" } });
    },
  );
} else if (mode === "tls-pipe") {
  const appPort = Number(appPortArg);
  const server = tls.createServer({
    cert: Deno.readTextFileSync(`${dir}/instance.crt`),
    key: Deno.readTextFileSync(`${dir}/instance.key`),
    ca: Deno.readTextFileSync(`${dir}/ca.pem`),
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: "TLSv1.2",
  }, (s) => {
    const up = net.connect(appPort, "127.0.0.1");
    s.pipe(up);
    up.pipe(s);
    // Deno's node:tls server socket needs this to close (deno-notes.md).
    s.on("finish", () => s.destroy());
    const end = () => {
      s.destroy();
      up.destroy();
    };
    s.on("error", end);
    up.on("error", end);
    up.on("close", () => s.end());
  });
  server.listen(port, "127.0.0.1", () => ready());
} else {
  console.error(
    "usage: router_backend.ts app PORT | tls-pipe PORT APP_PORT DIR",
  );
  Deno.exit(2);
}

function ready(): void {
  console.log(JSON.stringify({ ready: true }));
}
