/** `sigil ca ...` and `sigil inspect` subcommands. @module */
import { join } from "node:path";
import type { Command } from "../common/mod.ts";
import { systemdNotifier, writeSecretFile } from "../common/mod.ts";
import { createLogger } from "../observe/mod.ts";
import {
  describeError,
  listFlag,
  parseDuration,
  requireFlag,
  stringFlag,
  UsageError,
  watchSignals,
} from "../common/mod.ts";
import { loadConfig, requireSection } from "../config/mod.ts";
import {
  exportPrivateKeyPem,
  generateKeyPair,
  issueInstanceCertificate,
  parseCertificate,
  validateIdentity,
} from "../pki/mod.ts";
import { KEY_TYPES } from "../pki/mod.ts";
import type { KeyType } from "../pki/mod.ts";
import { CaError } from "./errors.ts";
import { issuedEntry, Ledger } from "./_ledger.ts";
import { cidrMatcher } from "./_policy.ts";
import { startCa } from "./_serve.ts";
import { INSPECT } from "./_inspect.ts";
import { CA_FILES, initCa, loadCa } from "./_store.ts";
import { mintToken, SCOPES } from "../token/mod.ts";
import type { Scope } from "../token/mod.ts";

function durationFlag(
  flags: Record<string, unknown>,
  name: string,
  fallback: string,
): number {
  const v = typeof flags[name] === "string" ? flags[name] as string : fallback;
  let ms: number;
  try {
    ms = parseDuration(v);
  } catch {
    throw new UsageError(
      `Invalid value for "--${name}": "${v}" is not a duration like "24h"`,
    );
  }
  if (ms <= 0) {
    throw new UsageError(
      `Invalid value for "--${name}": "${v}" must be longer than zero`,
    );
  }
  return ms;
}

const KEY_TYPE_HELP = `${KEY_TYPES[0]} (default), ${
  KEY_TYPES.slice(1).join(", ")
}`;

function keyTypeFlag(flags: Record<string, unknown>): KeyType {
  const v = (flags["key-type"] as string | undefined) ?? "ec-p256";
  if (!(KEY_TYPES as readonly string[]).includes(v)) {
    throw new UsageError(
      `Invalid value for "--key-type": "${v}"; use one of ${
        KEY_TYPES.join(", ")
      }`,
    );
  }
  return v as KeyType;
}

const init: Command = {
  name: "ca init",
  summary: "Create a CA: root, intermediate and token key in a new directory",
  flags: {
    dir: {
      type: "string",
      arg: "DIR",
      description: "CA directory to create (must not hold a CA)",
    },
    "trust-domain": {
      type: "string",
      arg: "TD",
      description: 'SPIFFE trust domain (default "sigil.internal")',
    },
    "key-type": {
      type: "string",
      arg: "TYPE",
      description: KEY_TYPE_HELP,
    },
    "root-validity": {
      type: "string",
      arg: "DUR",
      description: 'Root lifetime (default "87600h", 10 years)',
    },
    "intermediate-validity": {
      type: "string",
      arg: "DUR",
      description: 'Intermediate lifetime (default "8760h", 1 year)',
    },
  },
  async run(flags) {
    const dir = requireFlag(flags, "dir");
    const rootValidityMs = durationFlag(flags, "root-validity", "87600h");
    const intermediateValidityMs = durationFlag(
      flags,
      "intermediate-validity",
      "8760h",
    );
    if (intermediateValidityMs > rootValidityMs) {
      throw new UsageError(
        'Invalid value for "--intermediate-validity": it must not be longer than --root-validity',
      );
    }
    const ca = await initCa(dir, {
      trustDomain: stringFlag(flags, "trust-domain"),
      keyType: keyTypeFlag(flags),
      rootValidityMs,
      intermediateValidityMs,
    }).catch((err) => {
      // A --dir that already holds a CA is a usage error: nothing was changed.
      throw err instanceof CaError && err.code === "ERR_CA_EXISTS"
        ? new UsageError(err.message, { cause: err })
        : err;
    });
    const root = parseCertificate(ca.rootPem);
    const inter = parseCertificate(ca.intermediatePem);
    console.log(
      `Created CA in ${dir} (trust domain "${ca.meta.trust_domain}", ${ca.meta.key_type})`,
    );
    console.log(
      `  root.crt          serial ${root.serial}, expires ${root.notAfter.toISOString()}`,
    );
    console.log(
      `  intermediate.crt  serial ${inter.serial}, expires ${inter.notAfter.toISOString()}`,
    );
    console.log(`  root.key, intermediate.key, token.key (mode 0600)`);
    console.log(
      `Next: 'sigil ca token --dir ${dir} --subject cell-1 --app "*" --space "*" --org "*" --cidr 10.0.0.0/8'`,
    );
    return 0;
  },
};

