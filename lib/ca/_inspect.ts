/** `sigil inspect`: a certificate chain from a file or stdin, PEM or DER. @module */
import type { Command } from "../common/mod.ts";
import { describeError, UsageError } from "../common/mod.ts";
import {
  describeCertificate,
  parseCertificate,
  splitCertificates,
  toPem,
} from "../pki/mod.ts";

/** Reads FILE (or stdin for `-`); the certificates it holds as PEM blocks. */
async function readCertificates(file: string): Promise<string[]> {
  let bytes: Uint8Array;
  try {
    bytes = file === "-"
      ? new Uint8Array(await new Response(Deno.stdin.readable).arrayBuffer())
      : await Deno.readFile(file);
  } catch (err) {
    throw new UsageError(`Cannot read "${file}": ${describeError(err)}`, {
      cause: err,
    });
  }
  const text = new TextDecoder().decode(bytes);
  if (text.includes("-----BEGIN")) {
    const blocks = splitCertificates(text);
    if (blocks.length === 0) {
      throw new UsageError(
        `Cannot inspect "${file}": no 'BEGIN CERTIFICATE' block found (a key or CSR?)`,
      );
    }
    return blocks;
  }
  if (bytes.length === 0) {
    throw new UsageError(`Cannot inspect "${file}": it is empty`);
  }
  return [toPem(bytes, "CERTIFICATE")]; // DER: one certificate
}

function view(pem: string, now: number) {
  const info = parseCertificate(pem);
  const d = describeCertificate(pem);
  const secondsLeft = Math.floor((info.notAfter.getTime() - now) / 1000);
  return {
    serial: info.serial,
    subject: info.subject,
    issuer: info.issuer,
    not_before: info.notBefore.toISOString(),
    not_after: info.notAfter.toISOString(),
    expired: secondsLeft < 0,
    seconds_left: secondsLeft,
    dns_names: info.dnsNames,
    ips: info.ips,
    uris: info.uris,
    fingerprint_sha256: info.fingerprint256,
    is_ca: info.isCa,
    key_algorithm: d.keyAlgorithm,
    signature_algorithm: d.signatureAlgorithm,
    key_usage: d.keyUsage,
    extended_key_usage: d.extendedKeyUsage,
    identity: info.identity
      ? {
        instance_id: info.identity.instanceId,
        app: info.identity.app,
        space: info.identity.space,
        org: info.identity.org,
        ips: info.identity.ips,
        spiffe_id: info.identity.spiffeId ?? null,
      }
      : null,
  };
}

/** `1d 3h 12m` (or `expired 2h 5m ago`). */
function timeLeft(seconds: number): string {
  const s = Math.abs(seconds);
  const parts = [
    [Math.floor(s / 86400), "d"],
    [Math.floor(s % 86400 / 3600), "h"],
    [Math.floor(s % 3600 / 60), "m"],
  ].filter(([n], i, all) => n !== 0 || i === all.length - 1)
    .map(([n, u]) => `${n}${u}`).join(" ");
  return seconds < 0 ? `expired ${parts} ago` : parts;
}

function rows(v: ReturnType<typeof view>): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  if (v.identity) {
    out.push(
      ["Instance", v.identity.instance_id],
      ["App", v.identity.app],
      ["Space", v.identity.space],
      ["Org", v.identity.org],
    );
  }
  out.push(
    ["Serial", v.serial],
    ["Subject", v.subject],
    ["Issuer", v.issuer],
    ["Not before", v.not_before],
    ["Not after", v.not_after + (v.expired ? " (EXPIRED)" : "")],
    ["Time left", timeLeft(v.seconds_left)],
    ["Key", v.key_algorithm],
    ["Signature", v.signature_algorithm],
    ["Key usage", v.key_usage.join(", ") || "-"],
    ["Ext. usage", v.extended_key_usage.join(", ") || "-"],
    ["CA", v.is_ca ? "yes" : "no"],
    ["DNS SANs", v.dns_names.join(", ") || "-"],
    ["IP SANs", v.ips.join(", ") || "-"],
    ["URI SANs", v.uris.join(", ") || "-"],
    ["SHA-256", v.fingerprint_sha256],
  );
  return out;
}

/** `sigil inspect FILE|- [--json]`. */
export const INSPECT: Command = {
  name: "inspect",
  summary:
    "Print identity, validity, algorithms and usages of each certificate in a PEM or DER file (- for stdin)",
  positionals: "FILE|-",
  flags: { json: { type: "boolean", description: "Print JSON" } },
  async run(flags, positionals) {
    const [file, ...extra] = positionals;
    if (!file || extra.length) {
      throw new UsageError("Usage: sigil inspect FILE|- [--json]");
    }
    const now = Date.now();
    const views = (await readCertificates(file)).map((pem, i) => {
      try {
        return view(pem, now);
      } catch (err) {
        throw new UsageError(
          `Cannot inspect "${file}": certificate ${i + 1} does not parse: ${
            describeError(err)
          }`,
          { cause: err },
        );
      }
    });
    const [leaf, ...chain] = views;
    if (flags.json) {
      console.log(JSON.stringify({ file, ...leaf, chain }, null, 2));
      return 0;
    }
    for (const [i, v] of views.entries()) {
      if (views.length > 1) {
        console.log(
          `${i > 0 ? "\n" : ""}Certificate ${i + 1} of ${views.length}`,
        );
      }
      for (const [k, val] of rows(v)) {
        console.log(`${(k + ":").padEnd(12)} ${val}`);
      }
    }
    return 0;
  },
};
