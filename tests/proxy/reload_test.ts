import assert from "node:assert/strict";
import tls from "node:tls";
import { startProxy } from "../../lib/proxy/mod.ts";
import type { RunningProxy } from "../../lib/proxy/mod.ts";
import {
  connectTls,
  createTestPki,
  httpGet,
  memoryLogger,
  proxySection,
  startHttpApp,
  tempDir,
  waitFor,
} from "./_helpers.ts";

const pki = await createTestPki();
const HOUR = 3_600_000;

/** Serial (lowercase hex, no leading zeros) presented to a new handshake. */
function handshakeSerial(port: number, ca = pki.rootPem): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      host: "127.0.0.1",
      port,
      servername: "inst-1",
      ca,
    });
    s.once("secureConnect", () => {
      const serial = s.getPeerCertificate().serialNumber.toLowerCase();
      s.destroy();
      resolve(serial.replace(/^0+/, ""));
    });
    s.once("error", reject);
  });
}

const norm = (serial: string) => serial.toLowerCase().replace(/^0+/, "");

/** Writes v<n>/instance.{crt,key} and swaps `current -> v<n>` atomically. */
async function rotate(dir: string, n: number): Promise<string> {
  const cred = await pki.writeInstance(`${dir}/v${n}`, {
    instanceId: "inst-1",
  });
  await Deno.symlink(`v${n}`, `${dir}/current.tmp`);
  await Deno.rename(`${dir}/current.tmp`, `${dir}/current`);
  return norm(cred.serial);
}

