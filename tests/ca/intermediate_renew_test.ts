/**
 * `sigil ca intermediate renew` (issue 15): a full overlap of the old and the
 * new intermediate with short lifetimes, over real TLS. The proxy (node:tls)
 * serves a leaf of one intermediate, curl (OpenSSL) presents a client leaf
 * of the other, both trusting only /v1/bundle.pem; openssl verifies each
 * chain; the proxy switches its certificate to the new intermediate while
 * clients of both keep connecting.
 */
import assert from "node:assert/strict";
import { request } from "node:https";
import { join } from "node:path";
import {
  createCsr,
  exportPrivateKeyPem,
  generateKeyPair,
  parseCertificate,
} from "../../lib/pki/mod.ts";
import { loadCa, renewIntermediate } from "../../lib/ca/mod.ts";
import { startProxy } from "../../lib/proxy/mod.ts";
import { openssl, sigil, SigilProcess } from "../_helpers/proc.ts";
import { memoryLogger, proxySection, startHttpApp } from "../proxy/_helpers.ts";

interface Leaf {
  /** Leaf then the chain the CA returned. */
  certPem: string;
  keyPem: string;
  chainPem: string;
  serial: string;
}

async function signLeaf(
  url: string,
  client: Deno.HttpClient,
  token: string,
  instanceId: string,
): Promise<Leaf> {
  const keys = await generateKeyPair();
  const res = await fetch(`${url}/v1/sign`, {
    client,
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
    },
    body: JSON.stringify({
      csr: await createCsr(keys),
      instance_id: instanceId,
      app: "a",
      space: "s",
      org: "o",
      ips: ["127.0.0.1"],
      validity: "10m",
    }),
  });
  assert.equal(res.status, 201, await res.clone().text());
  const j = await res.json();
  return {
    certPem: j.certificate + j.chain,
    keyPem: await exportPrivateKeyPem(keys),
    chainPem: j.chain,
    serial: j.serial,
  };
}

async function serveCa(config: string) {
  const p = new SigilProcess(["ca", "serve", "--config", config]);
  const l = await p.waitForEvent("ca-listening");
  return { p, url: `https://${l.address}` };
}

async function curlGet(
  port: number,
  bundle: string,
  cert: string,
  key: string,
): Promise<{ code: number; body: string; err: string }> {
  const out = await new Deno.Command("curl", {
    args: [
      "-sS",
      "--max-time",
      "20",
      "--cacert",
      bundle,
      "--cert",
      cert,
      "--key",
      key,
      "--resolve",
      `inst-1:${port}:127.0.0.1`,
      `https://inst-1:${port}/overlap`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    body: dec.decode(out.stdout),
    err: dec.decode(out.stderr),
  };
}

/** A GET as the router's backend client makes it (node:https, ca + client cert). */
function nodeGet(
  port: number,
  ca: string,
  cert: string,
  key: string,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: "127.0.0.1",
      port,
      path: "/node",
      servername: "inst-1",
      ca,
      cert,
      key,
      agent: false,
      timeout: 20_000,
    }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve(`${res.statusCode} ${body}`));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
    req.end();
  });
}