const issue: Command = {
  name: "ca issue",
  summary:
    "Issue an instance certificate offline into OUTDIR/instance.{crt,key}",
  flags: {
    dir: { type: "string", arg: "DIR", description: "CA directory" },
    instance: {
      type: "string",
      arg: "ID",
      description: "Instance id (CN and DNS SAN)",
    },
    app: { type: "string", arg: "GUID", description: "App id" },
    space: { type: "string", arg: "GUID", description: "Space id" },
    org: { type: "string", arg: "GUID", description: "Org id" },
    ip: {
      type: "string",
      multiple: true,
      arg: "IP",
      description: "Instance address (IP SAN)",
    },
    validity: {
      type: "string",
      arg: "DUR",
      description: 'Lifetime (default "24h")',
    },
    "key-type": {
      type: "string",
      arg: "TYPE",
      description: KEY_TYPE_HELP,
    },
    out: {
      type: "string",
      arg: "OUTDIR",
      description: "Where to write instance.crt and instance.key",
    },
  },
  async run(flags) {
    const dir = requireFlag(flags, "dir");
    const out = requireFlag(flags, "out");
    const fields = {
      instanceId: requireFlag(flags, "instance"),
      app: requireFlag(flags, "app"),
      space: requireFlag(flags, "space"),
      org: requireFlag(flags, "org"),
      ips: listFlag(flags, "ip"),
    };
    let identity;
    try {
      identity = validateIdentity(fields);
    } catch (err) {
      // --instance, --app, --space, --org, --ip: bad flag values (exit 2).
      throw new UsageError(
        `Invalid flags for "sigil ca issue": ${describeError(err)}`,
        { cause: err },
      );
    }
    const validityMs = durationFlag(flags, "validity", "24h");
    const ca = await loadCa(dir);
    const ledger = Ledger.open(join(dir, CA_FILES.ledger));
    try {
      const keys = await generateKeyPair(keyTypeFlag(flags));
      const leaf = await issueInstanceCertificate(
        keys.publicKey,
        identity,
        ca.issuer,
        {
          trustDomain: ca.meta.trust_domain,
          validityMs,
        },
      );
      // Files first, ledger last: the ledger records an issuance only once the
      // certificate exists where the operator asked for it.
      const files = [join(out, "instance.key"), join(out, "instance.crt")];
      try {
        await Deno.mkdir(out, { recursive: true, mode: 0o700 });
        await writeSecretFile(files[0]!, await exportPrivateKeyPem(keys));
        await writeSecretFile(files[1]!, leaf.pem + ca.intermediatePem, {
          mode: 0o644,
        });
      } catch (err) {
        await removeQuietly(files);
        throw new CaError(
          "ERR_CA_OUT_UNWRITABLE",
          `Cannot issue certificate for "${identity.instanceId}": cannot write "--out" directory "${out}": ${
            fileReason(err)
          }; nothing was issued`,
          { cause: err },
        );
      }
      try {
        ledger.record(issuedEntry(identity, leaf, "offline"));
      } catch (err) {
        await removeQuietly(files);
        throw err;
      }
      console.log(
        `Issued ${identity.instanceId}: serial ${leaf.serial}, expires ${leaf.notAfter.toISOString()}${
          leaf.clamped ? " (clamped to the intermediate's expiry)" : ""
        }`,
      );
      console.log(
        `  ${join(out, "instance.crt")}\n  ${join(out, "instance.key")}`,
      );
    } finally {
      ledger.close();
    }
    return 0;
  },
};

async function removeQuietly(files: string[]): Promise<void> {
  for (const f of files) await Deno.remove(f).catch(() => {});
}

function fileReason(err: unknown): string {
  if (err instanceof Deno.errors.PermissionDenied) {
    return "permission denied (check that this user may write there)";
  }
  if (err instanceof Deno.errors.NotADirectory) return "not a directory";
  return err instanceof Error ? err.message : String(err);
}

