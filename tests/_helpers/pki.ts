/**
 * Test fixtures: an in-memory root + intermediate CA that issues instance and
 * client certificates, generated at test time (no key material is committed).
 * @module
 */
import {
  createIntermediateCa,
  createRootCa,
  exportPrivateKeyPem,
  generateKeyPair,
  issueInstanceCertificate,
  issueServiceCertificate,
} from "../../lib/pki/mod.ts";
import type { Identity, Issuer, KeyType } from "../../lib/pki/mod.ts";

/** A certificate (leaf first, then the intermediate) with its PKCS#8 key. */
export interface TestCredential {
  certPem: string;
  keyPem: string;
  serial: string;
}

/** Options for a test leaf. */
export interface TestLeafOptions {
  validityMs?: number;
  /** Pretend "now" is this (ms); use a past time to make an expired cert. */
  now?: number;
  keyType?: KeyType;
}

/** A throw-away CA for tests. */
export interface TestPki {
  rootPem: string;
  intermediatePem: string;
  intermediate: Issuer;
  trustDomain: string;
  issueInstance(
    identity: Partial<Identity> & { instanceId: string },
    opts?: TestLeafOptions,
  ): Promise<TestCredential>;
  issueClient(
    opts?: TestLeafOptions & {
      commonName?: string;
      dnsNames?: string[];
      uris?: string[];
      ips?: string[];
    },
  ): Promise<TestCredential>;
  writeInstance(
    dir: string,
    identity: Partial<Identity> & { instanceId: string },
    opts?: TestLeafOptions,
  ): Promise<TestCredential>;
}

/**
 * Creates a root and an intermediate CA in memory.
 *
 * @example
 * ```ts ignore
 * const pki = await createTestPki();
 * const cred = await pki.issueInstance({ instanceId: "i-1" });
 * ```
 */
export async function createTestPki(
  trustDomain = "test.sigil",
): Promise<TestPki> {
  const now = Date.now();
  const rootKeys = await generateKeyPair();
  const root = await createRootCa(rootKeys, {
    commonName: "Sigil Test Root",
    validityMs: 10 * 365 * 86_400_000,
    now: now - 86_400_000 * 30,
  });
  const interKeys = await generateKeyPair();
  const inter = await createIntermediateCa(
    interKeys.publicKey,
    { certPem: root.pem, keys: rootKeys, chainPem: "" },
    {
      commonName: "Sigil Test Intermediate",
      validityMs: 365 * 86_400_000,
      now: now - 86_400_000 * 30,
    },
  );
  const intermediate: Issuer = {
    certPem: inter.pem,
    keys: interKeys,
    chainPem: "",
  };
  const pki: TestPki = {
    rootPem: root.pem,
    intermediatePem: inter.pem,
    intermediate,
    trustDomain,
    async issueInstance(identity, opts = {}) {
      const keys = await generateKeyPair(opts.keyType ?? "ec-p256");
      const id: Identity = {
        instanceId: identity.instanceId,
        app: identity.app ?? "app-1",
        space: identity.space ?? "space-1",
        org: identity.org ?? "org-1",
        ips: identity.ips ?? ["127.0.0.1"],
      };
      const leaf = await issueInstanceCertificate(
        keys.publicKey,
        id,
        intermediate,
        {
          trustDomain,
          validityMs: opts.validityMs ?? 3_600_000,
          now: opts.now,
        },
      );
      return {
        certPem: leaf.pem + inter.pem,
        keyPem: await exportPrivateKeyPem(keys),
        serial: leaf.serial,
      };
    },
    async issueClient(opts = {}) {
      const keys = await generateKeyPair(opts.keyType ?? "ec-p256");
      const leaf = await issueServiceCertificate(keys.publicKey, intermediate, {
        commonName: opts.commonName ?? opts.dnsNames?.[0] ?? "test-client",
        dnsNames: opts.dnsNames,
        uris: opts.uris,
        ips: opts.ips,
        validityMs: opts.validityMs ?? 3_600_000,
        now: opts.now,
      });
      return {
        certPem: leaf.pem + inter.pem,
        keyPem: await exportPrivateKeyPem(keys),
        serial: leaf.serial,
      };
    },
    async writeInstance(dir, identity, opts) {
      const cred = await pki.issueInstance(identity, opts);
      await Deno.mkdir(dir, { recursive: true });
      await Deno.writeTextFile(`${dir}/instance.crt`, cred.certPem, {
        mode: 0o644,
      });
      await Deno.writeTextFile(`${dir}/instance.key`, cred.keyPem, {
        mode: 0o600,
      });
      return cred;
    },
  };
  return pki;
}
