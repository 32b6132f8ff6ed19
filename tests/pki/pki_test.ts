import assert from "node:assert/strict";
import {
  certificateMatchesKey,
  createCsr,
  exportPrivateKeyPem,
  generateKeyPair,
  importPrivateKeyPem,
  issueInstanceCertificate,
  parseCertificate,
  PkiError,
  validateIdentity,
  verifyChain,
  verifyCsr,
} from "../../lib/pki/mod.ts";
import { createTestPki } from "../_helpers/pki.ts";

async function openssl(args: string[], stdin?: string) {
  const cmd = new Deno.Command("openssl", {
    args,
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  });
  const p = cmd.spawn();
  if (stdin) {
    const w = p.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await p.output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

const ID = {
  instanceId: "6a1c2f7e-1b2d-4c3e-9f00-aa11bb22cc33",
  app: "app-guid-1",
  space: "space-guid-2",
  org: "org-guid-3",
  ips: ["10.0.16.5"],
};

Deno.test("issueInstanceCertificate() builds the instance profile that openssl verifies", async () => {
  const pki = await createTestPki("sigil.internal");
  const cred = await pki.issueInstance(ID, { validityMs: 3_600_000 });
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/root.pem`, pki.rootPem);
    await Deno.writeTextFile(`${dir}/inter.pem`, pki.intermediatePem);
    await Deno.writeTextFile(
      `${dir}/leaf.pem`,
      cred.certPem.split("-----END CERTIFICATE-----")[0] +
        "-----END CERTIFICATE-----\n",
    );
    const v = await openssl([
      "verify",
      "-CAfile",
      `${dir}/root.pem`,
      "-untrusted",
      `${dir}/inter.pem`,
      "-purpose",
      "sslserver",
      `${dir}/leaf.pem`,
    ]);
    assert.equal(v.code, 0, v.stderr);
    const c = await openssl([
      "verify",
      "-CAfile",
      `${dir}/root.pem`,
      "-untrusted",
      `${dir}/inter.pem`,
      "-purpose",
      "sslclient",
      `${dir}/leaf.pem`,
    ]);
    assert.equal(c.code, 0, c.stderr);
    const t = await openssl([
      "x509",
      "-in",
      `${dir}/leaf.pem`,
      "-noout",
      "-text",
      "-nameopt",
      "RFC2253",
    ]);
    assert.match(
      t.stdout,
      /Subject: OU=organization:org-guid-3,OU=space:space-guid-2,OU=app:app-guid-1,CN=6a1c2f7e-1b2d-4c3e-9f00-aa11bb22cc33/,
    );
    assert.match(t.stdout, /DNS:6a1c2f7e-1b2d-4c3e-9f00-aa11bb22cc33/);
    assert.match(t.stdout, /IP Address:10\.0\.16\.5/);
    assert.match(
      t.stdout,
      /URI:spiffe:\/\/sigil\.internal\/org\/org-guid-3\/space\/space-guid-2\/app\/app-guid-1\/instance\/6a1c2f7e-1b2d-4c3e-9f00-aa11bb22cc33/,
    );
    assert.match(
      t.stdout,
      /TLS Web Server Authentication, TLS Web Client Authentication/,
    );
    assert.match(t.stdout, /Digital Signature/);
    assert.match(t.stdout, /CA:FALSE/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("issueInstanceCertificate() backdates notBefore, uses random 128-bit serials and clamps to the issuer", async () => {
  const pki = await createTestPki();
  const keys = await generateKeyPair();
  const now = Date.now();
  const a = await issueInstanceCertificate(
    keys.publicKey,
    ID,
    pki.intermediate,
    { trustDomain: "t", validityMs: 3_600_000, now, backdateMs: 120_000 },
  );
  const b = await issueInstanceCertificate(
    keys.publicKey,
    ID,
    pki.intermediate,
    { trustDomain: "t", validityMs: 3_600_000, now },
  );
  assert.notEqual(a.serial, b.serial);
  assert.equal(a.serial.length, 32);
  assert.ok(parseInt(a.serial[0]!, 16) < 8, "serial is positive");
  assert.ok(Math.abs(a.notBefore.getTime() - (now - 120_000)) < 1000);
  const long = await issueInstanceCertificate(
    keys.publicKey,
    ID,
    pki.intermediate,
    { trustDomain: "t", validityMs: 50 * 365 * 86_400_000 },
  );
  assert.equal(long.clamped, true);
  assert.equal(
    long.notAfter.getTime(),
    parseCertificate(pki.intermediatePem).notAfter.getTime(),
  );
});

Deno.test("parseCertificate() reads the identity back", async () => {
  const pki = await createTestPki("sigil.internal");
  const cred = await pki.issueInstance(ID);
  const info = parseCertificate(cred.certPem);
  assert.equal(info.identity?.instanceId, ID.instanceId);
  assert.equal(info.identity?.app, ID.app);
  assert.equal(info.identity?.space, ID.space);
  assert.equal(info.identity?.org, ID.org);
  assert.deepEqual(info.identity?.ips, ID.ips);
  assert.equal(info.identity?.trustDomain, "sigil.internal");
  assert.equal(info.serial, cred.serial);
  assert.match(info.fingerprint256, /^([0-9a-f]{2}:){31}[0-9a-f]{2}$/);
  assert.equal(await certificateMatchesKey(cred.certPem, cred.keyPem), true);
  const other = await pki.issueInstance(ID);
  assert.equal(await certificateMatchesKey(cred.certPem, other.keyPem), false);
  await verifyChain(cred.certPem, pki.rootPem);
  const otherPki = await createTestPki();
  await assert.rejects(verifyChain(cred.certPem, otherPki.rootPem), PkiError);
  // A leaf's key must not vouch for another certificate, even one that
  // names the leaf as its issuer and whose chain ends at the right root.
  const leafKeys = await importPrivateKeyPem(cred.keyPem);
  const forged = await issueInstanceCertificate(
    (await generateKeyPair()).publicKey,
    { ...ID, instanceId: "forged" },
    {
      certPem: cred.certPem.split(/(?<=-----END CERTIFICATE-----)/)[0]!.trim(),
      keys: leafKeys,
      chainPem: "",
    },
    { trustDomain: "sigil.internal", validityMs: 600_000 },
  );
  await assert.rejects(
    verifyChain(forged.pem + "\n" + cred.certPem, pki.rootPem),
    /is not the CA that issued/,
  );
});

Deno.test("verifyCsr() accepts every supported key type and openssl CSRs", async () => {
  for (const type of ["ec-p256", "ec-p384", "rsa-2048"] as const) {
    const keys = await generateKeyPair(type);
    const v = await verifyCsr(await createCsr(keys));
    assert.equal(v.keyType, type);
    const pem = await exportPrivateKeyPem(keys);
    assert.equal((await importPrivateKeyPem(pem)).type, type);
  }
  const dir = await Deno.makeTempDir();
  try {
    const r = await openssl([
      "req",
      "-new",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      `${dir}/k.pem`,
      "-subj",
      "/CN=x",
      "-out",
      `${dir}/r.csr`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const v = await verifyCsr(await Deno.readTextFile(`${dir}/r.csr`));
    assert.equal(v.keyType, "ec-p256");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("verifyCsr() rejects garbage, a tampered signature and unsupported keys", async () => {
  await assert.rejects(verifyCsr("hello"), { code: "ERR_PKI_CSR_INVALID" });
  await assert.rejects(
    verifyCsr(
      "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
    ),
    { code: "ERR_PKI_CSR_INVALID" },
  );
  const csr = await createCsr(await generateKeyPair());
  const body = csr.split("\n").filter((l) => l && !l.startsWith("-----")).join(
    "",
  );
  const der = Uint8Array.from(atob(body), (c) => c.charCodeAt(0));
  der[der.length - 5]! ^= 0xff; // flip a byte inside the signature
  const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${
    btoa(String.fromCharCode(...der))
  }\n-----END CERTIFICATE REQUEST-----\n`;
  await assert.rejects(
    verifyCsr(tampered),
    (e: Error) => e instanceof PkiError && /signature|parse/.test(e.message),
  );
  const dir = await Deno.makeTempDir();
  try {
    const r = await openssl([
      "req",
      "-new",
      "-newkey",
      "ed25519",
      "-nodes",
      "-keyout",
      `${dir}/k.pem`,
      "-subj",
      "/CN=x",
      "-out",
      `${dir}/r.csr`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    await assert.rejects(
      verifyCsr(await Deno.readTextFile(`${dir}/r.csr`)),
      /unsupported public key/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("validateIdentity() names the bad field and never accepts separators", () => {
  for (
    const [field, value] of [
      ["instanceId", "a,b"],
      ["app", "x/y"],
      ["space", "a b"],
      ["org", "\u0001"],
      ["app", ""],
      ["org", "-x"],
    ] as const
  ) {
    assert.throws(
      () => validateIdentity({ ...ID, [field]: value }),
      (e: Error) => {
        assert.equal((e as PkiError).code, "ERR_PKI_IDENTITY_INVALID");
        assert.match(
          e.message,
          new RegExp(field === "instanceId" ? "instance_id" : field),
        );
        return true;
      },
    );
  }
  assert.throws(
    () => validateIdentity({ ...ID, ips: ["10.0.0.300"] }),
    /not an IP address/,
  );
  assert.deepEqual(
    validateIdentity({ ...ID, ips: ["10.0.0.1", "10.0.0.1"] }).ips,
    ["10.0.0.1"],
  );
});
