/** `sigil ca ...` and `sigil inspect` subcommands. @module */
import { join, resolve } from "node:path";
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
import { openCaStores } from "./_ledger_pg.ts";
import { cidrMatcher } from "./_policy.ts";
import { REVOCATION_KINDS, SqliteRevocations } from "./_revocations.ts";
import type { Revocation, RevocationKind } from "./_revocations.ts";
import { startCa } from "./_serve.ts";
import { INSPECT } from "./_inspect.ts";
import {
  CA_FILES,
  importCa,
  initCa,
  loadCa,
  renewIntermediate,
} from "./_store.ts";
import type { CaStore } from "./_store.ts";
import { decodeJwt } from "jose";
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
    "root-key-out": {
      type: "string",
      arg: "PATH",
      description:
        "Write the root key to PATH (e.g. removable media), not into DIR: an offline root",
    },
    "offline-root": {
      type: "boolean",
      description:
        "Write root.key into DIR and print where to move it; serve and issue never need it",
    },
  },
  async run(flags) {
    const dir = requireFlag(flags, "dir");
    const rootKeyOut = stringFlag(flags, "root-key-out");
    if (rootKeyOut !== undefined && flags["offline-root"]) {
      throw new UsageError(
        'Use either "--root-key-out PATH" or "--offline-root", not both',
      );
    }
    if (
      rootKeyOut !== undefined &&
      resolve(rootKeyOut).startsWith(resolve(dir) + "/")
    ) {
      throw new UsageError(
        `Invalid value for "--root-key-out": "${rootKeyOut}" is inside the CA directory; choose a path outside "${dir}"`,
      );
    }
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
      rootKeyOut,
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
    if (rootKeyOut !== undefined) {
      console.log(`  intermediate.key, token.key (mode 0600)`);
      console.log(
        `  root key written to ${rootKeyOut} (mode 0600): keep it offline; 'sigil ca serve' and 'sigil ca issue' do not need it, 'sigil ca intermediate renew --root-key ${rootKeyOut}' does`,
      );
    } else {
      console.log(`  root.key, intermediate.key, token.key (mode 0600)`);
    }
    if (flags["offline-root"]) {
      const key = join(dir, CA_FILES.rootKey);
      console.log(
        `Offline root: move ${key} to offline storage now (e.g. 'mv ${key} /media/offline/root.key');\n  'sigil ca serve' and 'sigil ca issue' need only intermediate.key and the certificates;\n  bring it back only to run 'sigil ca intermediate renew --dir ${dir} --root-key /media/offline/root.key'`,
      );
    }
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
      await refuseRevoked(ledger.path, identity);
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

/** `ca issue` refuses a revoked instance or app, as the CA's API does. */
async function refuseRevoked(
  ledgerPath: string,
  identity: { instanceId: string; app: string },
): Promise<void> {
  const store = SqliteRevocations.open(ledgerPath);
  try {
    const r = await store.identityRevocation(identity.instanceId, identity.app);
    if (r) {
      throw new CaError(
        "ERR_CA_REVOKED",
        `Cannot issue certificate for "${identity.instanceId}": ${r.kind} "${r.value}" is revoked (revoked ${r.time}${
          r.reason ? `: ${r.reason}` : ""
        })`,
      );
    }
  } finally {
    await store.close();
  }
}

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
    const jwt = await mintToken(ca, grant, {
      ttlMs: durationFlag(flags, "ttl", "720h"),
    });
    console.log(jwt);
    // stderr, so `> token.jwt` keeps only the token: what revoking it needs.
    const { jti, exp } = decodeJwt(jwt);
    console.error(
      `Token jti ${jti} for "${subject}", expires ${
        new Date((exp ?? 0) * 1000).toISOString()
      } (revoke: sigil ca revoke --dir ${dir} --token ${jti})`,
    );
    return 0;
  },
};

