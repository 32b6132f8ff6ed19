/**
 * Revocation end to end, every part a real process over real TLS: `sigil ca
 * serve`, `sigil proxy` (mtls, `crl` set) in front of an app, `sigil router`
 * (backends mtls, `backends.crl` set), curl as the independent client.
 * `sigil ca revoke --instance` puts a serial in `/v1/crl.pem`; after the next
 * CRL reload the proxy refuses that client certificate at the handshake, and
 * the router refuses that backend's certificate and answers as gorouter does
 * for an invalid backend certificate (526, `endpoint_failure`).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createCsr,
  exportPrivateKeyPem,
  generateKeyPair,
} from "../../lib/pki/mod.ts";
import { freePort } from "../_helpers/ports.ts";
import { openssl, runTool, sigil, SigilProcess } from "../_helpers/proc.ts";

async function mint(caDir: string, subject: string, scope: string) {
  const r = await sigil([
    "ca",
    "token",
    "--dir",
    caDir,
    "--subject",
    subject,
    "--scope",
    scope,
    "--app",
    "*",
    "--space",
    "*",
    "--org",
    "*",
    "--cidr",
    "127.0.0.0/8",
    "--ttl",
    "1h",
  ]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

/** Asks the CA for a certificate; writes <dir>/instance.{crt,key}. */
async function issue(
  caUrl: string,
  client: Deno.HttpClient,
  token: string,
  instance: string,
  dir: string,
): Promise<string> {
  const keys = await generateKeyPair();
  const res = await fetch(`${caUrl}/v1/sign`, {
    client,
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
    },
    body: JSON.stringify({
      csr: await createCsr(keys),
      instance_id: instance,
      app: "app-1",
      space: "space-1",
      org: "org-1",
      ips: ["127.0.0.1"],
    }),
  });
  const body = await res.json();
  assert.equal(res.status, 201, JSON.stringify(body));
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    join(dir, "instance.crt"),
    body.certificate + body.chain,
  );
  await Deno.writeTextFile(
    join(dir, "instance.key"),
    await exportPrivateKeyPem(keys),
    {
      mode: 0o600,
    },
  );
  return body.serial;
}

