/**
 * The CredHub of `sigil dev`: a `sigil credhub` on the dev CA, a broker that
 * stores one binding credential for app `hello` and grants its app actor
 * read (CredHub `docs/secure-service-credentials.md`: the broker flow), and
 * the demo app's `/credentials`, which interpolates an instance's
 * `VCAP_SERVICES` with the code `sigil launch` runs.
 * @module
 */
import { join } from "node:path";
import { mintToken } from "../ca/mod.ts";
import type { CaStore } from "../ca/mod.ts";
import { describeError, writeSecretFile } from "../common/mod.ts";
import { CredhubSection, LaunchSection } from "../config/mod.ts";
import { startCredhub } from "../credhub/mod.ts";
import type { RunningCredhub } from "../credhub/mod.ts";
import { LaunchError, prepareLaunchEnv } from "../launch/mod.ts";
import type { Logger } from "../observe/mod.ts";
import {
  exportPrivateKeyPem,
  generateKeyPair,
  issueServiceCertificate,
} from "../pki/mod.ts";
import type { DemoCredentials } from "./_demo_app.ts";

/** The broker's name: its token subject, its actor `uaa-client:<name>`. */
export const DEV_BROKER = "sigil-dev-broker";

/** A running dev CredHub with hello's binding stored. */
export interface DevCredhub {
  ch: RunningCredhub;
  url: string;
  /** The broker's bearer token (scope credhub.write). */
  tokenFile: string;
  /** Name of hello's binding credential. */
  credential: string;
  /** The `VCAP_SERVICES` every demo instance is started with. */
  vcapServices: string;
}

/** Options of {@linkcode startDevCredhub}. */
export interface DevCredhubOptions {
  dir: string;
  ca: CaStore;
  caUrl: string;
  /** The dev CA's root (trusted for instance certificates and by clients). */
  bundle: string;
  /** 0: any free port. */
  port: number;
  /** The app whose instances may read the binding. */
  appGuid: string;
  logger: Logger;
}

/**
 * Starts the CredHub and runs the broker's bind over its API: `PUT
 * /api/v1/data` (a json credential), `POST /api/v2/permissions` (read for
 * `mtls-app:<appGuid>`).
 *
 * @example
 * ```ts ignore
 * const c = await startDevCredhub({ dir, ca: store, caUrl, bundle, port: 0, appGuid, logger });
 * await c.ch.close();
 * ```
 */
export async function startDevCredhub(
  o: DevCredhubOptions,
): Promise<DevCredhub> {
  const dir = join(o.dir, "credhub");
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const keys = await generateKeyPair();
  const cert = await issueServiceCertificate(keys.publicKey, o.ca.issuer, {
    commonName: "credhub.sigil.dev",
    dnsNames: ["localhost", "credhub.sigil.dev"],
    ips: ["127.0.0.1"],
    validityMs: 30 * 86_400_000,
  });
  await Deno.writeTextFile(
    join(dir, "server.crt"),
    cert.pem + o.ca.intermediatePem,
  );
  await writeSecretFile(
    join(dir, "server.key"),
    await exportPrivateKeyPem(keys),
  );
  const tokenFile = join(o.dir, "tokens", "broker.jwt");
  const token = await mintToken(o.ca, {
    subject: DEV_BROKER,
    scopes: ["credhub.write"],
    apps: [],
    spaces: [],
    orgs: [],
    cidrs: [],
  });
  await writeSecretFile(tokenFile, token);
  const ch = await startCredhub(
    CredhubSection.parse({
      listen: `127.0.0.1:${o.port}`,
      database: join(dir, "credhub.db"),
      keys_dir: join(dir, "keys"),
      tls_cert_file: join(dir, "server.crt"),
      tls_key_file: join(dir, "server.key"),
      trusted_cas_file: o.bundle,
      jwks_url: `${o.caUrl}/v1/jwks.json`,
      jwks_ca_file: o.bundle,
    }),
    { logger: o.logger },
  );
  try {
    const binding = crypto.randomUUID();
    const credential = `/c/${DEV_BROKER}/p-mysql/${binding}/credentials`;
    const client = Deno.createHttpClient({
      caCerts: [await Deno.readTextFile(o.bundle)],
    });
    try {
      const call = async (method: string, path: string, body: unknown) => {
        const res = await fetch(`${ch.url}${path}`, {
          method,
          client,
          headers: {
            authorization: `bearer ${token}`,
            "content-type": "application/json",
          },
          body: JSON.stringify(body),
        });
        const text = await res.text();
        if (!res.ok) {
          throw new Error(
            `Cannot set up the dev CredHub: ${method} ${path} answered ${res.status}: ${text}`,
          );
        }
      };
      await call("PUT", "/api/v1/data", {
        name: credential,
        type: "json",
        value: {
          hostname: "mysql.sigil.dev",
          port: 3306,
          name: "hello_db",
          username: "hello-user",
          password: crypto.randomUUID(),
        },
      });
      await call("POST", "/api/v2/permissions", {
        actor: `mtls-app:${o.appGuid}`,
        path: credential,
        operations: ["read"],
      });
    } finally {
      client.close();
    }
    // What Cloud Controller gives every instance: the broker's reference.
    const vcapServices = JSON.stringify({
      "p-mysql": [{
        name: "hello-db",
        label: "p-mysql",
        plan: "dev",
        instance_name: "hello-db",
        binding_guid: binding,
        tags: ["mysql"],
        credentials: { "credhub-ref": `((${credential}))` },
      }],
    });
    return { ch, url: ch.url, tokenFile, credential, vcapServices };
  } catch (err) {
    await ch.close();
    throw err;
  }
}

/**
 * The demo app's `/credentials` for one instance: `VCAP_SERVICES` through
 * `sigil launch`'s preparation (mTLS with the instance's certificate from
 * `credentialsDir`); 404 with the launcher's message when CredHub gives
 * this instance nothing.
 *
 * @example
 * ```ts ignore
 * const credentials = demoCredentials(() => devCredhub, dir, logger);
 * ```
 */
export function demoCredentials(
  credhub: () => DevCredhub | undefined,
  bundle: string,
  credentialsDir: string,
  app: string,
  logger: Logger,
): () => Promise<DemoCredentials> {
  return async () => {
    const c = credhub();
    if (!c) return { status: 503, body: "CredHub is not running yet" };
    try {
      const env = await prepareLaunchEnv(
        LaunchSection.parse({
          credhub_url: c.url,
          ca_bundle: bundle,
          credentials_dir: credentialsDir,
          attempts: 2,
          retry_delay: "250ms",
        }),
        { logger, env: { VCAP_SERVICES: c.vcapServices } },
      );
      return { status: 200, body: env.VCAP_SERVICES ?? "" };
    } catch (err) {
      if (!(err instanceof LaunchError)) {
        return { status: 500, body: describeError(err) };
      }
      return {
        status: 404,
        body:
          `app "${app}" gets no credentials (sigil launch would exit 4): ${err.message}`,
      };
    }
  };
}
