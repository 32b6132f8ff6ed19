/**
 * The CN hole: Go's crypto/tls (gorouter, proxy/backend_tls_test.go) accepts a
 * backend only when the instance id is a DNS SAN; Node's checkServerIdentity
 * falls back to the subject CN. Certificates made with openssl.
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import type { PeerCertificate } from "node:tls";
import { identityChecker } from "../../lib/router/_transport.ts";

async function opensslCert(
  dir: string,
  cn: string,
  san?: string,
): Promise<PeerCertificate> {
  const args = [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-days",
    "1",
    "-subj",
    `/CN=${cn}`,
    "-keyout",
    `${dir}/k.pem`,
    "-out",
    `${dir}/c.pem`,
  ];
  if (san) args.push("-addext", `subjectAltName=${san}`);
  const out = await new Deno.Command("openssl", { args, stderr: "null" })
    .output();
  assert.ok(out.success, "openssl req failed");
  const x = new X509Certificate(await Deno.readTextFile(`${dir}/c.pem`));
  return {
    subject: { CN: cn },
    subjectaltname: x.subjectAltName,
  } as unknown as PeerCertificate;
}

Deno.test("identityChecker() refuses the instance id carried only in the CN, with or without an IP SAN (Go crypto/tls, gorouter backend_tls_test.go)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const id = "a7c0f2d4-instance";
    const check = identityChecker(id);
    const cases: [string, string | undefined, boolean][] = [
      ["CN only", undefined, false],
      ["CN + IP SAN", "IP:127.0.0.1", false],
      ["DNS SAN", `DNS:${id}`, true],
      ["DNS SAN + IP SAN", `DNS:${id},IP:127.0.0.1`, true],
      ["other DNS SAN", "DNS:other-instance", false],
    ];
    for (const [name, san, ok] of cases) {
      const err = check("127.0.0.1", await opensslCert(dir, id, san));
      assert.equal(err === undefined, ok, name);
      if (!ok) {
        assert.equal(
          (err as Error & { code: string }).code,
          "ERR_TLS_CERT_ALTNAME_INVALID",
          name,
        );
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
