/** An in-process CA on 127.0.0.1 for the integration tests of issue 15. */
import { join } from "node:path";
import { initCa, startCa } from "../../lib/ca/mod.ts";
import type { RunningCa } from "../../lib/ca/mod.ts";
import { CaSection } from "../../lib/config/mod.ts";
import { createLogger } from "../../lib/observe/mod.ts";

/** Inits a CA under `dir/ca`, serves it, writes its root to `dir/root.crt`. */
export async function startTestCa(
  dir: string,
  options: { trustDomain?: string; sink?: (line: string) => void } = {},
) {
  const store = await initCa(join(dir, "ca"), {
    trustDomain: options.trustDomain,
  });
  const ca: RunningCa = await startCa(
    CaSection.parse({
      dir: join(dir, "ca"),
      listen: "127.0.0.1:0",
      backdate: "0s",
    }),
    { logger: createLogger("ca", { sink: options.sink ?? (() => {}) }) },
  );
  const bundle = join(dir, "root.crt");
  await Deno.writeTextFile(bundle, store.rootPem);
  return { store, ca, bundle };
}

/** Writes a token file with mode 0600 and returns its path. */
export async function writeToken(path: string, token: string): Promise<string> {
  await Deno.writeTextFile(path, token + "\n", { mode: 0o600 });
  return path;
}

/** Polls an async condition; fails after `ms` of real time. */
export async function eventually(
  fn: () => Promise<boolean> | boolean,
  what: string,
  ms = 20_000,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The grant of a cell token for any app, space and org. */
export function cellGrant(subject: string, cidrs = ["0.0.0.0/0"]) {
  return {
    subject,
    scopes: ["cert.issue" as const],
    apps: ["*"],
    spaces: ["*"],
    orgs: ["*"],
    cidrs,
  };
}

/** A rotator section with one instance "inst-1" (127.0.0.1) under `dir`. */
export function oneInstanceRotator(
  ca: { url: string },
  files: { bundle: string; tokenFile: string; dir: string },
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    ca_url: ca.url,
    ca_bundle: files.bundle,
    token_file: files.tokenFile,
    validity: "2m",
    metrics_listen: "127.0.0.1:0",
    instances: [{
      instance_id: "inst-1",
      app: "a",
      space: "s",
      org: "o",
      ips: ["127.0.0.1"],
      dir: join(files.dir, "inst-1"),
    }],
    ...extra,
  };
}
