/**
 * The floor for `bench/proxy.ts` (not a test, not a product): the smallest
 * node:tls → node:net pipe Deno can run, with none of `sigil proxy`'s
 * features (no stats, timeouts, refusal reasons, reload). It shows what the
 * platform itself costs, so the table can tell Deno's share of a gap to
 * haproxy from sigil's.
 *
 * Run: `deno run -A bench/proxy_bare.ts TLS_PORT MTLS_PORT APP_PORT DIR`
 * (`DIR` holds `creds/instance.crt`, `creds/instance.key`, `ca.pem`).
 * @module
 */
import net from "node:net";
import tls from "node:tls";

const tlsPort = Number(Deno.args[0]);
const mtlsPort = Number(Deno.args[1]);
const appPort = Number(Deno.args[2]);
const dir = Deno.args[3];
const cert = Deno.readTextFileSync(`${dir}/creds/instance.crt`);
const key = Deno.readTextFileSync(`${dir}/creds/instance.key`);
const ca = Deno.readTextFileSync(`${dir}/ca.pem`);

function pipe(s: tls.TLSSocket): void {
  const up = net.connect(appPort, "127.0.0.1");
  // As sigil proxy does: without it, a response's last small TLS record
  // waits for the client's delayed ACK.
  s.setNoDelay(true);
  up.setNoDelay(true);
  s.pipe(up);
  up.pipe(s);
  // Deno 2.9.6: a node:tls server socket never closes after end() otherwise.
  s.on("finish", () => s.destroy());
  s.on("error", () => up.destroy());
  up.on("error", () => s.destroy());
}

tls.createServer({ cert, key, minVersion: "TLSv1.2" }, pipe)
  .listen(tlsPort, "127.0.0.1");
tls.createServer(
  {
    cert,
    key,
    ca,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: "TLSv1.2",
  },
  pipe,
).listen(mtlsPort, "127.0.0.1");
