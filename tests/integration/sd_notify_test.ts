/**
 * systemd `Type=notify` (sd_notify(3)): each long-running role sends READY=1
 * once it serves, WATCHDOG=1 every half $WATCHDOG_USEC, STOPPING=1 when it
 * starts to drain. The test is systemd's side: a real unix datagram socket
 * named by NOTIFY_SOCKET.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { exportJWK, generateKeyPair } from "jose";
import { sigil, SigilProcess } from "../_helpers/proc.ts";
import { freePort } from "../_helpers/ports.ts";
import { NotifySocket } from "../_helpers/notify.ts";
import { createTestPki } from "../_helpers/pki.ts";

/** Connects to 127.0.0.1:port once; true when something accepted. */
async function accepts(port: number): Promise<boolean> {
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    c.close();
    return true;
  } catch {
    return false;
  }
}

/** Writes a token-verification public key (JWK) to `<dir>/token.jwk`. */
async function writeTokenKey(dir: string): Promise<void> {
  const { publicKey } = await generateKeyPair("ES256", { extractable: true });
  await Deno.writeTextFile(
    join(dir, "token.jwk"),
    JSON.stringify(await exportJWK(publicKey)),
  );
}

/** Runs `fn` with a fresh temporary directory, removed afterwards. */
async function inTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Writes `yaml` to `<dir>/sigil.yaml` and runs `sigil <command> --config` it through {@linkcode assertLifecycle}. */
async function lifecycle(
  dir: string,
  command: string[],
  port: number,
  yaml: string,
): Promise<void> {
  const file = join(dir, "sigil.yaml");
  await Deno.writeTextFile(file, yaml);
  await assertLifecycle([...command, "--config", file], port);
}

/** READY=1 with the port already accepting, WATCHDOG=1, STOPPING=1 on SIGTERM, exit 0. */
async function assertLifecycle(
  args: string[],
  port: number,
): Promise<void> {
  const notify = await NotifySocket.open();
  const proc = new SigilProcess(args, {
    env: { NOTIFY_SOCKET: notify.path, WATCHDOG_USEC: "400000" },
  });
  try {
    await notify.waitFor("READY=1");
    assert.ok(
      await accepts(port),
      `127.0.0.1:${port} accepts connections when READY=1 arrives`,
    );
    const ready = notify.received.findIndex((n) => n.text === "READY=1");
    assert.equal(ready, 0, "READY=1 is the first message");
    await notify.waitFor("WATCHDOG=1");
    assert.ok(
      notify.received.findIndex((n) => n.text === "WATCHDOG=1") > ready,
    );
    assert.equal(
      notify.received.some((n) => n.text === "STOPPING=1"),
      false,
    );
    proc.child.kill("SIGTERM");
    await notify.waitFor("STOPPING=1");
    const { code } = await proc.stop();
    assert.equal(code, 0, proc.lines.join("\n"));
  } finally {
    await proc.stop();
    await notify.close();
  }
}

Deno.test("ca serve: READY=1 on NOTIFY_SOCKET only once its port accepts, WATCHDOG=1 with WATCHDOG_USEC, STOPPING=1 on SIGTERM", async () => {
  await inTempDir(async (dir) => {
    const caDir = join(dir, "ca");
    assert.equal((await sigil(["ca", "init", "--dir", caDir])).code, 0);
    const port = freePort();
    await lifecycle(
      dir,
      ["ca", "serve"],
      port,
      `ca:\n  dir: ${caDir}\n  listen: "127.0.0.1:${port}"\n`,
    );
  });
});

Deno.test("router: READY=1 on NOTIFY_SOCKET only once its ports accept, WATCHDOG=1, STOPPING=1 when the drain starts", async () => {
  await inTempDir(async (dir) => {
    await writeTokenKey(dir);
    const port = freePort();
    await lifecycle(
      dir,
      ["router"],
      port,
      [
        "router:",
        "  drain_wait: 0s",
        `  listen: 127.0.0.1:${port}`,
        "  api:",
        "    listen: 127.0.0.1:0",
        `    public_key_file: ${join(dir, "token.jwk")}`,
        "  access_log:",
        "    enabled: false",
        "  drain_timeout: 1s",
        "",
      ].join("\n"),
    );
  });
});

