/**
 * `sigil ca serve`: load the CA, give the server its own certificate, open the
 * ledger, serve the API over HTTPS.
 * @module
 */
import { join } from "node:path";
import type { CaSection } from "../config/mod.ts";
import { formatAddress } from "../config/mod.ts";
import {
  exportPrivateKeyPem,
  generateKeyPair,
  issueServiceCertificate,
  parseCertificate,
} from "../pki/mod.ts";
import { createLogger, MetricsRegistry } from "../observe/mod.ts";
import type { Logger } from "../observe/mod.ts";
import type { Clock, TimerId } from "../common/clock.ts";
import { systemClock } from "../common/clock.ts";
import { oneSegment } from "../common/tls_response.ts";
import { describeListenError } from "../common/listen.ts";
import { CertificateAuthority } from "./_authority.ts";
import { createCaApp } from "./_api.ts";
import { openCaStores } from "./_ledger_pg.ts";
import { CaError } from "./errors.ts";
import { CA_FILES, loadCa } from "./_store.ts";

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
  const stores = await openCaStores(config.dir, config.store);
  const { ledger, revocations } = stores;
  const authority = new CertificateAuthority(store, ledger, {
    defaultValidityMs: config.default_validity,
    maxValidityMs: config.max_validity,
    backdateMs: config.backdate,
    allowedKeyTypes: config.allowed_key_types,
    rateLimit: {
      perSecond: config.rate_limit.per_second,
      burst: config.rate_limit.burst,
    },
    revocations,
    clock,
    logger,
    metrics: new MetricsRegistry("sigil_ca"),
  });
  if (store.rootKeyOnline) {
    logger.warn("root-key-online", {
      path: join(config.dir, CA_FILES.rootKey),
      hint:
        "ca serve does not need the root key: move it to offline storage and pass it to 'sigil ca intermediate renew --root-key' when renewing",
    });
  }
  const watch = watchExpiry(store, config.expiry_warning, clock, logger);
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
    watch.stop();
    await stores.close();
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
  const finished = server.finished.then(async () => {
    watch.stop();
    await stores.close();
  });
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

const EXPIRY_CHECK_MS = 3_600_000;
const WARN_EVERY_MS = 86_400_000;

/**
 * Logs `ca-certificate-expiring` (warn) for the root and the current
 * intermediate once they are within `thresholdMs` of expiry. Checked at start
 * and hourly; each certificate is warned about at most once a day. Previous
 * intermediates are expected to run out and are not warned about.
 */
function watchExpiry(
  store: { rootPem: string; intermediatePem: string },
  thresholdMs: number,
  clock: Clock,
  logger: Logger,
): { stop(): void } {
  const certs = [
    { certificate: "root", info: parseCertificate(store.rootPem) },
    {
      certificate: "intermediate",
      info: parseCertificate(store.intermediatePem),
    },
  ];
  let timer: TimerId | undefined;
  let stopped = false;
  const warned = new Map<string, number>();
  const check = () => {
    const now = clock.now();
    for (const { certificate, info } of certs) {
      const left = info.notAfter.getTime() - now;
      if (left > thresholdMs) continue;
      const last = warned.get(certificate);
      if (last !== undefined && now - last < WARN_EVERY_MS) continue;
      warned.set(certificate, now);
      logger.warn("ca-certificate-expiring", {
        certificate,
        serial: info.serial,
        not_after: info.notAfter.toISOString(),
        hours_left: Math.max(0, Math.floor(left / 3_600_000)),
        hint: certificate === "root"
          ? "create or import a new root and distribute it to every trust bundle before this one expires"
          : "run 'sigil ca intermediate renew --dir DIR --root-key PATH' and restart sigil ca serve",
      });
    }
    if (!stopped) timer = clock.setTimeout(check, EXPIRY_CHECK_MS);
  };
  check();
  return {
    stop() {
      stopped = true;
      if (timer !== undefined) clock.clearTimeout(timer);
    },
  };
}
