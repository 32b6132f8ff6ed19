/**
 * `sigil dev`: a throw-away CA, a rotator, a demo app with four instances, one
 * strict-mTLS proxy per instance and the router, all in one process.
 * @module
 */
import { join } from "node:path";
import { CA_FILES, initCa, loadCa, mintToken, startCa } from "../ca/mod.ts";
import type { RunningCa } from "../ca/mod.ts";
import { formatDuration, writeSecretFile } from "../common/mod.ts";
import {
  CaSection,
  ProxySection,
  RotatorSection,
  RouterSection,
} from "../config/mod.ts";
import { createLogger } from "../observe/mod.ts";
import type { LogLevel } from "../observe/mod.ts";
import {
  exportPrivateKeyPem,
  generateKeyPair,
  issueRouterCertificate,
  routerSpiffeId,
} from "../pki/mod.ts";
import { startProxy } from "../proxy/mod.ts";
import type { RunningProxy } from "../proxy/mod.ts";
import { startRotator } from "../rotator/mod.ts";
import type { RunningRotator } from "../rotator/mod.ts";
import { startRouter } from "../router/mod.ts";
import type { RunningRouter } from "../router/mod.ts";
import { startDemoApp } from "./_demo_app.ts";
import type { DemoInstance, RunningDemoApp } from "./_demo_app.ts";
import { demoCredentials, startDevCredhub } from "./_credhub.ts";
import type { DevCredhub } from "./_credhub.ts";

/** Options of {@linkcode startDev}. */
export interface DevOptions {
  /** Router HTTP port on 127.0.0.1 (0: any free port); the API uses +1, CredHub +2. @default {8080} */
  port?: number;
  /** State directory; a temp dir (removed on close) when absent. */
  dir?: string;
  /** Instance certificate validity. @default {24h} */
  validityMs?: number;
  /** Log level of the components. @default {"warn"} */
  logLevel?: LogLevel;
  /** Route heartbeat interval. @default {"20s"} */
  registerInterval?: string;
}

/** One instance as described in `dev.json`. */
export interface DevInstanceInfo {
  app: string;
  app_guid: string;
  instance_id: string;
  index: number;
  app_port: number;
  tls_port: number;
  admin: string;
  dir: string;
}

/** The content of `DIR/dev.json`. */
export interface DevJson {
  dir: string;
  router: {
    http: string;
    api: string;
    token_file: string;
    client_cert: string;
    client_key: string;
    routes_url: string;
    access_log: string;
  };
  ca: { url: string; bundle: string; dir: string; token_file: string };
  credhub: {
    url: string;
    /** The broker's token (scope credhub.write). */
    token_file: string;
    /** hello's binding credential, readable by `mtls-app:<hello guid>`. */
    credential: string;
    /** The VCAP_SERVICES every demo instance starts with. */
    vcap_services: string;
  };
  instances: DevInstanceInfo[];
}

/** A running `sigil dev`. */
export interface RunningDev {
  info: DevJson;
  router: RunningRouter;
  proxies: RunningProxy[];
  rotator: RunningRotator;
  ca: RunningCa;
  credhub: DevCredhub;
  /** Unregisters, drains and stops everything; removes the temp dir. */
  close(): Promise<void>;
}

const DEV_TRUST_DOMAIN = "sigil.dev";
const ROUTER_SAN = "router.sigil.dev";
const SPACE = "dev-space";
const ORG = "dev-org";

