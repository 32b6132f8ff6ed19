import assert from "node:assert/strict";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { sigil, SigilProcess } from "../_helpers/proc.ts";
import { request, startBackend, testPki } from "./_helpers.ts";

Deno.test("sigil router serves from a config file, drains in-flight requests on SIGTERM and exits 0", async () => {
  const pki = await testPki();
  const dir = await Deno.makeTempDir({ prefix: "sigil-router-cli-" });
  const { publicKey, privateKey } = await generateKeyPair("ES256", {
    extractable: true,
  });
  await Deno.writeTextFile(
    `${dir}/token.jwk`,
    JSON.stringify(await exportJWK(publicKey)),
  );
  await Deno.writeTextFile(`${dir}/ca.pem`, pki.rootPem);
  const front = await pki.issueClient({
    dnsNames: ["localhost"],
    ips: ["127.0.0.1"],
  });
  await Deno.writeTextFile(`${dir}/front.crt`, front.certPem);
  await Deno.writeTextFile(`${dir}/front.key`, front.keyPem, { mode: 0o600 });
  await Deno.writeTextFile(
    `${dir}/sigil.yaml`,
    [
      "router:",
      "  listen: 127.0.0.1:0",
      "  https:",
      "    listen: 127.0.0.1:0",
      `    cert: ${dir}/front.crt`,
      `    key: ${dir}/front.key`,
      "  api:",
      "    listen: 127.0.0.1:0",
      `    public_key_file: ${dir}/token.jwk`,
      "  backends:",
      `    ca: ${dir}/ca.pem`,
      "  drain_wait: 1s",
      "  drain_timeout: 10s",
      "  access_log:",
      `    file: ${dir}/access.log`,
      "",
    ].join("\n"),
  );
  let release: () => void = () => {};
  const held = new Promise<void>((r) => (release = r));
  const slow = await startBackend({
    name: "slow",
    handler: (_req, res) => {
      held.then(() => res.end("finished"));
      return true;
    },
  });
  const proc = new SigilProcess(["router", "--config", `${dir}/sigil.yaml`]);
  try {
    const started = await proc.waitForEvent("router-started");
    const port = Number(started.port);
    const apiPort = Number(started.api_port);
    const httpsPort = Number(started.https_port);
    const health = await fetch(`http://127.0.0.1:${apiPort}/healthz`);
    assert.equal(await health.text(), "ok\n");
    const missing = await request(`http://127.0.0.1:${port}`, "x.example.com");
    assert.equal(missing.status, 404);
    // HTTPS front listener with its own certificate (HTTP/2 from fetch).
    const client = Deno.createHttpClient({ caCerts: [pki.rootPem] });
    // A Host that is the client's own address is 400 empty_host (gorouter).
    const tlsRes = await fetch(`https://localhost:${httpsPort}/`, { client });
    assert.equal(tlsRes.status, 404);
    assert.equal(tlsRes.headers.get("x-cf-routererror"), "unknown_route");
    await tlsRes.body?.cancel();
    client.close();

    const token = await new SignJWT({ scope: "routes.write" })
      .setProtectedHeader({ alg: "ES256" })
      .setIssuer("sigil-ca").setAudience("sigil").setSubject("cli-test")
      .setExpirationTime("5m").sign(privateKey);
    const reg = await fetch(`http://127.0.0.1:${apiPort}/v1/register`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
      body: JSON.stringify({
        host: "127.0.0.1",
        port: slow.port,
        uris: ["slow.example.com"],
      }),
    });
    assert.equal(reg.status, 200);
    await reg.body?.cancel();
    // A request in flight when SIGTERM arrives still completes.
    const inflight = request(`http://127.0.0.1:${port}`, "slow.example.com");
    while (slow.seen.length === 0) await new Promise((r) => setTimeout(r, 10));
    proc.child.kill("SIGTERM");
    await proc.waitForEvent("router-draining");
    const draining = await fetch(`http://127.0.0.1:${apiPort}/healthz`);
    assert.equal(draining.status, 503);
    assert.equal(await draining.text(), "draining\n");
    release();
    const res = await inflight;
    assert.equal(res.status, 200);
    assert.equal(res.text, "finished");
  } finally {
    release();
    const { code } = await proc.stop("SIGTERM");
    assert.equal(code, 0);
    assert.ok(proc.lines.some((l) => l.includes("router-draining")));
    const log = await Deno.readTextFile(`${dir}/access.log`);
    assert.match(log, /"status":404/);
    await slow.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sigil router exits 2 on an invalid router section", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sigil-router-cli-" });
  try {
    await Deno.writeTextFile(
      `${dir}/bad.yaml`,
      "router:\n  listen: nowhere\n  bogus: 1\n",
    );
    const r = await sigil(["router", "--config", `${dir}/bad.yaml`]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /router\.listen/);
    assert.match(r.stderr, /router\.bogus/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sigil router explains that reuse_port needs --unstable-net", async () => {
  const root = new URL("../../", import.meta.url);
  const dir = await Deno.makeTempDir({ prefix: "sigil-router-cli-" });
  try {
    // This project's import map without `"unstable": ["net"]`.
    const project = JSON.parse(
      await Deno.readTextFile(new URL("deno.json", root)),
    );
    await Deno.writeTextFile(
      `${dir}/deno.json`,
      JSON.stringify({
        imports: project.imports,
        nodeModulesDir: "none",
        lock: false,
      }),
    );
    await Deno.writeTextFile(
      `${dir}/sigil.yaml`,
      "router:\n  listen: 127.0.0.1:0\n  reuse_port: true\n  api:\n    enabled: false\n",
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--config",
        `${dir}/deno.json`,
        new URL("main.ts", root).pathname,
        "router",
        "--config",
        `${dir}/sigil.yaml`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 1, stderr);
    assert.match(stderr, /reuse_port needs Deno's --unstable-net flag/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
