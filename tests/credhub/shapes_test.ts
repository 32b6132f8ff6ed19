/**
 * `user` and `certificate` credentials as CredHub returns them (UserView /
 * UserCredentialValue, CertificateView / CertificateValueView), with CredHub's
 * set-request errors (CertificateSetAndRegenerateTest.java). Certificates and
 * keys are made with openssl, and the password hash is checked with
 * `openssl passwd -6`.
 * @module
 */
import assert from "node:assert/strict";
import { credhubCall, startTestCredhub } from "../_helpers/credhub.ts";
import type { TestCredhub } from "../_helpers/credhub.ts";
import { openssl } from "../_helpers/proc.ts";

async function ok(args: string[]): Promise<string> {
  const r = await openssl(args);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

/** An RSA CA, an EC leaf it signed, a self-signed EC leaf and another CA, from openssl. */
async function fixtures(dir: string) {
  const p = (n: string) => `${dir}/${n}`;
  await ok([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    p("ca.key"),
    "-out",
    p("ca.crt"),
    "-subj",
    "/CN=Shapes CA",
    "-days",
    "30",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  await ok([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    p("other.key"),
    "-out",
    p("other.crt"),
    "-subj",
    "/CN=Other CA",
    "-days",
    "30",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
  ]);
  await ok([
    "ecparam",
    "-name",
    "prime256v1",
    "-genkey",
    "-noout",
    "-out",
    p("leaf.key"),
  ]);
  await ok([
    "req",
    "-new",
    "-key",
    p("leaf.key"),
    "-subj",
    "/CN=leaf.example",
    "-out",
    p("leaf.csr"),
  ]);
  await ok([
    "x509",
    "-req",
    "-in",
    p("leaf.csr"),
    "-CA",
    p("ca.crt"),
    "-CAkey",
    p("ca.key"),
    "-days",
    "10",
    "-out",
    p("leaf.crt"),
  ]);
  await ok([
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    p("self.key"),
    "-out",
    p("self.crt"),
    "-subj",
    "/CN=self.example",
    "-days",
    "5",
    "-addext",
    "basicConstraints=critical,CA:FALSE",
  ]);
  const read = (n: string) => Deno.readTextFile(p(n));
  const enddate = async (n: string) =>
    (await ok([
      "x509",
      "-in",
      p(n),
      "-noout",
      "-enddate",
      "-dateopt",
      "iso_8601",
    ]))
      .trim().replace("notAfter=", "").replace(" ", "T");
  return {
    ca: await read("ca.crt"),
    caKey: await read("ca.key"),
    other: await read("other.crt"),
    leaf: await read("leaf.crt"),
    leafKey: await read("leaf.key"),
    self: await read("self.crt"),
    selfKey: await read("self.key"),
    leafExpiry: await enddate("leaf.crt"),
    caExpiry: await enddate("ca.crt"),
  };
}

function put(t: TestCredhub, token: string, body: unknown) {
  return credhubCall(t.ch.url, "PUT", "/api/v1/data", {
    token,
    ca: t.pki.rootPem,
    body,
  });
}

function get(t: TestCredhub, token: string, name: string) {
  return credhubCall(
    t.ch.url,
    "GET",
    `/api/v1/data?name=${encodeURIComponent(name)}&current=true`,
    { token, ca: t.pki.rootPem },
  );
}

Deno.test("credhub user credential: value is username, password, password_hash (sha512crypt, verified with openssl passwd -6), stable across reads, new salt per version", async () => {
  const t = await startTestCredhub();
  try {
    const token = await t.token("credhub.write credhub.read");
    const name = `/c/shapes/${crypto.randomUUID()}/user`;
    const password = `pä ss-${crypto.randomUUID()}$!`;
    const set = await put(t, token, {
      name,
      type: "user",
      value: { username: "svc-user", password },
    });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    assert.deepEqual(Object.keys(set.body.value), [
      "username",
      "password",
      "password_hash",
    ]);
    assert.equal(set.body.value.username, "svc-user");
    assert.equal(set.body.value.password, password);
    const hash: string = set.body.value.password_hash;
    const m = hash.match(/^\$6\$([./0-9A-Za-z]{8})\$[./0-9A-Za-z]{86}$/);
    assert.ok(m, hash);
    assert.equal(
      (await ok(["passwd", "-6", "-salt", m[1]!, password])).trim(),
      hash,
    );
    assert.notEqual(
      (await ok(["passwd", "-6", "-salt", m[1]!, password + "x"])).trim(),
      hash,
    );

    const read = await get(t, token, name);
    assert.equal(read.status, 200);
    assert.deepEqual(read.body.data[0].value, set.body.value);

    const again = await put(t, token, {
      name,
      type: "user",
      value: { password },
    });
    assert.equal(again.status, 200);
    assert.equal(again.body.value.username, null);
    assert.notEqual(
      again.body.value.password_hash,
      hash,
      "each version has its own salt",
    );
    const salt2 = again.body.value.password_hash.split("$")[2];
    assert.equal(
      (await ok(["passwd", "-6", "-salt", salt2, password])).trim(),
      again.body.value.password_hash,
    );

    const missing = await put(t, token, {
      name,
      type: "user",
      value: { username: "u" },
    });
    assert.equal(missing.status, 400);
    assert.equal(
      missing.body.error,
      "A password value must be specified for the credential. Please validate and retry your request.",
    );
  } finally {
    await t.close();
  }
});

Deno.test("credhub certificate credential: ca/certificate/private_key plus expiry_date, certificate_authority, self_signed, generated, transitional in CredHub's order", async () => {
  const t = await startTestCredhub();
  try {
    const f = await fixtures(t.dir);
    const token = await t.token("credhub.write credhub.read");
    const base = `/c/shapes/${crypto.randomUUID()}`;
    const set = await put(t, token, {
      name: `${base}/leaf`,
      type: "certificate",
      value: { ca: f.ca, certificate: f.leaf, private_key: f.leafKey },
    });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    const keys = [
      "type",
      "version_created_at",
      "id",
      "name",
      "metadata",
      "value",
      "expiry_date",
      "certificate_authority",
      "self_signed",
      "generated",
      "transitional",
    ];
    assert.deepEqual(Object.keys(set.body), keys);
    assert.deepEqual(set.body.value, {
      ca: f.ca,
      certificate: f.leaf,
      private_key: f.leafKey,
    });
    assert.deepEqual(Object.keys(set.body.value), [
      "ca",
      "certificate",
      "private_key",
    ]);
    assert.equal(set.body.expiry_date, f.leafExpiry);
    assert.equal(set.body.certificate_authority, false);
    assert.equal(set.body.self_signed, false);
    assert.equal(set.body.generated, false);
    assert.equal(set.body.transitional, false);

    const read = await get(t, token, `${base}/leaf`);
    assert.equal(read.status, 200);
    assert.deepEqual(Object.keys(read.body.data[0]), keys);
    assert.deepEqual(read.body.data[0], set.body);

    // A self-signed CA, stored as its own certificate (ca equal to it).
    const ca = await put(t, token, {
      name: `${base}/ca`,
      type: "certificate",
      value: { ca: f.ca, certificate: f.ca, private_key: f.caKey },
    });
    assert.equal(ca.status, 200, JSON.stringify(ca.body));
    assert.equal(ca.body.certificate_authority, true);
    assert.equal(ca.body.self_signed, true);
    assert.equal(ca.body.expiry_date, f.caExpiry);
    // A ca bundle over CredHub's 7000-character limit, the issuer not first.
    const bundle = [...Array(7).fill(f.other), f.ca].join("");
    assert.ok(bundle.length > 7000);
    const bundled = await put(t, token, {
      name: `${base}/bundled`,
      type: "certificate",
      value: { ca: bundle, certificate: f.leaf },
    });
    assert.equal(bundled.status, 200, JSON.stringify(bundled.body));
    assert.equal(bundled.body.value.ca, bundle);
    assert.equal(bundled.body.value.private_key, null);
    // A self-signed leaf with no ca (CredHub would report self_signed false).
    const self = await put(t, token, {
      name: `${base}/self`,
      type: "certificate",
      value: { certificate: f.self, private_key: f.selfKey },
    });
    assert.equal(self.status, 200, JSON.stringify(self.body));
    assert.equal(self.body.value.ca, null);
    assert.equal(self.body.certificate_authority, false);
    assert.equal(self.body.self_signed, true);
  } finally {
    await t.close();
  }
});

Deno.test("credhub certificate credential: a PEM that does not parse, a wrong CA, a key that does not match are 400s with CredHub's error texts and no PEM in them", async () => {
  const t = await startTestCredhub();
  try {
    const f = await fixtures(t.dir);
    const token = await t.token("credhub.write credhub.read");
    const name = `/c/shapes/${crypto.randomUUID()}/bad`;
    // The DER cut short: the first base64 lines, then the END line.
    const lines = f.leaf.trim().split("\n");
    const truncated = [...lines.slice(0, 3), lines.at(-1)].join("\n") + "\n";
    const cases: Array<[Record<string, string>, string]> = [
      [{
        certificate: "This is definitely not a certificate. Or is it?",
        private_key: f.leafKey,
      }, "The provided certificate value is not a valid X509 certificate."],
      [
        { certificate: "-----BEGIN CERTIFICATE-----" },
        "The provided certificate value is not a valid X509 certificate.",
      ],
      [{
        certificate:
          "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----",
        private_key: "not a key",
      }, "The provided certificate value is not a valid X509 certificate."],
      [
        { certificate: truncated },
        "The provided certificate value is not a valid X509 certificate.",
      ],
      [{ private_key: f.leafKey }, "You must provide a certificate."],
      [
        { ca: "", certificate: "", private_key: "" },
        "At least one certificate attribute must be set. Please validate your input and retry your request.",
      ],
      [
        { ca: f.self, certificate: f.leaf },
        "The provided CA value is not a valid X509 certificate authority.",
      ],
      [
        { ca: "junk", certificate: f.leaf },
        "The provided CA value is not a valid X509 certificate authority.",
      ],
      [
        { ca: f.other, certificate: f.leaf },
        "The provided certificate was not signed by the CA specified in the 'ca' property.",
      ],
      [
        { certificate: f.leaf, private_key: f.selfKey },
        "The provided certificate does not match the private key.",
      ],
    ];
    for (const [value, error] of cases) {
      const r = await put(t, token, { name, type: "certificate", value });
      assert.equal(r.status, 400, JSON.stringify(value).slice(0, 80));
      assert.equal(r.body.error, error);
    }
    const malformed = await put(t, token, {
      name,
      type: "certificate",
      value: {
        certificate: f.leaf,
        private_key:
          "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
      },
    });
    assert.equal(malformed.status, 400);
    assert.match(malformed.body.error, /^Private key is malformed\. /);
    assert.doesNotMatch(malformed.body.error, /AAAA|BEGIN/);
    // Nothing was stored by any of them.
    assert.equal((await get(t, token, name)).status, 404);
  } finally {
    await t.close();
  }
});
