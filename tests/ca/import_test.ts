/**
 * `sigil ca import` (issue 15): an existing root and/or intermediate made by
 * openssl (PKCS#1 like CF's diego_instance_identity_ca, SEC1, PKCS#8; RSA
 * and EC), checked before use, with errors naming the problem; leaves
 * issued under an imported RSA intermediate verify with openssl.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { importCa } from "../../lib/ca/mod.ts";
import {
  createIntermediateCa,
  createRootCa,
  exportPrivateKeyPem,
  generateKeyPair,
} from "../../lib/pki/mod.ts";
import { openssl, sigil, SigilProcess } from "../_helpers/proc.ts";

const EXTENSIONS = `[req]
distinguished_name = dn
[dn]
[root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[root_pathlen0]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
[inter]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
[nosign]
basicConstraints = critical,CA:TRUE
keyUsage = critical,digitalSignature
`;

async function ok(args: string[]): Promise<void> {
  const r = await openssl(args);
  assert.equal(r.code, 0, `openssl ${args.join(" ")}: ${r.stderr}`);
}

/** openssl-made keys and certificates in `dir`. */
async function makeFixtures(dir: string) {
  const f = (n: string) => join(dir, n);
  await Deno.writeTextFile(f("ext.cnf"), EXTENSIONS);
  // Root: RSA 2048, PKCS#1 ("BEGIN RSA PRIVATE KEY"), as CF's credhub-made CAs.
  await ok(["genrsa", "-traditional", "-out", f("root.key"), "2048"]);
  const selfSigned = async (key: string, out: string, ext: string) =>
    await ok([
      "req",
      "-x509",
      "-new",
      "-key",
      f(key),
      "-subj",
      `/CN=diego_instance_identity_ca ${ext}`,
      "-days",
      "365",
      "-config",
      f("ext.cnf"),
      "-extensions",
      ext,
      "-out",
      f(out),
    ]);
  await selfSigned("root.key", "root.crt", "root");
  await selfSigned("root.key", "root-pathlen0.crt", "root_pathlen0");
  await selfSigned("root.key", "leaf-as-root.crt", "leaf");
  await selfSigned("root.key", "nosign.crt", "nosign");
  // Intermediate: RSA 3072, PKCS#1, signed by the root.
  await ok(["genrsa", "-traditional", "-out", f("inter.key"), "3072"]);
  const signedByRoot = async (key: string, out: string) => {
    await ok([
      "req",
      "-new",
      "-key",
      f(key),
      "-subj",
      "/CN=Imported Intermediate",
      "-config",
      f("ext.cnf"),
      "-out",
      f(`${out}.csr`),
    ]);
    await ok([
      "x509",
      "-req",
      "-in",
      f(`${out}.csr`),
      "-CA",
      f("root.crt"),
      "-CAkey",
      f("root.key"),
      "-set_serial",
      "0x5157",
      "-days",
      "90",
      "-extfile",
      f("ext.cnf"),
      "-extensions",
      "inter",
      "-out",
      f(out),
    ]);
  };
  await signedByRoot("inter.key", "inter.crt");
  // EC: SEC1 P-384 root ("BEGIN EC PRIVATE KEY") and a PKCS#8 P-256 intermediate.
  await ok([
    "ecparam",
    "-genkey",
    "-name",
    "secp384r1",
    "-out",
    f("ec-root.key"),
  ]);
  await selfSigned("ec-root.key", "ec-root.crt", "root");
  await ok([
    "genpkey",
    "-algorithm",
    "EC",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-out",
    f("ec-inter.key"),
  ]);
  // Unsupported key size, and an encrypted key.
  await ok(["genrsa", "-traditional", "-out", f("small.key"), "1024"]);
  await selfSigned("small.key", "small.crt", "root");
  await ok([
    "genpkey",
    "-algorithm",
    "RSA",
    "-pkeyopt",
    "rsa_keygen_bits:2048",
    "-aes256",
    "-pass",
    "pass:secret",
    "-out",
    f("encrypted.key"),
  ]);
  return f;
}

