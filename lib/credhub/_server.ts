/**
 * `sigil credhub`: HTTPS via `node:https` so client certificates reach the
 * role (requestCert, but not required: bearer-only clients still connect);
 * every request is authenticated by {@linkcode createAuthenticator}.
 * @module
 */
import { createServer } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import type { Hono } from "hono";
import type { CredhubSection } from "../config/mod.ts";
import { formatAddress } from "../config/mod.ts";
import {
  certWarnAt,
  createLogger,
  ExpiryWatch,
  MetricsRegistry,
} from "../observe/mod.ts";
import { parseCertificate } from "../pki/mod.ts";
import type { Logger } from "../observe/mod.ts";
import type { CredentialStore } from "./_store.ts";
import { openCredentialStore } from "./_store_pg.ts";
import { createAuthenticator } from "./_auth.ts";
import { createCredhubApp } from "./_api.ts";
import { MSG } from "./_messages.ts";
import { loadUaa } from "./_uaa.ts";
import { CredhubClientsError } from "./_clients.ts";
import { CredhubError, CredhubListenError } from "./errors.ts";
import { describeListenError } from "../common/mod.ts";

/** A running server. */
export interface RunningCredhub {
  url: string;
  store: CredentialStore;
  close(): Promise<void>;
}

/** Dependencies of {@linkcode startCredhub}. */
export interface CredhubDeps {
  logger?: Logger;
  /** A UAA-compatible sub-app, mounted at the root (default: from the `uaa` section). */
  uaa?: Hono;
}

/** The socket address each request came from (the token endpoint's rate limit key). */
const remoteAddresses = new WeakMap<Request, string>();

/**
 * Starts the server of the `credhub` section.
 *
 * @example
 * ```ts ignore
 * const ch = await startCredhub(config.credhub!);
 * ```
 */