Deno.test("sigil ca intermediate renew: old and new intermediates overlap; every handshake across the switch succeeds and openssl verifies both chains against /v1/bundle.pem", async () => {
  const dir = await Deno.makeTempDir();
  let ca: { p: SigilProcess; url: string } | undefined;
  const app = startHttpApp();
  try {
    const caDir = join(dir, "ca");
    const rootKey = join(dir, "offline-root.key");
    const init = await sigil([
      "ca",
      "init",
      "--dir",
      caDir,
      "--intermediate-validity",
      "2h",
      "--root-key-out",
      rootKey,
    ]);
    assert.equal(init.code, 0, init.stderr);
    const tok = await sigil([
      "ca",
      "token",
      "--dir",
      caDir,
      "--subject",
      "cell-1",
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
    assert.equal(tok.code, 0, tok.stderr);
    const token = tok.stdout.trim();
    const config = join(dir, "sigil.yaml");
    await Deno.writeTextFile(
      config,
      `ca:\n  dir: ${caDir}\n  listen: "127.0.0.1:0"\n`,
    );
    const rootPem = await Deno.readTextFile(join(caDir, "root.crt"));
    const http = Deno.createHttpClient({ caCerts: [rootPem] });
    try {
      // Before the renewal: leaves of the old intermediate.
      ca = await serveCa(config);
      const oldInter = await Deno.readTextFile(join(caDir, "intermediate.crt"));
      const oldServer = await signLeaf(ca.url, http, token, "inst-1");
      const oldClient = await signLeaf(ca.url, http, token, "client-old");
      assert.equal(oldServer.chainPem, oldInter);
      await ca.p.stop();
      ca = undefined;

      // Without the root key the renewal names what is missing.
      const noKey = await sigil([
        "ca",
        "intermediate",
        "renew",
        "--dir",
        caDir,
      ]);
      assert.equal(noKey.code, 2, noKey.stderr);
      assert.match(noKey.stderr, /--root-key PATH/);
      const wrongKey = join(dir, "wrong.key");
      await Deno.writeTextFile(
        wrongKey,
        await exportPrivateKeyPem(await generateKeyPair()),
      );
      const wrong = await sigil([
        "ca",
        "intermediate",
        "renew",
        "--dir",
        caDir,
        "--root-key",
        wrongKey,
      ]);
      assert.equal(wrong.code, 1);
      assert.match(wrong.stderr, /does not belong to this certificate/);

      const renew = await sigil([
        "ca",
        "intermediate",
        "renew",
        "--dir",
        caDir,
        "--root-key",
        rootKey,
        "--validity",
        "3h",
      ]);
      assert.equal(renew.code, 0, renew.stderr);
      assert.match(renew.stdout, /previous, served until/);
      const oldSerial = parseCertificate(oldInter).serial;
      assert.equal(
        await Deno.readTextFile(join(caDir, `intermediate-${oldSerial}.crt`)),
        oldInter,
      );
      const newInter = await Deno.readTextFile(join(caDir, "intermediate.crt"));
      assert.notEqual(newInter, oldInter);

      // After: the restarted CA issues from the new intermediate.
      ca = await serveCa(config);
      const newServer = await signLeaf(ca.url, http, token, "inst-1");
      const newClient = await signLeaf(ca.url, http, token, "client-new");
      assert.equal(newServer.chainPem, newInter);
      assert.equal(newClient.chainPem, newInter);
      const bundle = await (await fetch(`${ca.url}/v1/bundle.pem`, {
        client: http,
      })).text();
      assert.equal(bundle, rootPem);
      const inters = await (await fetch(`${ca.url}/v1/intermediates.pem`, {
        client: http,
      })).text();
      assert.equal(inters, newInter + oldInter);
      const metrics = await (await fetch(`${ca.url}/metrics`, {
        client: http,
      })).text();
      assert.match(
        metrics,
        new RegExp(
          `^sigil_ca_previous_intermediate_not_after_timestamp_seconds\\{serial="${oldSerial}"\\} ${
            Math.floor(parseCertificate(oldInter).notAfter.getTime() / 1000)
          }$`,
          "m",
        ),
      );
      assert.match(
        metrics,
        new RegExp(
          `^sigil_ca_intermediate_not_after_timestamp_seconds ${
            Math.floor(parseCertificate(newInter).notAfter.getTime() / 1000)
          }$`,
          "m",
        ),
      );

      const files: Record<string, { cert: string; key: string }> = {};
      for (
        const [name, leaf] of Object.entries({
          oldServer,
          oldClient,
          newServer,
          newClient,
        })
      ) {
        files[name] = {
          cert: join(dir, `${name}.crt`),
          key: join(dir, `${name}.key`),
        };
        await Deno.writeTextFile(files[name]!.cert, leaf.certPem);
        await Deno.writeTextFile(files[name]!.key, leaf.keyPem);
        await Deno.writeTextFile(join(dir, `${name}.leaf`), leaf.certPem);
        await Deno.writeTextFile(join(dir, `${name}.chain`), leaf.chainPem);
      }
      await Deno.writeTextFile(join(dir, "bundle.pem"), bundle);
      await Deno.writeTextFile(join(dir, "intermediates.pem"), inters);
      for (const name of Object.keys(files)) {
        // Each leaf with the chain it came with, and with /v1/intermediates.pem.
        for (const untrusted of [`${name}.chain`, "intermediates.pem"]) {
          const v = await openssl([
            "verify",
            "-CAfile",
            join(dir, "bundle.pem"),
            "-untrusted",
            join(dir, untrusted),
            join(dir, `${name}.leaf`),
          ]);
          assert.equal(v.code, 0, `${name} with ${untrusted}: ${v.stderr}`);
        }
      }
      // The chains really differ: an old leaf does not verify with only the new intermediate.
      const cross = await openssl([
        "verify",
        "-CAfile",
        join(dir, "bundle.pem"),
        "-untrusted",
        join(dir, "newServer.chain"),
        join(dir, "oldServer.leaf"),
      ]);
      assert.notEqual(cross.code, 0);

      // Real TLS: the proxy serves the old-intermediate leaf, requires a
      // client certificate chaining to the bundle.
      const creds = join(dir, "creds");
      await Deno.mkdir(creds);
      await Deno.writeTextFile(join(creds, "instance.crt"), oldServer.certPem);
      await Deno.writeTextFile(join(creds, "instance.key"), oldServer.keyPem, {
        mode: 0o600,
      });
      const { logger } = memoryLogger();
      const proxy = await startProxy(
        proxySection({
          admin_listen: "127.0.0.1:0",
          instances: [{
            credentials_dir: creds,
            mode: "mtls",
            trusted_client_cas: [join(dir, "bundle.pem")],
            allowed_client_sans: ["client-*"],
            listeners: [{
              listen: "127.0.0.1:0",
              app: `127.0.0.1:${app.port}`,
            }],
          }],
        }),
        { logger, watch: false },
      );
      try {
        const port = proxy.port("inst-1");
        const round = async (when: string) => {
          for (const c of ["oldClient", "newClient"]) {
            const r = await curlGet(
              port,
              join(dir, "bundle.pem"),
              files[c]!.cert,
              files[c]!.key,
            );
            assert.equal(r.code, 0, `${when}, ${c}: ${r.err}`);
            assert.equal(r.body, "hello /overlap", `${when}, ${c}`);
            const leaf = c === "oldClient" ? oldClient : newClient;
            assert.equal(
              await nodeGet(port, bundle, leaf.certPem, leaf.keyPem),
              "200 hello /node",
              `${when}, ${c} (node:https)`,
            );
          }
        };
        await round("proxy with the old intermediate's leaf");
        // The switch: the proxy's leaf is renewed under the new intermediate
        // while clients of both keep handshaking.
        let switching = true;
        const during = (async () => {
          let n = 0;
          while (switching && n < 20) {
            await round(`during the switch (${n++})`);
          }
          return n;
        })();
        await Deno.writeTextFile(
          join(creds, "instance.crt.tmp"),
          newServer.certPem,
        );
        await Deno.writeTextFile(
          join(creds, "instance.key.tmp"),
          newServer.keyPem,
          { mode: 0o600 },
        );
        await Deno.rename(
          join(creds, "instance.key.tmp"),
          join(creds, "instance.key"),
        );
        await Deno.rename(
          join(creds, "instance.crt.tmp"),
          join(creds, "instance.crt"),
        );
        const [outcome] = await proxy.reload();
        assert.equal(outcome?.cert, "ok", outcome?.error);
        assert.equal(outcome?.serial, newServer.serial);
        switching = false;
        assert.ok((await during) >= 1);
        await round("proxy with the new intermediate's leaf");
        // The client side verified the server chain (curl --cacert bundle):
        // the served leaf is now the new one.
        const served = await openssl([
          "s_client",
          "-connect",
          `127.0.0.1:${port}`,
          "-servername",
          "inst-1",
          "-CAfile",
          join(dir, "bundle.pem"),
          "-cert",
          files.oldClient!.cert,
          "-key",
          files.oldClient!.key,
          "-verify_return_error",
        ], "");
        // (s_client exits 1 on the proxy's EOF after the empty stdin.)
        assert.match(
          served.stdout,
          /Verify return code: 0 \(ok\)/,
          served.stderr,
        );
        // Only the renewed intermediate's name carries its date.
        assert.match(
          served.stdout,
          /i:CN ?= ?Sigil Intermediate CA \(sigil\.internal\) \d{4}-\d\d-\d\d/,
        );
      } finally {
        await proxy.close({ drainTimeoutMs: 0 });
      }
    } finally {
      http.close();
    }

    // Once the old intermediate has expired it is no longer served, and the
    // next renewal removes its file.
    const now = await loadCa(caDir);
    assert.equal(now.previousIntermediates.length, 1);
    const prev = now.previousIntermediates[0]!;
    const afterExpiry = await loadCa(caDir, {
      now: prev.notAfter.getTime() + 1000,
    });
    assert.equal(afterExpiry.previousIntermediates.length, 0);
    const again = await renewIntermediate(caDir, {
      rootKeyPem: await Deno.readTextFile(rootKey),
      now: prev.notAfter.getTime() + 1000,
    });
    assert.deepEqual(again.removed, [`intermediate-${prev.serial}.crt`]);
    assert.equal(again.store.previousIntermediates.length, 1);
  } finally {
    await ca?.p.stop();
    await app.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