Deno.test("revocation end to end: after one CRL reload the proxy refuses a revoked client certificate (curl) and the router answers 526 for a revoked backend", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sigil-revoke-e2e-" });
  const caDir = join(dir, "ca");
  const procs: SigilProcess[] = [];
  const app = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response("hello from the app\n"),
  );
  let client: Deno.HttpClient | undefined;
  let held: Deno.ChildProcess | undefined;
  try {
    assert.equal((await sigil(["ca", "init", "--dir", caDir])).code, 0);
    const root = join(caDir, "root.crt");
    const certToken = await mint(caDir, "cell-1", "cert.issue");
    const routesToken = await mint(caDir, "cell-1", "routes.write");
    const caPort = freePort();
    const caUrl = `https://127.0.0.1:${caPort}`;
    await Deno.writeTextFile(
      join(dir, "ca.yaml"),
      `ca:\n  dir: ${caDir}\n  listen: "127.0.0.1:${caPort}"\n  server_ips: ["127.0.0.1"]\n`,
    );
    const ca = new SigilProcess([
      "ca",
      "serve",
      "--config",
      join(dir, "ca.yaml"),
    ]);
    procs.push(ca);
    await ca.waitForEvent("ca-listening");
    client = Deno.createHttpClient({
      caCerts: [await Deno.readTextFile(root)],
    });

    // The backend instance (served by the proxy), the router's client
    // certificate, and one for curl.
    const backendSerial = await issue(
      caUrl,
      client,
      certToken,
      "i-backend",
      join(dir, "backend"),
    );
    await issue(caUrl, client, certToken, "i-router", join(dir, "router"));
    const curlSerial = await issue(
      caUrl,
      client,
      certToken,
      "i-curl",
      join(dir, "curl"),
    );

    const crlBlock = (indent: string) =>
      [
        `${indent}crl:`,
        `${indent}  url: ${caUrl}/v1/crl.pem`,
        `${indent}  ca_bundle: ${root}`,
        `${indent}  refresh: 1s`,
      ].join("\n");
    const proxyPort = freePort();
    const adminPort = freePort();
    const appPort = app.addr.port;
    await Deno.writeTextFile(
      join(dir, "proxy.yaml"),
      [
        "proxy:",
        `  admin_listen: 127.0.0.1:${adminPort}`,
        crlBlock("  "),
        "  instances:",
        "    - id: i-backend",
        `      credentials_dir: ${join(dir, "backend")}`,
        "      mode: mtls",
        `      trusted_client_cas: [${root}]`,
        "      allowed_client_sans: [i-router, i-curl]",
        "      listeners:",
        `        - listen: 127.0.0.1:${proxyPort}`,
        `          app: 127.0.0.1:${appPort}`,
        "",
      ].join("\n"),
    );
    const proxy = new SigilProcess([
      "proxy",
      "--config",
      join(dir, "proxy.yaml"),
    ]);
    procs.push(proxy);
    await proxy.waitForEvent("proxy-started");
    await proxy.waitFor((l) => l.event === "crl-loaded" && l.revoked === 0);

    await Deno.writeTextFile(
      join(dir, "router.yaml"),
      [
        "router:",
        "  drain_wait: 0s",
        "  listen: 127.0.0.1:0",
        "  api:",
        "    listen: 127.0.0.1:0",
        `    jwks_url: ${caUrl}/v1/jwks.json`,
        `    ca_bundle: ${root}`,
        "  backends:",
        "    mode: mtls",
        `    ca: ${root}`,
        `    cert: ${join(dir, "router", "instance.crt")}`,
        `    key: ${join(dir, "router", "instance.key")}`,
        crlBlock("    "),
        "",
      ].join("\n"),
    );
    const router = new SigilProcess([
      "router",
      "--config",
      join(dir, "router.yaml"),
    ]);
    procs.push(router);
    const started = await router.waitForEvent("router-started");
    const routerUrl = `http://127.0.0.1:${started.port}`;
    const reg = await fetch(
      `http://127.0.0.1:${started.api_port}/v1/register`,
      {
        method: "POST",
        headers: { authorization: `Bearer ${routesToken}` },
        body: JSON.stringify({
          host: "127.0.0.1",
          tls_port: proxyPort,
          server_cert_domain_san: "i-backend",
          private_instance_id: "i-backend",
          uris: ["app.example.com"],
        }),
      },
    );
    assert.equal(reg.status, 200, await reg.text());

    // curl: Deno's fetch does not send a Host header of our choosing.
    const viaRouter = async () => {
      const res = await runTool("curl", [
        "-sS",
        "--max-time",
        "20",
        "-H",
        "Host: app.example.com",
        "-w",
        "\n%{http_code}",
        "-D",
        "-",
        `${routerUrl}/`,
      ]);
      assert.equal(res.code, 0, res.stderr);
      const lines = res.stdout.split("\n");
      const status = Number(lines.at(-1));
      const head = res.stdout.slice(0, res.stdout.indexOf("\r\n\r\n"));
      const body = res.stdout.slice(
        head.length + 4,
        res.stdout.lastIndexOf("\n"),
      );
      const error = head.match(/^x-cf-routererror: (.*)$/im)?.[1]?.trim() ??
        null;
      return { status, error, body };
    };
    const viaCurl = () =>
      runTool("curl", [
        "-sS",
        "--max-time",
        "20",
        "--resolve",
        `i-backend:${proxyPort}:127.0.0.1`,
        "--cacert",
        root,
        "--cert",
        join(dir, "curl", "instance.crt"),
        "--key",
        join(dir, "curl", "instance.key"),
        `https://i-backend:${proxyPort}/`,
      ]);

    // Before: both paths work.
    let r = await viaRouter();
    assert.equal(r.status, 200, JSON.stringify(r));
    assert.equal(r.body, "hello from the app\n");
    let c = await viaCurl();
    assert.equal(c.code, 0, c.stderr);
    assert.equal(c.stdout, "hello from the app\n");

    // A connection openssl holds open with that certificate: cut when the
    // reloaded CRL lists it.
    held = new Deno.Command("openssl", {
      args: [
        "s_client",
        "-quiet",
        "-connect",
        `127.0.0.1:${proxyPort}`,
        "-servername",
        "i-backend",
        "-CAfile",
        root,
        "-verify_return_error",
        "-cert",
        join(dir, "curl", "instance.crt"),
        "-key",
        join(dir, "curl", "instance.key"),
        // -cert sends only the leaf; the proxy trusts the root alone.
        "-cert_chain",
        join(dir, "curl", "instance.crt"),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const heldWriter = held.stdin.getWriter();
    await heldWriter.write(
      new TextEncoder().encode("GET / HTTP/1.1\r\nHost: i-backend\r\n\r\n"),
    );
    const heldOut = held.stdout.getReader();
    const first = await heldOut.read();
    if (first.done) {
      throw new Error(
        `openssl s_client ended: ${await new Response(held.stderr).text()}`,
      );
    }
    assert.match(new TextDecoder().decode(first.value), /HTTP\/1\.1 200/);

    // Revoke the client curl uses: the proxy's next reload lists it and the
    // handshake is refused before a byte reaches the app.
    const out = await sigil([
      "ca",
      "revoke",
      "--dir",
      caDir,
      "--instance",
      "i-curl",
    ]);
    assert.equal(out.code, 0, out.stderr);
    await proxy.waitFor((l) => l.event === "crl-loaded" && l.revoked === 1);
    c = await viaCurl();
    assert.notEqual(c.code, 0, "curl must fail with a revoked certificate");
    assert.equal(c.stdout, "");
    const refused = await proxy.waitFor((l) =>
      l.event === "client-refused" && l.reason === "revoked"
    );
    assert.match(String(refused.detail), new RegExp(curlSerial));
    const cut = await proxy.waitFor((l) => l.event === "client-cut-revoked");
    const proxyMetrics = await (await fetch(
      `http://127.0.0.1:${adminPort}/metrics`,
    )).text();
    assert.match(proxyMetrics, /^sigil_proxy_crl_revoked_serials 1$/m);
    assert.match(proxyMetrics, /^sigil_proxy_crl_fetch_failures_total 0$/m);
    assert.match(
      proxyMetrics,
      /^sigil_proxy_handshake_failures_total\{[^}]*reason="revoked"[^}]*\} [1-9]/m,
    );
    assert.equal(cut.serial, curlSerial);
    // openssl sees the connection end (it exits without being asked).
    while (!(await heldOut.read()).done) { /* drain until closed */ }
    await heldWriter.close().catch(() => {});
    await held.stderr.cancel();
    await held.status;
    // The router's own client certificate is not revoked: still 200.
    r = await viaRouter();
    assert.equal(r.status, 200, JSON.stringify(r));

    // openssl, independently: the CA's CRL revokes the backend's
    // certificate once the instance is revoked.
    const revokeBackend = await sigil([
      "ca",
      "revoke",
      "--dir",
      caDir,
      "--instance",
      "i-backend",
      "--reason",
      "cell compromised",
    ]);
    assert.equal(revokeBackend.code, 0, revokeBackend.stderr);
    const crlPem = await (await fetch(`${caUrl}/v1/crl.pem`, { client }))
      .text();
    await Deno.writeTextFile(join(dir, "crl.pem"), crlPem);
    await Deno.writeTextFile(
      join(dir, "chain.pem"),
      await Deno.readTextFile(root) +
        await Deno.readTextFile(join(caDir, "intermediate.crt")),
    );
    const v = await openssl([
      "verify",
      "-crl_check",
      "-CRLfile",
      join(dir, "crl.pem"),
      "-CAfile",
      join(dir, "chain.pem"),
      join(dir, "backend", "instance.crt"),
    ]);
    assert.notEqual(v.code, 0);
    assert.match(v.stdout + v.stderr, /certificate revoked/);

    // The router's next reload: the backend fails the handshake, is pruned,
    // and the client gets gorouter's answer for an invalid certificate.
    await router.waitFor((l) => l.event === "crl-loaded" && l.revoked === 2);
    r = await viaRouter();
    assert.equal(r.status, 526, JSON.stringify(r));
    assert.equal(r.error, "endpoint_failure (CERT_REVOKED)");
    assert.equal(r.body, "526 Invalid SSL Certificate (certificate revoked)\n");
    const routerMetrics = await (await fetch(
      `http://127.0.0.1:${started.api_port}/metrics`,
    )).text();
    assert.match(routerMetrics, /^sigil_router_crl_revoked_serials 2$/m);
    assert.ok(
      router.lines.some((l) => l.includes(backendSerial)),
      "the router's log names the revoked serial",
    );
  } finally {
    try {
      held?.kill();
    } catch {
      // already exited
    }
    client?.close();
    for (const p of procs.reverse()) await p.stop();
    await app.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