const token: Command = {
  name: "ca token",
  summary:
    "Print a JWT that lets a cell obtain certificates (or a proxy register routes)",
  flags: {
    dir: { type: "string", arg: "DIR", description: "CA directory" },
    subject: {
      type: "string",
      arg: "NAME",
      description: "Who holds the token (e.g. the cell name)",
    },
    app: {
      type: "string",
      multiple: true,
      arg: "GLOB",
      description: "Apps allowed ('*' for all)",
    },
    space: {
      type: "string",
      multiple: true,
      arg: "GLOB",
      description: "Spaces allowed",
    },
    org: {
      type: "string",
      multiple: true,
      arg: "GLOB",
      description: "Orgs allowed",
    },
    cidr: {
      type: "string",
      multiple: true,
      arg: "CIDR",
      description: "Address ranges allowed in IP SANs",
    },
    router: {
      type: "string",
      multiple: true,
      arg: "GLOB",
      description:
        "Router names (and their DNS names) a cert.router token may certify",
    },
    scope: {
      type: "string",
      multiple: true,
      arg: "SCOPE",
      description:
        `cert.issue (default), cert.router, routes.write, routes.read, credhub.read or credhub.write`,
    },
    ttl: {
      type: "string",
      arg: "DUR",
      description: 'Token lifetime (default "720h")',
    },
  },
  async run(flags) {
    const dir = requireFlag(flags, "dir");
    const subject = requireFlag(flags, "subject");
    const scopes = listFlag(flags, "scope");
    for (const s of scopes) {
      if (!(SCOPES as readonly string[]).includes(s)) {
        throw new UsageError(
          `Invalid value for "--scope": "${s}"; use ${SCOPES.join(" or ")}`,
        );
      }
    }
    const grant = {
      subject,
      scopes: (scopes.length ? scopes : ["cert.issue"]) as Scope[],
      apps: listFlag(flags, "app"),
      spaces: listFlag(flags, "space"),
      orgs: listFlag(flags, "org"),
      cidrs: listFlag(flags, "cidr"),
      routers: listFlag(flags, "router"),
    };
    if (grant.scopes.includes("cert.router")) {
      if (grant.scopes.includes("cert.issue")) {
        throw new UsageError(
          "A token cannot carry both cert.issue and cert.router: mint one token for the cells and another for the routers",
        );
      }
      if (!grant.routers.length) {
        throw new UsageError(
          'A cert.router token needs --router (repeatable globs, e.g. "router-*")',
        );
      }
    } else if (grant.routers.length) {
      throw new UsageError('"--router" goes with "--scope cert.router"');
    }
    if (
      grant.scopes.includes("cert.issue") &&
      (!grant.apps.length || !grant.spaces.length || !grant.orgs.length)
    ) {
      throw new UsageError(
        'A cert.issue token needs --app, --space and --org (repeatable globs; "*" allows all)',
      );
    }
    try {
      cidrMatcher(grant.cidrs);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const ca = await loadCa(dir);
    console.log(
      await mintToken(ca, grant, { ttlMs: durationFlag(flags, "ttl", "720h") }),
    );
    return 0;
  },
};

const serve: Command = {
  name: "ca serve",
  summary:
    "Serve the signing API over HTTPS (POST /v1/sign, /v1/bundle.pem, /v1/jwks.json)",
  flags: {
    config: {
      type: "string",
      arg: "FILE",
      description: "Config file with a ca section",
    },
  },
  async run(flags) {
    const config = requireSection(
      await loadConfig(requireFlag(flags, "config")),
      "ca",
      "sigil ca serve",
    );
    const signals = watchSignals();
    try {
      const logger = createLogger("ca", { level: config.log_level });
      const ca = await startCa(config, { logger });
      const notify = systemdNotifier({ logger });
      await notify.ready();
      // `systemctl reload` sends SIGHUP; without a listener it would end the
      // process. The CA reads its keys and config once, at start.
      signals.onReload(() =>
        logger.warn("reload-not-supported", {
          signal: "SIGHUP",
          hint:
            "sigil ca serve reads its config and keys at start: restart it (systemctl restart sigil-ca) to apply changes",
        })
      );
      void signals.stopped.then(async () => {
        await notify.stopping();
        await ca.close();
      });
      await ca.finished;
      await notify.close();
      return 0;
    } finally {
      signals.release();
    }
  },
};

const ledger: Command = {
  name: "ca ledger",
  summary: "List recorded issuances and refusals",
  flags: {
    dir: { type: "string", arg: "DIR", description: "CA directory" },
    instance: { type: "string", arg: "ID", description: "Only this instance" },
    json: { type: "boolean", description: "One JSON object per line" },
  },
  run(flags) {
    const dir = requireFlag(flags, "dir");
    const path = join(dir, CA_FILES.ledger);
    try {
      Deno.statSync(path);
    } catch {
      throw new CaError(
        "ERR_CA_LEDGER",
        `Cannot read ledger "${path}": file not found (nothing issued yet?)`,
      );
    }
    const l = Ledger.open(path, { readOnly: true });
    try {
      const rows = l.list({ instanceId: stringFlag(flags, "instance") });
      if (flags.json) {
        for (const r of rows) {
          console.log(JSON.stringify({ ...r, ips: JSON.parse(r.ips) }));
        }
      } else {
        console.log(
          [
            "TIME",
            "RESULT",
            "SERIAL",
            "INSTANCE",
            "APP",
            "NOT_AFTER",
            "CALLER",
            "REASON",
          ].join("\t"),
        );
        for (const r of rows) {
          console.log(
            [
              r.time,
              r.result,
              r.serial ?? "-",
              r.instance_id ?? "-",
              r.app ?? "-",
              r.not_after ?? "-",
              r.caller ?? "-",
              r.reason ?? "-",
            ]
              .join("\t"),
          );
        }
      }
    } finally {
      l.close();
    }
    return Promise.resolve(0);
  },
};

/** Commands of the CA role. */
export const CA_COMMANDS: Command[] = [
  init,
  issue,
  token,
  serve,
  ledger,
  INSPECT,
];
