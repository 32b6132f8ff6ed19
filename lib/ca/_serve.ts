/**
 * `sigil ca serve`: load the CA, give the server its own certificate, open the
 * ledger, serve the API over HTTPS.
 * @module
 */
import type { CaSection } from "../config/mod.ts";
import { formatAddress } from "../config/mod.ts";
import {
  exportPrivateKeyPem,
  generateKeyPair,
  issueServiceCertificate,
} from "../pki/mod.ts";
import { createLogger, MetricsRegistry } from "../observe/mod.ts";
import type { Logger } from "../observe/mod.ts";
import type { Clock } from "../common/clock.ts";
import { systemClock } from "../common/clock.ts";
import { oneSegment } from "../common/tls_response.ts";
import { describeListenError } from "../common/listen.ts";
import { CertificateAuthority } from "./_authority.ts";
import { createCaApp } from "./_api.ts";
import { openLedgerStore } from "./_ledger_pg.ts";
import { CaError } from "./errors.ts";
import { loadCa } from "./_store.ts";

/** A running CA server. */
export interface RunningCa {
  /** Bound `host:port`. */
  address: string;
  /** `https://host:port`. */
  url: string;
  authority: CertificateAuthority;
  /** Resolves when the server has stopped. */
  finished: Promise<void>;
  /** Stops accepting, finishes in-flight requests, closes the ledger. */
  close(): Promise<void>;
}

/** Dependencies of {@linkcode startCa}. */
export interface CaDeps {
  logger?: Logger;
  clock?: Clock;
}

/**
 * Starts the CA server described by the `ca` config section.
 *
 * @throws {CaError} When the CA dir is missing, a key is too open, or the ledger cannot open.
 * @example
 * ```ts ignore
 * const ca = await startCa(config.ca!);
 * console.log(ca.url);
 * ```
 */
export async function startCa(
  config: CaSection,
  deps: CaDeps = {},
): Promise<RunningCa> {
  const logger = deps.logger ??
    createLogger("ca", { level: config.log_level });
  const clock = deps.clock ?? systemClock;
  const store = await loadCa(config.dir);
  const ledger = await openLedgerStore(config.dir, config.store);
  const authority = new CertificateAuthority(store, ledger, {
    defaultValidityMs: config.default_validity,
    maxValidityMs: config.max_validity,
    backdateMs: config.backdate,
    allowedKeyTypes: config.allowed_key_types,
    rateLimit: {
      perSecond: config.rate_limit.per_second,
      burst: config.rate_limit.burst,
    },
    clock,
    logger,
    metrics: new MetricsRegistry("sigil_ca"),
  });
  const serverKeys = await generateKeyPair("ec-p256");
  const serverCert = await issueServiceCertificate(
    serverKeys.publicKey,
    store.issuer,
    {
      commonName: config.server_names[0] ?? "sigil-ca",
      dnsNames: config.server_names,
      ips: config.server_ips,
      validityMs: 365 * 86_400_000,
      now: clock.now(),
    },
  );
  const app = createCaApp(authority, {
    maxBodyBytes: config.max_body_bytes,
    logger,
  });
  let resolveAddr: (a: string) => void;
  const bound = new Promise<string>((r) => (resolveAddr = r));
  let server: Deno.HttpServer;
  try {
    server = Deno.serve({
      hostname: config.listen.hostname,
      port: config.listen.port,
      cert: serverCert.pem + store.intermediatePem,
      key: await exportPrivateKeyPem(serverKeys),
      onListen: ({ hostname, port }) =>
        resolveAddr(formatAddress({ hostname, port })),
      onError: (err) => {
        logger.error("ca-request-failed", { reason: (err as Error).message });
        return Response.json({
          error: { code: "ERR_CA_INTERNAL", message: "Internal error" },
        }, {
          status: 500,
        });
      },
    }, async (req, info) => oneSegment(await app.fetch(req, info)));
  } catch (err) {
    await ledger.close();
    throw new CaError(
      "ERR_CA_LISTEN",
      `Cannot listen on "${formatAddress(config.listen)}" (ca.listen): ${
        describeListenError(err)
      }`,
      { cause: err },
    );
  }
  const address = await bound;
  logger.info("ca-listening", {
    address,
    trust_domain: store.meta.trust_domain,
    server_serial: serverCert.serial,
    ledger: ledger.path,
  });
  let closed = false;
  const finished = server.finished.then(() => ledger.close());
  return {
    address,
    url: `https://${address}`,
    authority,
    finished,
    async close() {
      if (closed) return finished;
      closed = true;
      await server.shutdown();
      await finished;
    },
  };
}