let shared: Promise<(n: string) => string> | undefined;
/** The fixtures, made once per test file (RSA key generation is slow). */
function fixtures(): Promise<(n: string) => string> {
  if (!shared) {
    const dir = Deno.makeTempDirSync();
    globalThis.addEventListener("unload", () => {
      Deno.removeSync(dir, { recursive: true });
    });
    shared = makeFixtures(dir);
  }
  return shared;
}

const issueArgs = (caDir: string, out: string) => [
  "ca",
  "issue",
  "--dir",
  caDir,
  "--instance",
  "imp-1",
  "--app",
  "a",
  "--space",
  "s",
  "--org",
  "o",
  "--out",
  out,
];

Deno.test("sigil ca import: an openssl RSA root and intermediate with PKCS#1 keys; the root stays offline; leaves verify with openssl; the CA serves under it", async () => {
  const dir = await Deno.makeTempDir();
  let ca: SigilProcess | undefined;
  try {
    const fx = await fixtures();
    const f = (n: string) =>
      n.startsWith("ca") || n.startsWith("out") || n === "sigil.yaml"
        ? join(dir, n)
        : fx(n);
    const caDir = f("ca");
    const imp = await sigil([
      "ca",
      "import",
      "--dir",
      caDir,
      "--root-cert",
      f("root.crt"),
      "--intermediate-cert",
      f("inter.crt"),
      "--intermediate-key",
      f("inter.key"),
      "--trust-domain",
      "cf.internal",
    ]);
    assert.equal(imp.code, 0, imp.stderr);
    assert.match(imp.stdout, /root key offline/);
    assert.match(imp.stdout, /rsa-3072/);
    assert.equal(
      await Deno.lstat(join(caDir, "root.key")).catch(() => null),
      null,
    );
    // Stored as PKCS#8, mode 0600; the same key as openssl's.
    const stored = join(caDir, "intermediate.key");
    assert.match(
      await Deno.readTextFile(stored),
      /^-----BEGIN PRIVATE KEY-----/,
    );
    assert.equal((await Deno.stat(stored)).mode! & 0o777, 0o600);
    const a = await openssl(["pkey", "-in", stored, "-pubout"]);
    const b = await openssl(["pkey", "-in", f("inter.key"), "-pubout"]);
    assert.equal(a.stdout, b.stdout);

    const issued = await sigil(issueArgs(caDir, f("out")));
    assert.equal(issued.code, 0, issued.stderr);
    const v = await openssl([
      "verify",
      "-CAfile",
      f("root.crt"),
      "-untrusted",
      f("inter.crt"),
      f("out/instance.crt"),
    ]);
    assert.equal(v.code, 0, v.stderr);
    // The leaf file carries the imported intermediate as its chain.
    const v2 = await openssl([
      "verify",
      "-CAfile",
      f("root.crt"),
      "-untrusted",
      f("out/instance.crt"),
      f("out/instance.crt"),
    ]);
    assert.equal(v2.code, 0, v2.stderr);
    const text = await openssl([
      "x509",
      "-in",
      f("out/instance.crt"),
      "-noout",
      "-issuer",
      "-ext",
      "subjectAltName",
    ]);
    assert.match(text.stdout, /issuer=CN ?= ?Imported Intermediate/);
    assert.match(text.stdout, /spiffe:\/\/cf\.internal\//);

    await Deno.writeTextFile(
      f("sigil.yaml"),
      `ca:\n  dir: ${caDir}\n  listen: "127.0.0.1:0"\n`,
    );
    ca = new SigilProcess(["ca", "serve", "--config", f("sigil.yaml")]);
    const l = await ca.waitForEvent("ca-listening");
    const s = await openssl([
      "s_client",
      "-connect",
      String(l.address),
      "-CAfile",
      f("root.crt"),
      "-verify_return_error",
      "-brief",
    ], "");
    assert.match(s.stderr + s.stdout, /Verification: OK/);
  } finally {
    await ca?.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sigil ca import: a root with its key (SEC1 P-384) gets a new intermediate; a PKCS#8 P-256 intermediate made by the imported CA is accepted", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const fx = await fixtures();
    const f = (n: string) =>
      n.startsWith("ca") || n.startsWith("out") || n === "sigil.yaml"
        ? join(dir, n)
        : fx(n);
    const imp = await sigil([
      "ca",
      "import",
      "--dir",
      f("ca"),
      "--root-cert",
      f("ec-root.crt"),
      "--root-key",
      f("ec-root.key"),
    ]);
    assert.equal(imp.code, 0, imp.stderr);
    assert.match(imp.stdout, /intermediate created under the root/);
    assert.match(imp.stdout, /ec-p384/);
    const issued = await sigil(issueArgs(f("ca"), f("out")));
    assert.equal(issued.code, 0, issued.stderr);
    const v = await openssl([
      "verify",
      "-CAfile",
      f("ec-root.crt"),
      "-untrusted",
      f("ca/intermediate.crt"),
      f("out/instance.crt"),
    ]);
    assert.equal(v.code, 0, v.stderr);
    // With the root key imported, the intermediate can be renewed.
    const renew = await sigil([
      "ca",
      "intermediate",
      "renew",
      "--dir",
      f("ca"),
      "--key-type",
      "ec-p256",
    ]);
    assert.equal(renew.code, 0, renew.stderr);
    assert.match(renew.stdout, /ec-p256/);
    // openssl-made PKCS#8 P-256 intermediate under the SEC1 root.
    await ok([
      "req",
      "-new",
      "-key",
      f("ec-inter.key"),
      "-subj",
      "/CN=EC Intermediate",
      "-config",
      f("ext.cnf"),
      "-out",
      f("ec-inter.csr"),
    ]);
    await ok([
      "x509",
      "-req",
      "-in",
      f("ec-inter.csr"),
      "-CA",
      f("ec-root.crt"),
      "-CAkey",
      f("ec-root.key"),
      "-set_serial",
      "7",
      "-days",
      "30",
      "-extfile",
      f("ext.cnf"),
      "-extensions",
      "inter",
      "-out",
      f("ec-inter.crt"),
    ]);
    const store = await importCa(f("ca2"), {
      rootCertPem: await Deno.readTextFile(f("ec-root.crt")),
      intermediateCertPem: await Deno.readTextFile(f("ec-inter.crt")),
      intermediateKeyPem: await Deno.readTextFile(f("ec-inter.key")),
    });
    assert.equal(store.meta.key_type, "ec-p256");
    assert.equal(store.rootKeyOnline, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sigil ca import refuses unusable CAs with an error naming the file and the problem, and writes nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const fx = await fixtures();
    const f = (n: string) =>
      n.startsWith("ca") || n.startsWith("out") || n === "sigil.yaml"
        ? join(dir, n)
        : fx(n);
    const read = (n: string) => Deno.readTextFile(f(n));
    const cases: Array<[string, Parameters<typeof importCa>[1], RegExp]> = [
      [
        "key of another certificate",
        {
          rootCertPem: await read("root.crt"),
          rootKeyPem: await read("inter.key"),
        },
        /does not belong to this certificate/,
      ],
      [
        "CA:FALSE",
        {
          rootCertPem: await read("leaf-as-root.crt"),
          rootKeyPem: await read("root.key"),
        },
        /not a CA certificate \(BasicConstraints CA:TRUE missing\)/,
      ],
      [
        "pathlen:0 root asked to sign an intermediate",
        {
          rootCertPem: await read("root-pathlen0.crt"),
          rootKeyPem: await read("root.key"),
        },
        /path length is 0, so it cannot sign an intermediate CA/,
      ],
      [
        "no keyCertSign",
        {
          rootCertPem: await read("nosign.crt"),
          rootKeyPem: await read("root.key"),
        },
        /key usage lacks keyCertSign/,
      ],
      [
        "intermediate given as the root",
        {
          rootCertPem: await read("inter.crt"),
          intermediateCertPem: await read("inter.crt"),
          intermediateKeyPem: await read("inter.key"),
        },
        /not self-signed/,
      ],
      [
        "intermediate of another root",
        {
          rootCertPem: await read("ec-root.crt"),
          intermediateCertPem: await read("inter.crt"),
          intermediateKeyPem: await read("inter.key"),
        },
        /intermediate certificate.*is not signed by the root/,
      ],
      [
        "RSA 1024",
        {
          rootCertPem: await read("small.crt"),
          rootKeyPem: await read("small.key"),
        },
        /\(rsa 1024\) is not supported; use RSA 2048-4096 or EC P-256\/P-384/,
      ],
      [
        "encrypted key",
        {
          rootCertPem: await read("root.crt"),
          rootKeyPem: await read("encrypted.key"),
        },
        /it is encrypted; decrypt it first/,
      ],
      [
        "not a certificate",
        {
          rootCertPem: await read("root.key"),
          rootKeyPem: await read("root.key"),
        },
        /no 'BEGIN CERTIFICATE' block found/,
      ],
    ];
    // Expired and not-yet-valid CAs, made with the library's clock.
    const oldKeys = await generateKeyPair("rsa-2048");
    const day = 86_400_000;
    const expired = await createRootCa(oldKeys, {
      commonName: "Old",
      validityMs: day,
      now: Date.now() - 3 * day,
    });
    cases.push([
      "expired root",
      {
        rootCertPem: expired.pem,
        rootKeyPem: await exportPrivateKeyPem(oldKeys),
      },
      /it expired on \d{4}-/,
    ]);
    const rk = await generateKeyPair();
    const root = await createRootCa(rk, {
      commonName: "R",
      validityMs: 30 * day,
    });
    const ik = await generateKeyPair();
    const future = await createIntermediateCa(
      ik.publicKey,
      { certPem: root.pem, keys: rk, chainPem: "" },
      {
        commonName: "Later",
        validityMs: day,
        now: Date.now() + 2 * day,
        backdateMs: 0,
      },
    );
    cases.push([
      "intermediate not yet valid",
      {
        rootCertPem: root.pem,
        intermediateCertPem: future.pem,
        intermediateKeyPem: await exportPrivateKeyPem(ik),
      },
      /it is not valid before \d{4}-/,
    ]);
    for (const [name, input, re] of cases) {
      const target = f(`ca-${name.replace(/\W+/g, "-")}`);
      await assert.rejects(importCa(target, input), (e: Error) => {
        assert.match(e.message, re, name);
        assert.doesNotMatch(
          e.message,
          /-----BEGIN|MII[A-Za-z0-9+/]{20}/,
          `${name}: no PEM in errors`,
        );
        return true;
      }, name);
      assert.equal(
        await Deno.lstat(join(target, "ca.json")).catch(() => null),
        null,
        `${name}: nothing written`,
      );
    }

    // The CLI names the file; missing pieces are usage errors (exit 2).
    const cli = await sigil([
      "ca",
      "import",
      "--dir",
      f("ca-cli"),
      "--root-cert",
      f("leaf-as-root.crt"),
      "--root-key",
      f("root.key"),
    ]);
    assert.equal(cli.code, 1, cli.stderr);
    assert.ok(
      cli.stderr.includes(`root certificate "${f("leaf-as-root.crt")}"`),
      cli.stderr,
    );
    const noKey = await sigil([
      "ca",
      "import",
      "--dir",
      f("ca-cli"),
      "--root-cert",
      f("root.crt"),
    ]);
    assert.equal(noKey.code, 2);
    assert.match(noKey.stderr, /--root-key.*--intermediate-cert/);
    const half = await sigil([
      "ca",
      "import",
      "--dir",
      f("ca-cli"),
      "--root-cert",
      f("root.crt"),
      "--intermediate-cert",
      f("inter.crt"),
    ]);
    assert.equal(half.code, 2);
    assert.match(half.stderr, /go together/);
    const missing = await sigil([
      "ca",
      "import",
      "--dir",
      f("ca-cli"),
      "--root-cert",
      f("nope.crt"),
      "--root-key",
      f("root.key"),
    ]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /Cannot read "--root-cert" file .*nope\.crt/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
