/**
 * NATS with TLS: a proxy (`register.nats.tls_ca`) registers through a TLS
 * nats-server with a router (`router.nats.tls_ca`).
 */
import assert from "node:assert/strict";
import { startProxy } from "../../lib/proxy/mod.ts";
import { findNatsServer, startNatsServer } from "../_helpers/nats.ts";
import { memoryLogger, proxySection } from "../proxy/_helpers.ts";
import { startTestRouter, testPki } from "./_helpers.ts";

async function waitFor(
  what: string,
  cond: () => boolean,
  ms = 10_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

Deno.test({
  name:
    "router with nats.tls_ca receives a proxy's registration (register.nats.tls_ca) through a TLS nats-server",
  ignore: findNatsServer() === undefined,
  async fn() {
    const pki = await testPki();
    const server = await pki.issueClient({
      commonName: "nats",
      ips: ["127.0.0.1"],
      dnsNames: ["localhost"],
    });
    const dir = await Deno.makeTempDir({ prefix: "sigil-router-nats-tls-" });
    try {
      await Deno.writeTextFile(`${dir}/nats.crt`, server.certPem);
      await Deno.writeTextFile(`${dir}/nats.key`, server.keyPem);
      await Deno.writeTextFile(`${dir}/ca.pem`, pki.rootPem);
      await using nats = await startNatsServer({
        args: [
          "--tls",
          "--tlscert",
          `${dir}/nats.crt`,
          "--tlskey",
          `${dir}/nats.key`,
        ],
      });
      // A nats:// URL: the CA alone turns TLS on (the server requires it).
      const servers = [nats.url];
      const t = await startTestRouter({
        nats: { servers, tls_ca: `${dir}/ca.pem` },
        id: "router-tls",
      });
      // Without tls_ca the router cannot talk to this server.
      const plain = await startTestRouter({ nats: { servers } });
      await pki.writeInstance(`${dir}/creds`, { instanceId: "inst-tls" });
      const proxy = await startProxy(
        proxySection({
          admin_listen: "127.0.0.1:0",
          instances: [{
            credentials_dir: `${dir}/creds`,
            mode: "tls",
            listeners: [{ listen: "127.0.0.1:0", app: "127.0.0.1:9" }],
            register: {
              routes: ["nats-tls.example.com"],
              host: "127.0.0.1",
              nats: { servers, tls_ca: `${dir}/ca.pem` },
            },
          }],
        }),
        { watch: false, admin: false, logger: memoryLogger().logger },
      );
      try {
        await waitFor(
          "the registration over TLS NATS",
          () => t.router.registry.endpointCount === 1,
        );
        const routes = t.router.registry.toJson();
        const eps = routes["nats-tls.example.com"];
        assert.ok(eps, "the route is in the table");
        assert.equal(eps[0]!.server_cert_domain_san, "inst-tls");
        assert.equal(eps[0]!.address, `127.0.0.1:${proxy.port("inst-tls")}`);
        assert.equal(eps[0]!.tls, true);
        assert.ok(
          t.logs.some((l) => l.event === "router-start-published"),
          "the TLS router published router.start",
        );
        assert.equal(plain.router.registry.endpointCount, 0);
        assert.ok(
          !plain.logs.some((l) => l.event === "router-start-published"),
          "the router without tls_ca never connected",
        );
      } finally {
        await proxy.close({ drainTimeoutMs: 0 });
        await plain.close();
        await t.close();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
