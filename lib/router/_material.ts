/**
 * Reading and checking the router's files before any socket opens: the
 * backend TLS material (checked, so a bad file fails start and a reload keeps
 * what it has), the HTTPS and API key pairs, the token key and the CA bundles.
 * @module
 */
import {
  assertPrivateFile,
  describeError,
  FilePermissionError,
} from "../common/mod.ts";
import type { RouterSection } from "../config/mod.ts";
import {
  certificateMatchesKey,
  parseCertificate,
  splitCertificates,
} from "../pki/mod.ts";
import { RouterError } from "./errors.ts";
import type { BackendTls } from "./_transport.ts";

/** Reads a text file. */
export type ReadTextFile = (path: string) => Promise<string>;

/** Every file the router reads at start (undefined: not configured). */
export interface RouterFiles {
  backendTls: BackendTls;
  publicKey: string | undefined;
  caBundle: string | undefined;
  apiCert: string | undefined;
  apiKey: string | undefined;
  natsCa: string | undefined;
  httpsCert: string | undefined;
  httpsKey: string | undefined;
  /** Route-service CA and client key pair. */
  routeServiceTls: BackendTls;
}

/**
 * Reads `path` (when set), naming `what` in the error. A `secret` (private
 * key) that group or others can read is refused, as the CA refuses its own.
 */
async function readFile(
  read: ReadTextFile,
  path: string | undefined,
  what: string,
  secret = false,
): Promise<string | undefined> {
  if (path === undefined) return undefined;
  try {
    if (secret) await assertPrivateFile(path, what);
    return await read(path);
  } catch (err) {
    if (err instanceof FilePermissionError) {
      throw new RouterError(err.code, err.message, { cause: err });
    }
    throw new RouterError(
      "ERR_ROUTER_FILE",
      `Cannot read ${what} "${path}": ${describeError(err)}`,
      { cause: err },
    );
  }
}

/**
 * Reads and checks the backend CA and client key pair (or, with `role`
 * "route service", the route services' ones).
 *
 * @throws {RouterError} `ERR_ROUTER_FILE` when a file cannot be read,
 *   `ERR_ROUTER_BACKEND_TLS` when it holds no usable certificate or the key
 *   does not match.
 */
export async function loadBackendTls(
  b: { ca?: string; cert?: string; key?: string },
  read: ReadTextFile,
  role = "backend",
): Promise<BackendTls> {
  const material: BackendTls = {
    ca: await readFile(read, b.ca, `${role} CA`),
    cert: await readFile(read, b.cert, `${role} client certificate`),
    key: await readFile(read, b.key, `${role} client key`, true),
  };
  // node:tls in Deno 2.9 accepts garbage here and fails only per
  // connection, which would prune every TLS endpoint: check up front, so
  // start fails and a reload keeps the material it has.
  const unusable = (what: string, path: string | undefined, why: string) =>
    new RouterError(
      "ERR_ROUTER_BACKEND_TLS",
      `Cannot use ${what} "${path}": ${why}`,
    );
  const parses = (pem: string, what: string, path: string | undefined) => {
    try {
      parseCertificate(pem);
    } catch (err) {
      throw unusable(what, path, describeError(err));
    }
  };
  if (material.ca !== undefined) {
    const cas = splitCertificates(material.ca);
    if (cas.length === 0) {
      throw unusable(`${role} CA`, b.ca, "it holds no PEM certificate");
    }
    for (const c of cas) parses(c, `${role} CA`, b.ca);
  }
  if (material.cert !== undefined && material.key !== undefined) {
    parses(material.cert, `${role} client certificate`, b.cert);
    const matches = await certificateMatchesKey(material.cert, material.key)
      .catch((err) => {
        throw unusable(`${role} client key`, b.key, describeError(err));
      });
    if (!matches) {
      throw unusable(
        `${role} client key`,
        b.key,
        `it does not match the certificate "${b.cert}"`,
      );
    }
  }
  return material;
}

/**
 * Reads every file the config names, in the order a user would fix them.
 *
 * @throws {RouterError} When a file cannot be read or the backend TLS
 *   material is unusable.
 */
export async function loadRouterFiles(
  config: RouterSection,
  read: ReadTextFile,
): Promise<RouterFiles> {
  const backendTls = await loadBackendTls(config.backends, read);
  const api = config.api.enabled ? config.api : undefined;
  return {
    backendTls,
    publicKey: await readFile(read, api?.public_key_file, "token public key"),
    caBundle: await readFile(read, api?.ca_bundle, "JWKS CA bundle"),
    apiCert: await readFile(read, api?.cert, "API certificate"),
    apiKey: await readFile(read, api?.key, "API key", true),
    natsCa: await readFile(read, config.nats?.tls_ca, "NATS CA bundle"),
    httpsCert: await readFile(read, config.https?.cert, "HTTPS certificate"),
    httpsKey: await readFile(read, config.https?.key, "HTTPS key", true),
    routeServiceTls: await loadBackendTls(
      config.route_services,
      read,
      "route service",
    ),
  };
}