Deno.test("without NOTIFY_SOCKET nothing is sent and the role runs as before", async () => {
  await inTempDir(async (dir) => {
    const caDir = join(dir, "ca");
    assert.equal((await sigil(["ca", "init", "--dir", caDir])).code, 0);
    const port = freePort();
    await Deno.writeTextFile(
      join(dir, "sigil.yaml"),
      `ca:\n  dir: ${caDir}\n  listen: "127.0.0.1:${port}"\n`,
    );
    const proc = new SigilProcess([
      "ca",
      "serve",
      "--config",
      join(dir, "sigil.yaml"),
    ]);
    await proc.waitForEvent("ca-listening");
    const { code } = await proc.stop();
    assert.equal(code, 0);
    assert.ok(!proc.lines.some((l) => l.includes("sd-notify-failed")));
  });
});

Deno.test("proxy started before the first issuance waits (no READY=1, port closed), then serves and sends READY=1 once the credentials arrive; STOPPING=1 on SIGTERM", async () => {
  const dir = await Deno.makeTempDir();
  const notify = await NotifySocket.open();
  let proc: SigilProcess | undefined;
  try {
    const creds = join(dir, "creds");
    await Deno.mkdir(creds);
    const port = freePort();
    await Deno.writeTextFile(
      join(dir, "sigil.yaml"),
      [
        "proxy:",
        "  admin_listen: 127.0.0.1:0",
        "  instances:",
        "    - id: i-notify",
        "      mode: tls",
        `      credentials_dir: ${creds}`,
        "      listeners:",
        `        - listen: 127.0.0.1:${port}`,
        `          app: 127.0.0.1:${freePort()}`,
        "",
      ].join("\n"),
    );
    proc = new SigilProcess(["proxy", "--config", join(dir, "sigil.yaml")], {
      env: { NOTIFY_SOCKET: notify.path },
    });
    const awaited = await proc.waitForEvent("credentials-awaited");
    assert.match(String(awaited.error), /instance\.crt|certificate/);
    assert.equal(notify.received.length, 0, "no READY=1 without credentials");
    assert.equal(await accepts(port), false);
    assert.equal(proc.lines.some((l) => l.includes("start-failed")), false);

    const pki = await createTestPki();
    await pki.writeInstance(creds, { instanceId: "i-notify" });
    await notify.waitFor("READY=1");
    assert.ok(await accepts(port), "the TLS port accepts at READY=1");
    await proc.waitForEvent("credentials-arrived");
    proc.child.kill("SIGTERM");
    await notify.waitFor("STOPPING=1");
    assert.equal((await proc.stop()).code, 0);
  } finally {
    await proc?.stop();
    await notify.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("rotator: READY=1 once its metrics listener accepts (even while the CA is down), WATCHDOG=1, STOPPING=1 on SIGTERM", async () => {
  await inTempDir(async (dir) => {
    const caDir = join(dir, "ca");
    assert.equal((await sigil(["ca", "init", "--dir", caDir])).code, 0);
    await Deno.writeTextFile(join(dir, "cell.jwt"), "not-used-yet\n", {
      mode: 0o600,
    });
    const port = freePort();
    await lifecycle(
      dir,
      ["rotator"],
      port,
      [
        "rotator:",
        `  ca_url: https://127.0.0.1:${freePort()}`,
        `  ca_bundle: ${join(caDir, "root.crt")}`,
        `  token_file: ${join(dir, "cell.jwt")}`,
        `  metrics_listen: 127.0.0.1:${port}`,
        "  instances:",
        "    - instance_id: i-rot",
        "      app: a",
        "      space: s",
        "      org: o",
        `      dir: ${join(dir, "i-rot")}`,
        "",
      ].join("\n"),
    );
  });
});

Deno.test("credhub: READY=1 once its HTTPS port accepts, WATCHDOG=1, STOPPING=1 on SIGTERM", async () => {
  await inTempDir(async (dir) => {
    const pki = await createTestPki();
    const server = await pki.issueClient({
      dnsNames: ["localhost"],
      ips: ["127.0.0.1"],
    });
    await Deno.writeTextFile(join(dir, "server.crt"), server.certPem);
    await Deno.writeTextFile(join(dir, "server.key"), server.keyPem, {
      mode: 0o600,
    });
    await Deno.writeTextFile(join(dir, "ca.crt"), pki.rootPem);
    await writeTokenKey(dir);
    const port = freePort();
    await lifecycle(
      dir,
      ["credhub"],
      port,
      [
        "credhub:",
        `  listen: 127.0.0.1:${port}`,
        `  database: ${join(dir, "ch.db")}`,
        `  keys_dir: ${join(dir, "keys")}`,
        `  tls_cert_file: ${join(dir, "server.crt")}`,
        `  tls_key_file: ${join(dir, "server.key")}`,
        `  trusted_cas_file: ${join(dir, "ca.crt")}`,
        `  public_key_file: ${join(dir, "token.jwk")}`,
        "",
      ].join("\n"),
    );
  });
});