Deno.test("startProxy() picks up 20 symlink-swapped credentials under load without failing a request", async () => {
  const dir = await tempDir();
  const app = startHttpApp();
  await rotate(dir, 0);
  const { logger, lines } = memoryLogger();
  const proxy = await startProxy(
    proxySection({
      admin_listen: "127.0.0.1:0",
      reload_poll_interval: "150ms",
      reload_debounce: "20ms",
      instances: [{
        credentials_dir: `${dir}/current`,
        mode: "tls",
        listeners: [{ listen: "127.0.0.1:0", app: `127.0.0.1:${app.port}` }],
      }],
    }),
    { logger },
  );
  const port = proxy.port("inst-1");
  let stop = false, ok = 0;
  const failures: string[] = [];
  const longLived = await connectTls(port, "inst-1", pki.rootPem);
  try {
    assert.equal(await httpGet(longLived, "/long"), "hello /long");
    // Load: one keep-alive connection and one new connection per request.
    const keepAlive = (async () => {
      const c = await connectTls(port, "inst-1", pki.rootPem);
      while (!stop) {
        try {
          assert.equal(await httpGet(c, "/ka"), "hello /ka");
          ok++;
        } catch (err) {
          failures.push(`keep-alive: ${err}`);
          break;
        }
      }
      c.close();
    })();
    const fresh = (async () => {
      while (!stop) {
        try {
          const c = await connectTls(port, "inst-1", pki.rootPem);
          assert.equal(await httpGet(c, "/new"), "hello /new");
          c.close();
          ok++;
        } catch (err) {
          failures.push(`new connection: ${err}`);
        }
      }
    })();
    for (let i = 1; i <= 20; i++) {
      const serial = await rotate(dir, i);
      await waitFor(
        () => norm(proxy.certs()[0]!.serial) === serial,
        3000,
        `swap ${i} to be picked up`,
      );
      assert.equal(await handshakeSerial(port), serial);
    }
    stop = true;
    await Promise.all([keepAlive, fresh]);
    assert.deepEqual(failures, []);
    assert.ok(ok > 20, `only ${ok} requests went through`);
    assert.equal(await httpGet(longLived, "/long"), "hello /long");
    assert.ok(
      lines.filter((l) => l.event === "credentials-reloaded").length >= 20,
    );
  } finally {
    stop = true;
    longLived.close();
    await proxy.close({ drainTimeoutMs: 0 });
    await app.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

async function brokenSetup() {
  const dir = await tempDir();
  const good = await pki.writeInstance(dir, { instanceId: "inst-1" });
  const app = startHttpApp();
  const { logger, lines } = memoryLogger();
  const proxy: RunningProxy = await startProxy(
    proxySection({
      admin_listen: "127.0.0.1:0",
      instances: [{
        credentials_dir: dir,
        mode: "tls",
        listeners: [{ listen: "127.0.0.1:0", app: `127.0.0.1:${app.port}` }],
      }],
    }),
    { logger, watch: false },
  );
  return {
    dir,
    good,
    proxy,
    lines,
    port: proxy.port("inst-1"),
    async [Symbol.asyncDispose]() {
      await proxy.close({ drainTimeoutMs: 0 });
      await app.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("reload() keeps the old credentials on a truncated key, a mismatched pair or an expired cert", async () => {
  await using p = await brokenSetup();
  const goodSerial = norm(p.good.serial);
  const other = await pki.issueInstance({ instanceId: "inst-1" });
  const expired = await pki.issueInstance({ instanceId: "inst-1" }, {
    now: Date.now() - 3 * HOUR,
    validityMs: HOUR,
  });
  const cases: Array<[string, string, string, RegExp]> = [
    [
      "truncated key",
      p.good.certPem,
      p.good.keyPem.slice(0, 60),
      /cannot be parsed/,
    ],
    [
      "mismatched pair",
      p.good.certPem,
      other.keyPem,
      /key does not match certificate/,
    ],
    ["expired cert", expired.certPem, expired.keyPem, /expired at/],
  ];
  for (const [name, cert, key, why] of cases) {
    await Deno.writeTextFile(`${p.dir}/instance.crt`, cert);
    await Deno.writeTextFile(`${p.dir}/instance.key`, key);
    const [outcome] = await p.proxy.reload();
    assert.equal(outcome!.cert, "error", name);
    assert.match(outcome!.error!, why, name);
    assert.equal(norm(p.proxy.certs()[0]!.serial), goodSerial, name);
    assert.equal(await handshakeSerial(p.port), goodSerial, name);
    const c = await connectTls(p.port, "inst-1", pki.rootPem);
    assert.equal(await httpGet(c, "/still"), "hello /still", name);
    c.close();
  }
  const failed = p.lines.filter((l) => l.event === "credentials-reload-failed");
  assert.equal(failed.length, 3);
  for (const l of failed) {
    assert.equal(l.kept_serial, p.proxy.certs()[0]!.serial);
    assert.doesNotMatch(JSON.stringify(l), /BEGIN|PRIVATE KEY/);
  }
  // A good pair afterwards is served.
  await Deno.writeTextFile(`${p.dir}/instance.crt`, other.certPem);
  await Deno.writeTextFile(`${p.dir}/instance.key`, other.keyPem);
  const [outcome] = await p.proxy.reload();
  assert.equal(outcome!.cert, "ok");
  assert.equal(await handshakeSerial(p.port), norm(other.serial));
});

Deno.test("reload() picks up a new trusted client CA bundle in mtls mode", async () => {
  const dir = await tempDir();
  const otherPki = await createTestPki("other.sigil");
  await pki.writeInstance(`${dir}/creds`, { instanceId: "inst-1" });
  await Deno.writeTextFile(`${dir}/ca.pem`, pki.rootPem);
  const client = await otherPki.issueClient({ dnsNames: ["router.internal"] });
  const app = startHttpApp();
  const proxy = await startProxy(
    proxySection({
      admin_listen: "127.0.0.1:0",
      instances: [{
        credentials_dir: `${dir}/creds`,
        mode: "mtls",
        trusted_client_cas: [`${dir}/ca.pem`],
        allowed_client_sans: ["router.internal"],
        listeners: [{ listen: "127.0.0.1:0", app: `127.0.0.1:${app.port}` }],
      }],
    }),
    { logger: memoryLogger().logger, watch: false },
  );
  const port = proxy.port("inst-1");
  const get = () =>
    new Promise<string>((resolve) => {
      const s = tls.connect({
        host: "127.0.0.1",
        port,
        servername: "inst-1",
        ca: pki.rootPem,
        cert: client.certPem,
        key: client.keyPem,
      });
      let body = "";
      s.on("data", (d) => (body += d));
      s.once("secureConnect", () =>
        s.write("GET /ca HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"));
      s.on("error", () => {});
      s.on("close", () =>
        resolve(body));
      setTimeout(() => s.destroy(), 3000);
    });
  try {
    assert.doesNotMatch(await get(), /hello/);
    await Deno.writeTextFile(`${dir}/ca.pem`, pki.rootPem + otherPki.rootPem);
    const [outcome] = await proxy.reload();
    assert.equal(outcome!.trust, "ok");
    assert.match(await get(), /hello \/ca/);
  } finally {
    await proxy.close({ drainTimeoutMs: 0 });
    await app.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("startProxy() reloads on filesystem events alone (poll off): in-place renames and a symlink swap", async () => {
  const dir = await tempDir();
  const app = startHttpApp();
  await rotate(dir, 0);
  const proxy = await startProxy(
    proxySection({
      admin_listen: "127.0.0.1:0",
      reload_poll_interval: "0",
      reload_debounce: "20ms",
      instances: [{
        credentials_dir: `${dir}/current`,
        mode: "tls",
        listeners: [{ listen: "127.0.0.1:0", app: `127.0.0.1:${app.port}` }],
      }],
    }),
    { logger: memoryLogger().logger },
  );
  try {
    // Symlink swap (the rotator's layout).
    const swapped = await rotate(dir, 1);
    await waitFor(
      () => norm(proxy.certs()[0]!.serial) === swapped,
      3000,
      "symlink swap",
    );
    // In-place atomic renames inside the current directory: key, then cert.
    const next = await pki.issueInstance({ instanceId: "inst-1" });
    await Deno.writeTextFile(`${dir}/v1/instance.key.tmp`, next.keyPem, {
      mode: 0o600,
    });
    await Deno.writeTextFile(`${dir}/v1/instance.crt.tmp`, next.certPem);
    await Deno.rename(`${dir}/v1/instance.key.tmp`, `${dir}/v1/instance.key`);
    await Deno.rename(`${dir}/v1/instance.crt.tmp`, `${dir}/v1/instance.crt`);
    await waitFor(
      () => norm(proxy.certs()[0]!.serial) === norm(next.serial),
      3000,
      "in-place rename",
    );
    assert.equal(
      await handshakeSerial(proxy.port("inst-1")),
      norm(next.serial),
    );
  } finally {
    await proxy.close({ drainTimeoutMs: 0 });
    await app.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