async function withTimeout<T>(
  p: Promise<T>,
  ms: number,
  message: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts the whole system. Every listener is on 127.0.0.1.
 *
 * @example
 * ```ts ignore
 * const dev = await startDev({ port: 0 });
 * console.log(dev.info.router.http);
 * await dev.close();
 * ```
 */
export async function startDev(options: DevOptions = {}): Promise<RunningDev> {
  const port = options.port ?? 8080;
  const validityMs = options.validityMs ?? 86_400_000;
  const temp = options.dir === undefined;
  const dir = options.dir ?? await Deno.makeTempDir({ prefix: "sigil-dev-" });
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const logger = createLogger("dev", { level: options.logLevel ?? "warn" });
  const stack: Array<() => Promise<void>> = [];
  const closeAll = async () => {
    for (const stop of stack.reverse()) {
      try {
        await stop();
      } catch (err) {
        logger.warn("dev-stop-failed", { reason: (err as Error).message });
      }
    }
    stack.length = 0;
    if (temp) await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    // CA: reuse the one in --dir, or create a throw-away one.
    const caDir = join(dir, "ca");
    const store = await exists(join(caDir, CA_FILES.meta))
      ? await loadCa(caDir)
      : await initCa(caDir, { trustDomain: DEV_TRUST_DOMAIN });
    const bundle = join(caDir, CA_FILES.rootCert);
    const ca = await startCa(
      CaSection.parse({
        dir: caDir,
        listen: "127.0.0.1:0",
        default_validity: formatDuration(validityMs),
        max_validity: formatDuration(Math.max(validityMs, 7 * 86_400_000)),
        backdate: "1m",
      }),
      { logger: logger.child("ca") },
    );
    stack.push(() => ca.close());

    // Tokens: one for the rotator (cert.issue), one for the proxies (routes.write).
    await Deno.mkdir(join(dir, "tokens"), { recursive: true, mode: 0o700 });
    const cellToken = join(dir, "tokens", "cell.jwt");
    const routesToken = join(dir, "tokens", "routes.jwt");
    await writeSecretFile(
      cellToken,
      await mintToken(store, {
        subject: "dev-cell",
        scopes: ["cert.issue"],
        apps: ["*"],
        spaces: [SPACE],
        orgs: [ORG],
        cidrs: ["127.0.0.0/8"],
      }),
    );
    await writeSecretFile(
      routesToken,
      await mintToken(store, {
        subject: "dev-proxies",
        scopes: ["routes.write"],
        apps: [],
        spaces: [],
        orgs: [],
        cidrs: [],
      }),
    );

    // The router's client certificate for strict mTLS to the proxies.
    await Deno.mkdir(join(dir, "router"), { recursive: true, mode: 0o700 });
    const clientCert = join(dir, "router", "client.crt");
    const clientKey = join(dir, "router", "client.key");
    const routerKeys = await generateKeyPair();
    // A router identity (URI SAN spiffe://<td>/router/<name>), as
    // `sigil rotator` keeps one for a real router.
    const routerCert = await issueRouterCertificate(
      routerKeys.publicKey,
      { name: ROUTER_SAN, dnsNames: [], ips: [] },
      store.issuer,
      {
        trustDomain: store.meta.trust_domain,
        validityMs: 30 * 86_400_000,
      },
    );
    await Deno.writeTextFile(
      clientCert,
      routerCert.pem + store.intermediatePem,
    );
    await writeSecretFile(clientKey, await exportPrivateKeyPem(routerKeys));

    // Demo app: three instances of "hello", one of "other". Every instance
    // is bound to hello's database; CredHub lets only hello's instances read it.
    const guids = { hello: crypto.randomUUID(), other: crypto.randomUUID() };
    // Set once CredHub runs; the demo apps start before it.
    const started: { credhub?: DevCredhub } = {};
    const credDir = (d: { instanceId: string }) =>
      join(dir, "instances", d.instanceId);
    const instance = (app: "hello" | "other", index: number): DemoInstance => {
      const instanceId = crypto.randomUUID();
      return {
        app,
        appGuid: guids[app],
        instanceId,
        index,
        credentials: demoCredentials(
          () => started.credhub,
          bundle,
          credDir({ instanceId }),
          app,
          logger.child("launch"),
        ),
      };
    };
    const demo: DemoInstance[] = [
      ...[0, 1, 2].map((index) => instance("hello", index)),
      instance("other", 0),
    ];
    const apps: RunningDemoApp[] = demo.map((d) => startDemoApp(d));
    stack.push(async () => {
      await Promise.all(apps.map((a) => a.close()));
    });

    // Rotator: keeps every instance's credentials fresh.
    await Deno.mkdir(join(dir, "instances"), { recursive: true, mode: 0o700 });
    const rotator = await startRotator(
      RotatorSection.parse({
        ca_url: ca.url,
        ca_bundle: bundle,
        token_file: cellToken,
        validity: formatDuration(validityMs),
        min_interval: validityMs < 600_000 ? "5s" : "30s",
        instances: demo.map((d) => ({
          instance_id: d.instanceId,
          app: d.appGuid,
          space: SPACE,
          org: ORG,
          ips: ["127.0.0.1"],
          dir: credDir(d),
        })),
      }),
      { logger: logger.child("rotator") },
    );
    stack.push(() => rotator.close());
    await withTimeout(
      rotator.ready(),
      30_000,
      "Cannot start sigil dev: the rotator got no certificates from the CA within 30 s (run with --verbose to see why)",
    );

    // CredHub, with the broker's binding for hello stored.
    const credhub = started.credhub = await startDevCredhub({
      dir,
      ca: store,
      caUrl: ca.url,
      bundle,
      port: port === 0 ? 0 : port + 2,
      appGuid: guids.hello,
      logger: logger.child("credhub"),
    });
    stack.push(() => credhub.ch.close());

    // Router: plain HTTP for clients, the registration API, strict mTLS to backends.
    const router = await startRouter(
      RouterSection.parse({
        listen: `127.0.0.1:${port}`,
        api: {
          listen: `127.0.0.1:${port === 0 ? 0 : port + 1}`,
          jwks_url: `${ca.url}/v1/jwks.json`,
          ca_bundle: bundle,
        },
        backends: {
          mode: "mtls",
          ca: bundle,
          cert: clientCert,
          key: clientKey,
        },
        access_log: { enabled: true, file: join(dir, "router", "access.log") },
        drain_timeout: "2s",
        log_level: options.logLevel ?? "warn",
      }),
      { logger: logger.child("router") },
    );
    stack.push(() => router.drain(2000, 0));

    // One proxy per instance, strict mTLS: only the router's certificate gets in.
    const proxies: RunningProxy[] = [];
    stack.push(async () => {
      await Promise.all(proxies.map((p) => p.close({ drainTimeoutMs: 2000 })));
    });
    for (const [i, d] of demo.entries()) {
      proxies.push(
        await startProxy(
          ProxySection.parse({
            admin_listen: "127.0.0.1:0",
            drain_timeout: "2s",
            instances: [{
              id: d.instanceId,
              credentials_dir: credDir(d),
              mode: "mtls",
              trusted_client_cas: [bundle],
              allowed_client_sans: [
                routerSpiffeId(store.meta.trust_domain, ROUTER_SAN),
              ],
              listeners: [{
                name: "http",
                listen: "127.0.0.1:0",
                app: `127.0.0.1:${apps[i]!.port}`,
              }],
              register: {
                routes: [`${d.app}.localhost`],
                host: "127.0.0.1",
                app: d.appGuid,
                instance_index: String(d.index),
                interval: options.registerInterval ?? "20s",
                routers: [{
                  url: `http://127.0.0.1:${router.apiPort}`,
                  token_file: routesToken,
                }],
              },
            }],
          }),
          { logger: logger.child("proxy") },
        ),
      );
    }

    // Wait until the router knows every instance.
    const deadline = Date.now() + 15_000;
    const count = (host: string) =>
      router.registry.lookup(host, "/")?.size ?? 0;
    while (count("hello.localhost") < 3 || count("other.localhost") < 1) {
      if (Date.now() > deadline) {
        throw new Error(
          "Cannot start sigil dev: the proxies did not register with the router within 15 s",
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }

    const info: DevJson = {
      dir,
      router: {
        http: `127.0.0.1:${router.port}`,
        api: `127.0.0.1:${router.apiPort}`,
        token_file: routesToken,
        client_cert: clientCert,
        client_key: clientKey,
        routes_url: `http://127.0.0.1:${router.apiPort}/routes`,
        access_log: join(dir, "router", "access.log"),
      },
      ca: { url: ca.url, bundle, dir: caDir, token_file: cellToken },
      credhub: {
        url: credhub.url,
        token_file: credhub.tokenFile,
        credential: credhub.credential,
        vcap_services: credhub.vcapServices,
      },
      instances: demo.map((d, i) => ({
        app: d.app,
        app_guid: d.appGuid,
        instance_id: d.instanceId,
        index: d.index,
        app_port: apps[i]!.port,
        tls_port: proxies[i]!.port(d.instanceId),
        admin: `127.0.0.1:${proxies[i]!.adminPort}`,
        dir: credDir(d),
      })),
    };
    await Deno.writeTextFile(
      join(dir, "dev.json"),
      JSON.stringify(info, null, 2) + "\n",
    );
    let closing: Promise<void> | undefined;
    return {
      info,
      router,
      proxies,
      rotator,
      ca,
      credhub,
      close: () => closing ??= closeAll(),
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
