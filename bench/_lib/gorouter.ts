/**
 * Cloud Foundry's real gorouter (`../shared/peers/gorouter.gz`, routing-release
 * April 2023) as the router benchmarks' peer: subscribed to the bench's
 * nats-server, reaching the bench backend (`sigil proxy`, mode mtls) with the
 * same client certificate and CA as `sigil router`, optionally with an HTTPS
 * front, and with CF's default `disable_keep_alives: true` /
 * `max_idle_conns_per_host: 2` or tuned for backend keep-alive (`false` /
 * 100).
 * @module
 */
import { startGorouter } from "../../tests/_helpers/gorouter.ts";
import type { Gorouter } from "../../tests/_helpers/gorouter.ts";
import { freePort } from "../../tests/_helpers/ports.ts";
import type { TestCredential } from "../../tests/_helpers/pki.ts";
import { until } from "./proc.ts";
import type { Proxied, RouterBench } from "./router.ts";
import { httpStatus, ROUTE_HOST } from "./router.ts";

/** TLS 1.2 suites for gorouter's front (it refuses `enable_ssl` without). */
const CIPHERS = [
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES256-GCM-SHA384",
].join(":");

/** Options of {@linkcode startBenchGorouter}. */
export interface BenchGorouterOptions {
  /** Keep backend connections alive (`disable_keep_alives: false`, 100 idle per host). */
  tuned: boolean;
  /** Serve HTTPS on 127.0.0.1:`port` with `cert` too (TLS 1.2 and 1.3). */
  https?: { port: number; cert: TestCredential };
  /** gorouter's `logging.level` (CF's default, info, logs every new route). */
  logLevel?: "info" | "error";
}

/** A running gorouter of the benchmark. */
export interface BenchGorouter {
  go: Gorouter;
  /** Plain HTTP port. */
  port: number;
  pid: number;
}

/**
 * Starts gorouter in its own directory under the bench's temp dir and waits
 * until it routes `ROUTE_HOST` (re-sending the registration like a proxy's
 * heartbeat). Dispose `go` when done.
 */
export async function startBenchGorouter(
  bench: RouterBench,
  proxied: Proxied,
  name: string,
  o: BenchGorouterOptions,
): Promise<BenchGorouter> {
  const dir = `${bench.tmp}/${name}`;
  await Deno.mkdir(dir, { recursive: true });
  const extra: Record<string, unknown> = {
    logging: { level: o.logLevel ?? "info" },
    access_log: { file: `${dir}/access.log` },
    disable_keep_alives: !o.tuned,
    max_idle_conns_per_host: o.tuned ? 100 : 2,
    ...(o.https
      ? {
        enable_ssl: true,
        ssl_port: o.https.port,
        tls_pem: [{
          cert_chain: o.https.cert.certPem,
          private_key: o.https.cert.keyPem,
        }],
        cipher_suites: CIPHERS,
        min_tls_version: "TLSv1.2",
        max_tls_version: "TLSv1.3",
        client_cert_validation: "none",
      }
      : {}),
  };
  const go = await startGorouter(dir, {
    natsPort: bench.nats.port,
    port: freePort(),
    caCerts: [proxied.creds.pki.rootPem],
    backendCert: proxied.creds.client,
    extra,
  });
  const g = { go, port: go.port, pid: go.pid };
  try {
    await ensureRoute(g, proxied);
  } catch (err) {
    await go[Symbol.asyncDispose]();
    throw err;
  }
  return g;
}

/**
 * Waits until gorouter routes `ROUTE_HOST` again (a request answers 200),
 * re-sending its registration every 100 ms like a proxy's heartbeat (30 s
 * bound). Call it before every load run: this gorouter prunes a TLS endpoint
 * when a client cancels a request in flight (fixed in routing-release
 * 0.266.0), as wrk does to every connection when a run ends, and only the
 * next registration brings it back. (A request, not `/routes`: with a big
 * table that answer alone grows gorouter's heap by hundreds of MB.)
 */
export async function ensureRoute(
  g: BenchGorouter,
  proxied: Proxied,
): Promise<void> {
  // The prune follows the cancellation by a moment.
  await new Promise((r) => setTimeout(r, 1000));
  await until(
    `route ${ROUTE_HOST} in gorouter on port ${g.port}`,
    async () => {
      const s = await httpStatus(g.port, ROUTE_HOST, "/bytes/1024").catch(
        () => 0,
      );
      if (s === 200) return true;
      await proxied.register();
      await new Promise((r) => setTimeout(r, 100));
      return false;
    },
    30_000,
  );
}
