/**
 * Drill (issue 20, "Default-deny between instances"): with `mode: mtls`,
 * `trusted_client_cas` = the instance-identity root and no
 * `allowed_client_sans`, every app instance's certificate was accepted by
 * every other instance's proxy, so instance A could bypass the router and
 * call instance B directly. CF pins the router's SAN at the container proxy
 * (diego-release's envoy config); here `allowed_client_sans` is required in
 * mtls mode, and this test shows A's certificate (same CA, same org) refused
 * at B's proxy by curl as an independent client, while the router's
 * certificate (the deploy guide's `sigil ca issue --instance router-1 --app
 * router --space system --org system`) gets through, directly and via a real
 * router.
 */
import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../../lib/config/mod.ts";
import { spiffeId } from "../../lib/pki/mod.ts";
import { startProxy } from "../../lib/proxy/mod.ts";
import { memoryLogger, proxySection, startHttpApp } from "../proxy/_helpers.ts";
import { request, startTestRouter, testPki } from "../router/_helpers.ts";

const yaml = (sans: string) =>
  `proxy:
  instances:
    - credentials_dir: /nonexistent/creds
      mode: mtls
      trusted_client_cas: [/nonexistent/root.pem]
${sans}      listeners: [{ listen: "127.0.0.1:0", app: "127.0.0.1:8080" }]
`;

Deno.test("default deny: mode mtls without allowed_client_sans is a config error that names the router's identity", () => {
  assert.throws(
    () => parseConfig(yaml("")),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(
        err.message,
        /proxy\.instances\.0\.allowed_client_sans: mode "mtls" needs the router's identity here/,
      );
      assert.match(
        err.message,
        /any other app instance could bypass the router/,
      );
      assert.match(err.message, /sigil ca issue --instance router-1/);
      return true;
    },
  );
  parseConfig(yaml(`      allowed_client_sans: ["router-1"]\n`));
});

async function curl(
  dir: string,
  port: number,
  cred: { certPem: string; keyPem: string },
  name: string,
): Promise<{ code: number; body: string; stderr: string }> {
  await Deno.writeTextFile(`${dir}/${name}.crt`, cred.certPem);
  await Deno.writeTextFile(`${dir}/${name}.key`, cred.keyPem, { mode: 0o600 });
  const out = await new Deno.Command("curl", {
    args: [
      "-sS",
      "--max-time",
      "10",
      "--cacert",
      `${dir}/root.pem`,
      "--resolve",
      `inst-b:${port}:127.0.0.1`,
      "--cert",
      `${dir}/${name}.crt`,
      "--key",
      `${dir}/${name}.key`,
      `https://inst-b:${port}/direct`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    body: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

Deno.test("default deny: instance A's certificate (same CA, same org) is refused at instance B's proxy; the router's is accepted, directly and through sigil router", async () => {
  // The router helper's PKI: its root is what the router trusts for backends.
  const pki = await testPki();
  const dir = await Deno.makeTempDir({ prefix: "sigil-deny-" });
  let hits = 0;
  const app = startHttpApp((req) => {
    hits++;
    return `B ${new URL(req.url).pathname}`;
  });
  const { logger, lines } = memoryLogger();
  const routerId = {
    instanceId: "router-1",
    app: "router",
    space: "system",
    org: "system",
  };
  const routerUri = spiffeId(pki.trustDomain, { ...routerId, ips: [] });
  await pki.writeInstance(`${dir}/creds`, { instanceId: "inst-b" });
  await Deno.writeTextFile(`${dir}/root.pem`, pki.rootPem);
  const proxy = await startProxy(
    proxySection({
      instances: [{
        credentials_dir: `${dir}/creds`,
        mode: "mtls",
        trusted_client_cas: [`${dir}/root.pem`],
        allowed_client_sans: [routerUri],
        listeners: [{ listen: "127.0.0.1:0", app: `127.0.0.1:${app.port}` }],
      }],
    }),
    { logger, watch: false },
  );
  const t = await startTestRouter({ backends: { mode: "mtls" } }, {
    clientCred: await pki.issueInstance(routerId),
  });
  try {
    const port = proxy.port("inst-b");
    // Instance A: a valid certificate of the same CA, app and org as B.
    const a = await pki.issueInstance({ instanceId: "inst-a" });
    const refused = await curl(dir, port, a, "inst-a");
    assert.notEqual(refused.code, 0, "curl with A's certificate must fail");
    assert.equal(hits, 0, "no byte of A's request reached B's app");
    await waitForLine(lines, (l) => l.event === "client-refused");
    const refusal = lines.find((l) => l.event === "client-refused");
    assert.equal(refusal?.reason, "san-not-allowed", JSON.stringify(lines));
    // The router's certificate gets in, directly ...
    const direct = await curl(
      dir,
      port,
      await pki.issueInstance(routerId),
      "router",
    );
    assert.equal(direct.code, 0, direct.stderr);
    assert.equal(direct.body, "B /direct");
    // ... and through a real router presenting it (backends.mode: mtls).
    t.router.apply("register", {
      host: "127.0.0.1",
      tls_port: port,
      uris: ["b.test"],
      server_cert_domain_san: "inst-b",
    });
    const via = await request(t.url, "b.test", { path: "/routed" });
    assert.equal(via.status, 200, via.text);
    assert.equal(via.text, "B /routed");
    assert.equal(hits, 2);
  } finally {
    await t.close();
    await proxy.close({ drainTimeoutMs: 0 });
    await app.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

async function waitForLine(
  lines: Record<string, unknown>[],
  pred: (l: Record<string, unknown>) => boolean,
): Promise<void> {
  for (let i = 0; i < 200 && !lines.some(pred); i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
}
