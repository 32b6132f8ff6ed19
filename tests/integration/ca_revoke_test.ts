/**
 * `sigil ca revoke` against a real `sigil ca serve`: token revocation (401
 * naming the reason, across restarts), passive identity revocation (403, as
 * step-ca's), and `/v1/crl.pem` checked by `openssl crl -verify`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { createCsr, generateKeyPair } from "../../lib/pki/mod.ts";
import { openssl, sigil, SigilProcess } from "../_helpers/proc.ts";

interface Ca {
  proc: SigilProcess;
  url: string;
}

async function serve(config: string): Promise<Ca> {
  const proc = new SigilProcess(["ca", "serve", "--config", config]);
  const listening = await proc.waitForEvent("ca-listening");
  return { proc, url: `https://${listening.address}` };
}

async function mint(
  caDir: string,
  subject: string,
): Promise<{ token: string; jti: string }> {
  const r = await sigil([
    "ca",
    "token",
    "--dir",
    caDir,
    "--subject",
    subject,
    "--app",
    "*",
    "--space",
    "*",
    "--org",
    "*",
    "--cidr",
    "10.0.0.0/8",
    "--ttl",
    "1h",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const jti = r.stderr.match(/Token jti (\S+) for/)?.[1];
  assert.ok(jti, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(`sigil ca revoke --dir \\S+ --token ${jti}`),
  );
  return { token: r.stdout.trim(), jti };
}

async function sign(
  ca: Ca,
  client: Deno.HttpClient,
  token: string,
  instance: string,
  app = "app-1",
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${ca.url}/v1/sign`, {
    client,
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
    },
    body: JSON.stringify({
      csr: await createCsr(await generateKeyPair()),
      instance_id: instance,
      app,
      space: "space-1",
      org: "org-1",
      ips: ["10.0.0.9"],
    }),
  });
  return { status: res.status, body: await res.json() };
}

function errorOf(body: Record<string, unknown>): {
  code: string;
  message: string;
} {
  return body.error as { code: string; message: string };
}

async function revoke(caDir: string, ...args: string[]) {
  const r = await sigil(["ca", "revoke", "--dir", caDir, ...args]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

Deno.test("sigil ca revoke: a revoked token gets 401 'token revoked' from /v1/sign, also after a CA restart; a revoked subject covers all its tokens", async () => {
  const dir = await Deno.makeTempDir();
  const caDir = join(dir, "ca");
  let ca: Ca | undefined;
  const rootPem = async () => await Deno.readTextFile(join(caDir, "root.crt"));
  try {
    assert.equal((await sigil(["ca", "init", "--dir", caDir])).code, 0);
    const a = await mint(caDir, "cell-a");
    const a2 = await mint(caDir, "cell-a");
    const b = await mint(caDir, "cell-b");
    const config = join(dir, "sigil.yaml");
    await Deno.writeTextFile(
      config,
      `ca:\n  dir: ${caDir}\n  listen: "127.0.0.1:0"\n`,
    );
    ca = await serve(config);
    const client = Deno.createHttpClient({ caCerts: [await rootPem()] });
    try {
      assert.equal((await sign(ca, client, a.token, "i-1")).status, 201);

      // Revoked while the CA runs: refused on the next request.
      const out = await revoke(
        caDir,
        "--token",
        a.jti,
        "--reason",
        "laptop lost",
      );
      assert.match(out, new RegExp(`Revoked token "${a.jti}"`));
      let r = await sign(ca, client, a.token, "i-1");
      assert.equal(r.status, 401);
      assert.equal(errorOf(r.body).code, "ERR_CA_TOKEN_REVOKED");
      assert.match(errorOf(r.body).message, /token revoked/);
      assert.match(errorOf(r.body).message, /laptop lost/);
      assert.ok(!errorOf(r.body).message.includes(a.token));
      // Another token of the same subject still works.
      assert.equal((await sign(ca, client, a2.token, "i-1")).status, 201);
      assert.equal((await sign(ca, client, b.token, "i-2")).status, 201);
      // Revoking again reports the first revocation.
      assert.match(
        await revoke(caDir, "--token", a.jti),
        /Already revoked: token/,
      );

      // Across a restart.
      await ca.proc.stop();
      ca = await serve(config);
      r = await sign(ca, client, a.token, "i-1");
      assert.equal(r.status, 401);
      assert.match(errorOf(r.body).message, /token revoked/);

      // A subject: every token minted for it.
      await revoke(caDir, "--subject", "cell-b");
      r = await sign(ca, client, b.token, "i-2");
      assert.equal(r.status, 401);
      assert.match(
        errorOf(r.body).message,
        /token revoked \(every token of subject "cell-b"/,
      );
      assert.equal((await sign(ca, client, a2.token, "i-1")).status, 201);

      // Visible in the ledger, beside the refusals it caused.
      const ledger = await sigil(["ca", "ledger", "--dir", caDir]);
      assert.equal(ledger.code, 0, ledger.stderr);
      assert.match(
        ledger.stdout,
        new RegExp(`\\trevoked\\t.*token jti ${a.jti}: laptop lost`),
      );
      assert.match(ledger.stdout, /\trevoked\t-\t-\t-\t-\tcell-b\tsubject/);
      assert.match(ledger.stdout, /\trefused\t.*ERR_CA_TOKEN_REVOKED/);
      const json = await sigil(["ca", "ledger", "--dir", caDir, "--json"]);
      const rows = json.stdout.trim().split("\n").map((l) => JSON.parse(l));
      assert.deepEqual(
        rows.filter((x) => x.result === "revoked").map((x) => [
          x.kind,
          x.value,
        ]),
        [["token", a.jti], ["subject", "cell-b"]],
      );
    } finally {
      client.close();
    }
  } finally {
    await ca?.proc.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sigil ca revoke --instance/--app: /v1/sign refuses the identity (403) and /v1/crl.pem, signed by the intermediate, lists its unexpired serials (openssl crl -verify)", async () => {
  const dir = await Deno.makeTempDir();
  const caDir = join(dir, "ca");
  let ca: Ca | undefined;
  try {
    assert.equal((await sigil(["ca", "init", "--dir", caDir])).code, 0);
    const { token } = await mint(caDir, "cell-a");
    const config = join(dir, "sigil.yaml");
    await Deno.writeTextFile(
      config,
      `ca:\n  dir: ${caDir}\n  listen: "127.0.0.1:0"\n`,
    );
    ca = await serve(config);
    const rootPem = await Deno.readTextFile(join(caDir, "root.crt"));
    const interPem = await Deno.readTextFile(join(caDir, "intermediate.crt"));
    const chain = join(dir, "chain.pem");
    await Deno.writeTextFile(chain, rootPem + interPem);
    const client = Deno.createHttpClient({ caCerts: [rootPem] });
    const crl = async () => {
      const res = await fetch(`${ca!.url}/v1/crl.pem`, { client });
      assert.equal(res.status, 200);
      const pem = await res.text();
      const file = join(dir, "crl.pem");
      await Deno.writeTextFile(file, pem);
      const v = await openssl([
        "crl",
        "-in",
        file,
        "-CAfile",
        chain,
        "-verify",
        "-noout",
        "-text",
      ]);
      assert.equal(v.code, 0, v.stderr);
      assert.match(v.stderr + v.stdout, /verify OK/);
      assert.match(v.stdout, /Issuer: CN = Sigil Intermediate CA/);
      return [...v.stdout.matchAll(/Serial Number: ([0-9A-F]+)/g)].map((m) =>
        m[1]!.toLowerCase()
      );
    };
    try {
      assert.deepEqual(await crl(), [], "nothing revoked: an empty CRL");
      const issued = async (instance: string, app: string) => {
        const r = await sign(ca!, client, token, instance, app);
        assert.equal(r.status, 201, JSON.stringify(r.body));
        return r.body.serial as string;
      };
      const i1a = await issued("i-1", "app-1");
      const i1b = await issued("i-1", "app-1");
      const i2 = await issued("i-2", "app-1");
      const i3 = await issued("i-3", "app-2");

      const out = await revoke(
        caDir,
        "--instance",
        "i-1",
        "--reason",
        "breach",
      );
      assert.match(out, /2 unexpired certificate\(s\) in \/v1\/crl.pem/);
      let r = await sign(ca, client, token, "i-1");
      assert.equal(r.status, 403);
      assert.equal(errorOf(r.body).code, "ERR_CA_REVOKED");
      assert.match(
        errorOf(r.body).message,
        /Cannot issue certificate for "i-1": instance "i-1" is revoked \(revoked .*: breach\)/,
      );
      assert.deepEqual((await crl()).sort(), [i1a, i1b].sort());
      assert.equal((await sign(ca, client, token, "i-2")).status, 201);

      // An app covers every instance of it, whatever the instance id.
      await revoke(caDir, "--app", "app-2");
      r = await sign(ca, client, token, "i-9", "app-2");
      assert.equal(r.status, 403);
      assert.match(errorOf(r.body).message, /app "app-2" is revoked/);
      const listed = await crl();
      assert.ok(listed.includes(i3) && !listed.includes(i2), String(listed));
      const metrics = await (await fetch(`${ca.url}/metrics`, { client }))
        .text();
      assert.match(metrics, /^sigil_ca_crl_entries 3$/m);

      // The offline `ca issue` refuses it too.
      const offline = await sigil([
        "ca",
        "issue",
        "--dir",
        caDir,
        "--instance",
        "i-1",
        "--app",
        "app-1",
        "--space",
        "s",
        "--org",
        "o",
        "--out",
        join(dir, "out"),
      ]);
      assert.notEqual(offline.code, 0);
      assert.match(offline.stderr, /instance "i-1" is revoked/);
    } finally {
      client.close();
    }
  } finally {
    await ca?.proc.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sigil ca revoke needs exactly one of --token, --subject, --instance, --app", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const caDir = join(dir, "ca");
    assert.equal((await sigil(["ca", "init", "--dir", caDir])).code, 0);
    const none = await sigil(["ca", "revoke", "--dir", caDir]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /needs exactly one of --token, --subject/);
    const two = await sigil([
      "ca",
      "revoke",
      "--dir",
      caDir,
      "--app",
      "a",
      "--instance",
      "i",
    ]);
    assert.equal(two.code, 2);
    assert.match(two.stderr, /got --instance, --app/);
    const help = await sigil(["ca", "revoke", "--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--instance ID/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