export async function startCredhub(
  config: CredhubSection,
  deps: CredhubDeps = {},
): Promise<RunningCredhub> {
  const logger = deps.logger ??
    createLogger("credhub", { level: config.log_level });
  const store = await openCredentialStore(config);
  const trusted = await Deno.readTextFile(config.trusted_cas_file);
  const uaa = !deps.uaa && config.uaa
    ? await loadUaa(config.uaa, {
      issuer: config.token_issuer,
      audience: config.token_audience,
      remoteAddress: (req) => remoteAddresses.get(req) ?? "",
      logger,
    })
    : undefined;
  const auth = await createAuthenticator({
    trustedCasPem: trusted,
    revokedSerialsFile: config.revoked_serials_file,
    jwksUrl: config.jwks_url,
    jwksCaPem: config.jwks_ca_file
      ? await Deno.readTextFile(config.jwks_ca_file)
      : undefined,
    // Tokens of the own endpoint verify with its key unless another is named.
    publicKeyText: config.public_key_file
      ? await Deno.readTextFile(config.public_key_file)
      : config.jwks_url
      ? undefined
      : uaa?.publicKeyPem,
    issuer: config.token_issuer,
    audience: config.token_audience,
  });
  let url = "";
  const metrics = new MetricsRegistry("sigil_credhub");
  const tlsCert = await Deno.readTextFile(config.tls_cert_file);
  const expiry = new ExpiryWatch({
    registry: metrics,
    name: "tls_cert_not_after_timestamp_seconds",
    help: "When the CredHub TLS certificate expires (Unix time)",
    credential: "credhub-tls-cert",
    logger,
  });
  const leaf = parseCertificate(tlsCert);
  expiry.track("tls", {
    labels: {},
    notAfter: leaf.notAfter.getTime(),
    warnAt: certWarnAt(
      leaf.notBefore.getTime(),
      leaf.notAfter.getTime(),
      config.expiry_warning.cert_fraction,
    ),
    fields: { serial: leaf.serial, file: config.tls_cert_file },
  });
  const app = createCredhubApp({
    store,
    logger,
    metrics,
    uaa: deps.uaa ?? uaa?.app,
    get authServerUrl() {
      return config.auth_server_url ?? url;
    },
    authenticate: (c) => {
      const chain = (c.env as { chain: Uint8Array[] }).chain;
      const authorization = c.req.header("authorization");
      const bearer = authorization?.match(/^bearer\s+(\S+)\s*$/i)?.[1];
      if (bearer && uaa?.revocations.isRevoked(bearer)) {
        // Real CredHub accepts a UAA-revoked token until it expires; not here.
        throw new CredhubError("ERR_CREDHUB_UNAUTHENTICATED", 401, "revoked", {
          body: {
            error: "invalid_token",
            error_description: "The access token has been revoked",
          },
        });
      }
      return auth.authenticate(chain, authorization);
    },
  });
  if (uaa && config.public_key_file) {
    // Tokens it issues but cannot verify would log every client in to 401s.
    try {
      await auth.authenticate([], `bearer ${await uaa.probeToken()}`);
    } catch (err) {
      throw new CredhubClientsError(
        "ERR_CREDHUB_TOKEN_KEY",
        `Cannot serve the token endpoint: public_key_file "${config.public_key_file}" does not verify tokens signed with uaa.token_key_file "${
          config.uaa!.token_key_file
        }"; remove public_key_file or point it at that key's public half`,
        { cause: err },
      );
    }
  }
  const server = createServer({
    cert: tlsCert,
    key: await Deno.readTextFile(config.tls_key_file),
    ca: trusted,
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: "TLSv1.2",
  }, (req, res) => {
    handle(app, req, res, config.max_body_bytes).catch((err) => {
      logger.error("credhub-request-failed", {
        reason: (err as Error).message,
      });
      if (!res.headersSent) {
        res.writeHead(500, { "content-type": "application/json" });
      }
      res.end(JSON.stringify({ error: MSG.INTERNAL }));
    });
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(
        config.listen.port,
        config.listen.hostname,
        () => resolve(),
      );
    });
  } catch (err) {
    expiry.close();
    await store.close();
    throw new CredhubListenError(
      `Cannot listen on "${formatAddress(config.listen)}" (credhub.listen): ${
        describeListenError(err)
      }`,
      { cause: err },
    );
  }
  const addr = server.address() as { address: string; port: number };
  url = `https://${formatAddress({ hostname: addr.address, port: addr.port })}`;
  logger.info("credhub-listening", {
    url,
    credentials: await store.count(),
  });
  return {
    url,
    store,
    close: () =>
      new Promise<void>((resolve) => {
        expiry.close();
        server.close(() => {
          store.close().then(resolve, resolve);
        });
        server.closeAllConnections();
      }),
  };
}

async function handle(
  app: { fetch(r: Request, env: unknown): Response | Promise<Response> },
  req: IncomingMessage,
  res: ServerResponse,
  maxBody: number,
): Promise<void> {
  const socket = req.socket as TLSSocket;
  const chain: Uint8Array[] = [];
  let cert = socket.getPeerCertificate(true);
  while (
    cert && cert.raw && !chain.some((d) => Buffer.compare(d, cert.raw) === 0)
  ) {
    chain.push(new Uint8Array(cert.raw));
    cert = cert.issuerCertificate;
  }
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > maxBody) {
      res.writeHead(413, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "The request body is too large." }));
      return;
    }
    parts.push(chunk);
  }
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) {
    if (typeof v === "string") headers.set(k, v);
    else if (Array.isArray(v)) { for (const x of v) headers.append(k, x); }
  }
  const method = req.method ?? "GET";
  const request = new Request(
    `https://${req.headers.host ?? "credhub"}${req.url ?? "/"}`,
    {
      method,
      headers,
      body: method === "GET" || method === "HEAD"
        ? undefined
        : Buffer.concat(parts),
    },
  );
  remoteAddresses.set(request, socket.remoteAddress ?? "");
  const response = await app.fetch(request, { chain });
  const out: Record<string, string> = {};
  response.headers.forEach((v, k) => (out[k] = v));
  res.writeHead(response.status, out);
  res.end(Buffer.from(await response.arrayBuffer()));
}