const serve: Command = {
  name: "ca serve",
  summary:
    "Serve the signing API over HTTPS (POST /v1/sign, /v1/bundle.pem, /v1/jwks.json, /v1/crl.pem)",
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

const revoke: Command = {
  name: "ca revoke",
  summary:
    "Revoke a token (--token JTI | --subject S) or an identity (--instance ID | --app GUID)",
  flags: {
    dir: { type: "string", arg: "DIR", description: "CA directory" },
    config: {
      type: "string",
      arg: "FILE",
      description:
        "Config file with a ca section: revoke in its ca.store (shared by replicas)",
    },
    token: {
      type: "string",
      arg: "JTI",
      description:
        "A token's jti ('sigil ca token' prints it on stderr): /v1/sign refuses it with 401",
    },
    subject: {
      type: "string",
      arg: "NAME",
      description: "Every token minted with --subject NAME (401)",
    },
    instance: {
      type: "string",
      arg: "ID",
      description:
        "An instance: no more certificates (403), its unexpired ones listed in /v1/crl.pem",
    },
    app: {
      type: "string",
      arg: "GUID",
      description: "Every instance of an app, as --instance",
    },
    reason: {
      type: "string",
      arg: "TEXT",
      description: "Why (shown in refusals and 'sigil ca ledger')",
    },
  },
  async run(flags) {
    const file = stringFlag(flags, "config");
    const config = file
      ? requireSection(await loadConfig(file), "ca", "sigil ca revoke")
      : undefined;
    const dir = config?.dir ?? requireFlag(flags, "dir");
    const given = REVOCATION_KINDS.filter((k) => flags[k] !== undefined);
    if (given.length !== 1) {
      throw new UsageError(
        `"sigil ca revoke" needs exactly one of --token, --subject, --instance or --app${
          given.length ? ` (got ${given.map((k) => `--${k}`).join(", ")})` : ""
        }`,
      );
    }
    const kind: RevocationKind = given[0]!;
    const value = requireFlag(flags, kind);
    if (value.trim() === "" || value.length > 256) {
      throw new UsageError(
        `Invalid value for "--${kind}": must be 1-256 characters`,
      );
    }
    await loadCa(dir); // a CA directory, not a typo
    // Opening the ledger creates (or migrates) its tables on a new CA.
    const stores = await openCaStores(dir, config?.store);
    const store = stores.revocations;
    try {
      const { added, revocation } = await store.add({
        kind,
        value,
        reason: stringFlag(flags, "reason")?.slice(0, 500) ?? null,
      });
      console.log(
        added
          ? `Revoked ${kind} "${value}" at ${revocation.time}`
          : `Already revoked: ${kind} "${value}" since ${revocation.time}`,
      );
      if (kind === "instance" || kind === "app") {
        const certs = (await store.revokedCertificates(new Date())).filter(
          (c) => c.kind === kind && c.value === value,
        );
        console.log(
          `  /v1/sign refuses it from now on; ${certs.length} unexpired certificate(s) in /v1/crl.pem${
            certs.length ? `: ${certs.map((c) => c.serial).join(", ")}` : ""
          }`,
        );
        console.log(
          "  proxies and routers with a crl setting refuse them after their next refresh",
        );
      } else {
        console.log("  /v1/sign refuses it from now on (401 token revoked)");
      }
    } finally {
      await stores.close();
    }
    return 0;
  },
};

/** A revocation as a ledger line. */
function revocationRow(r: Revocation): string[] {
  const instance = r.kind === "instance" ? r.value : "-";
  const app = r.kind === "app" ? r.value : "-";
  const caller = r.kind === "subject" ? r.value : "-";
  const what = r.kind === "token" ? `token jti ${r.value}` : r.kind;
  return [
    r.time,
    "revoked",
    "-",
    instance,
    app,
    "-",
    caller,
    `${what}${r.reason ? `: ${r.reason}` : ""}`,
  ];
}

const ledger: Command = {
  name: "ca ledger",
  summary: "List recorded issuances and refusals, then revocations",
  flags: {
    dir: { type: "string", arg: "DIR", description: "CA directory" },
    config: {
      type: "string",
      arg: "FILE",
      description: "Config file with a ca section (reads ca.store)",
    },
    instance: { type: "string", arg: "ID", description: "Only this instance" },
    json: { type: "boolean", description: "One JSON object per line" },
  },
  async run(flags) {
    const file = stringFlag(flags, "config");
    const config = file
      ? requireSection(await loadConfig(file), "ca", "sigil ca ledger")
      : undefined;
    const dir = config?.dir ?? requireFlag(flags, "dir");
    const where = config?.store;
    if (where?.kind !== "postgres") {
      const path = where?.path ?? join(dir, CA_FILES.ledger);
      try {
        Deno.statSync(path);
      } catch {
        throw new CaError(
          "ERR_CA_LEDGER",
          `Cannot read ledger "${path}": file not found (nothing issued yet?)`,
        );
      }
    }
    const stores = await openCaStores(dir, where, { readOnly: true });
    const { ledger: l, revocations: store } = stores;
    try {
      const instance = stringFlag(flags, "instance");
      const rows = await l.list({ instanceId: instance });
      const revocations = (await store.list()).filter((r) =>
        instance === undefined ||
        (r.kind === "instance" && r.value === instance)
      );
      if (flags.json) {
        for (const r of rows) {
          console.log(JSON.stringify({ ...r, ips: JSON.parse(r.ips) }));
        }
        for (const r of revocations) {
          console.log(JSON.stringify({ result: "revoked", ...r }));
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
        for (const r of revocations) {
          console.log(revocationRow(r).join("\t"));
        }
      }
    } finally {
      await stores.close();
    }
    return 0;
  },
};

async function readInput(flag: string, path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    throw new UsageError(
      `Cannot read "--${flag}" file "${path}": ${fileReason(err)}`,
      { cause: err },
    );
  }
}

function describeCa(ca: CaStore): void {
  const root = parseCertificate(ca.rootPem);
  const inter = parseCertificate(ca.intermediatePem);
  console.log(
    `  root.crt          serial ${root.serial}, expires ${root.notAfter.toISOString()}${
      ca.rootKeyOnline ? "" : " (root key offline)"
    }`,
  );
  console.log(
    `  intermediate.crt  serial ${inter.serial}, expires ${inter.notAfter.toISOString()} (${ca.issuer.keys.type})`,
  );
  for (const p of ca.previousIntermediates) {
    console.log(
      `  intermediate-${p.serial}.crt  previous, served until ${p.notAfter.toISOString()}`,
    );
  }
}

const renew: Command = {
  name: "ca intermediate renew",
  summary:
    "Replace the intermediate with a new one signed by the root (the old one stays served until it expires)",
  flags: {
    dir: { type: "string", arg: "DIR", description: "CA directory" },
    "root-key": {
      type: "string",
      arg: "PATH",
      description:
        "The root's private key (default DIR/root.key; an offline root's key from its media)",
    },
    validity: {
      type: "string",
      arg: "DUR",
      description:
        'Lifetime of the new intermediate (default "8760h"; cut to the root\'s expiry)',
    },
    "key-type": {
      type: "string",
      arg: "TYPE",
      description:
        "Key type of the new intermediate (default: the current one's)",
    },
  },
  async run(flags) {
    const dir = requireFlag(flags, "dir");
    const keyPath = stringFlag(flags, "root-key") ??
      join(dir, CA_FILES.rootKey);
    const validityMs = durationFlag(flags, "validity", "8760h");
    const keyType = flags["key-type"] === undefined
      ? undefined
      : keyTypeFlag(flags);
    let rootKeyPem: string;
    try {
      rootKeyPem = await Deno.readTextFile(keyPath);
    } catch (err) {
      throw new UsageError(
        `Cannot read the root key "${keyPath}": ${
          fileReason(err)
        }; pass the offline root key with "--root-key PATH"`,
        { cause: err },
      );
    }
    const r = await renewIntermediate(dir, {
      rootKeyPem,
      rootKeyLabel: `the root key "${keyPath}"`,
      validityMs,
      keyType,
    });
    console.log(`Renewed the intermediate of ${dir}:`);
    describeCa(r.store);
    for (const f of r.removed) console.log(`  removed expired ${f}`);
    console.log(
      `Next: restart 'sigil ca serve' (e.g. 'systemctl restart sigil-ca'): new leaves come from the new intermediate; leaves of the previous one stay valid until they expire`,
    );
    if (stringFlag(flags, "root-key") !== undefined) {
      console.log(`Move ${keyPath} back to offline storage.`);
    }
    return 0;
  },
};

const importCmd: Command = {
  name: "ca import",
  summary:
    "Create a CA directory from an existing root and/or intermediate (PEM; PKCS#1, PKCS#8 or SEC1 keys)",
  flags: {
    dir: {
      type: "string",
      arg: "DIR",
      description: "CA directory to create (must not hold a CA)",
    },
    "root-cert": {
      type: "string",
      arg: "FILE",
      description: "Root CA certificate (self-signed), required",
    },
    "root-key": {
      type: "string",
      arg: "FILE",
      description:
        "Root key; without --intermediate-cert an intermediate is created under the root",
    },
    "intermediate-cert": {
      type: "string",
      arg: "FILE",
      description: "Intermediate CA certificate signed by the root",
    },
    "intermediate-key": {
      type: "string",
      arg: "FILE",
      description: "The intermediate's key (with --intermediate-cert)",
    },
    "trust-domain": {
      type: "string",
      arg: "TD",
      description: 'SPIFFE trust domain (default "sigil.internal")',
    },
    "key-type": {
      type: "string",
      arg: "TYPE",
      description: "Key type of a created intermediate (default: the root's)",
    },
    "intermediate-validity": {
      type: "string",
      arg: "DUR",
      description: 'Lifetime of a created intermediate (default "8760h")',
    },
  },
  async run(flags) {
    const dir = requireFlag(flags, "dir");
    const files: Record<string, string | undefined> = {};
    for (
      const f of [
        "root-cert",
        "root-key",
        "intermediate-cert",
        "intermediate-key",
      ]
    ) {
      files[f] = stringFlag(flags, f);
    }
    if (!files["root-cert"]) {
      throw new UsageError(
        'Missing required flag "--root-cert" (the root CA certificate that trust bundles will hold)',
      );
    }
    if (!files["root-key"] && !files["intermediate-cert"]) {
      throw new UsageError(
        'Give "--root-key" (an intermediate is then created) or "--intermediate-cert" with "--intermediate-key"',
      );
    }
    if (!files["intermediate-cert"] !== !files["intermediate-key"]) {
      throw new UsageError(
        '"--intermediate-cert" and "--intermediate-key" go together',
      );
    }
    const text: Record<string, string | undefined> = {};
    for (const [f, path] of Object.entries(files)) {
      if (path) text[f] = await readInput(f, path);
    }
    const ca = await importCa(dir, {
      rootCertPem: text["root-cert"]!,
      rootKeyPem: text["root-key"],
      intermediateCertPem: text["intermediate-cert"],
      intermediateKeyPem: text["intermediate-key"],
      labels: {
        rootCert: `root certificate "${files["root-cert"]}"`,
        intermediateCert: `intermediate certificate "${
          files["intermediate-cert"]
        }"`,
      },
      trustDomain: stringFlag(flags, "trust-domain"),
      keyType: flags["key-type"] === undefined ? undefined : keyTypeFlag(flags),
      intermediateValidityMs: durationFlag(
        flags,
        "intermediate-validity",
        "8760h",
      ),
    }).catch((err) => {
      throw err instanceof CaError && err.code === "ERR_CA_EXISTS"
        ? new UsageError(err.message, { cause: err })
        : err;
    });
    console.log(
      `Imported CA into ${dir} (trust domain "${ca.meta.trust_domain}"${
        files["intermediate-cert"]
          ? ""
          : ", intermediate created under the root"
      })`,
    );
    describeCa(ca);
    console.log(
      `Next: 'sigil ca token --dir ${dir} --subject cell-1 --app "*" --space "*" --org "*" --cidr 10.0.0.0/8'`,
    );
    return 0;
  },
};

/** Commands of the CA role. */
export const CA_COMMANDS: Command[] = [
  init,
  importCmd,
  renew,
  issue,
  token,
  serve,
  revoke,
  ledger,
  INSPECT,
];
