import assert from "node:assert/strict";
import { freePort } from "../_helpers/ports.ts";
import { ListenError, startProxy } from "../../lib/proxy/mod.ts";
import {
  connectTls,
  createTestPki,
  httpGet,
  memoryLogger,
  proxySection,
  readAll,
  startHttpApp,
  startTcpApp,
  tempDir,
  waitFor,
  writeAll,
} from "./_helpers.ts";

const pki = await createTestPki();

async function setup(appPort: number, extra: Record<string, unknown> = {}) {
  const dir = await tempDir();
  const cred = await pki.writeInstance(dir, { instanceId: "inst-1" });
  const { logger, lines } = memoryLogger();
  const proxy = await startProxy(
    proxySection({
      admin_listen: "127.0.0.1:0",
      ...extra,
      instances: [{
        credentials_dir: dir,
        mode: "tls",
        listeners: [{ listen: "127.0.0.1:0", app: `127.0.0.1:${appPort}` }],
      }],
    }),
    { logger, watch: false },
  );
  const port = proxy.port("inst-1");
  return {
    proxy,
    port,
    lines,
    cred,
    async [Symbol.asyncDispose]() {
      await proxy.close({ drainTimeoutMs: 0 });
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("startProxy() forwards HTTP over TLS with keep-alive and names the instance id from the certificate", async () => {
  await using app = startHttpApp();
  await using p = await setup(app.port);
  assert.deepEqual(p.proxy.instances.map((i) => i.id), ["inst-1"]);
  const conn = await connectTls(p.port, "inst-1", pki.rootPem);
  try {
    for (let i = 0; i < 5; i++) {
      assert.equal(await httpGet(conn, `/r${i}`), `hello /r${i}`);
    }
    const st = p.proxy.stats().instances[0]!.listeners[0]!;
    assert.equal(st.active, 1);
    assert.equal(st.total, 1);
    assert.ok(st.bytes_client_to_app > 0 && st.bytes_app_to_client > 0);
  } finally {
    conn.close();
  }
  await waitFor(() => p.proxy.stats().instances[0]!.listeners[0]!.active === 0);
});

// Payload under the 1 MiB read-ahead: Deno's node:tls loses a client EOF that
// arrives while the TLS socket is paused (see the proxy README).
Deno.test("startProxy() passes half-close through: the app sees EOF and still answers", async () => {
  const app = await startTcpApp((s) => {
    let n = 0;
    s.on("data", (d) => (n += d.length));
    s.on("end", () => s.end(`got ${n} bytes`));
  });
  try {
    await using p = await setup(app.port);
    const conn = await connectTls(p.port, "inst-1", pki.rootPem);
    const payload = new Uint8Array(200_000).fill(7);
    await writeAll(conn, payload);
    await conn.closeWrite();
    assert.equal(await readAll(conn), "got 200000 bytes");
    conn.close();
  } finally {
    await app.close();
  }
});

Deno.test("startProxy() moves bulk data both ways with backpressure intact", async () => {
  const app = await startTcpApp((s) => {
    s.pipe(s); // echo
  });
  try {
    await using p = await setup(app.port);
    const conn = await connectTls(p.port, "inst-1", pki.rootPem);
    const size = 8 * 1024 * 1024;
    const chunk = new Uint8Array(65536);
    for (let i = 0; i < chunk.length; i++) chunk[i] = i & 0xff;
    const writer = (async () => {
      for (let sent = 0; sent < size; sent += chunk.length) {
        await writeAll(conn, chunk);
      }
    })();
    // A failing read must fail this test, not leave the writer's rejection
    // dangling (it is awaited below).
    writer.catch(() => {});
    let got = 0;
    let ok = true;
    const buf = new Uint8Array(65536);
    while (got < size) {
      const n = await conn.read(buf);
      if (n === null) break;
      for (let i = 0; i < n; i += 4099) {
        if (buf[i] !== ((got + i) & 0xff)) ok = false;
      }
      got += n;
    }
    await writer;
    conn.close();
    assert.equal(got, size);
    assert.ok(ok, "echoed bytes differ");
  } finally {
    await app.close();
  }
});

Deno.test("startProxy() closes the client and counts it when the app refuses", async () => {
  const deadPort = freePort();
  await using p = await setup(deadPort);
  const conn = await connectTls(p.port, "inst-1", pki.rootPem);
  await conn.write(new TextEncoder().encode("hello"));
  assert.equal(await readAll(conn).catch(() => ""), "");
  conn.close();
  await waitFor(() =>
    p.proxy.stats().instances[0]!.listeners[0]!.app_connect_failures.refused ===
      1
  );
  assert.ok(p.lines.some((l) => l.event === "app-connect-failed"));
  assert.equal(await p.proxy.ready(), false);
});

Deno.test("startProxy() closes idle connections after idle_timeout", async () => {
  const app = await startTcpApp(() => {});
  try {
    await using p = await setup(app.port, { idle_timeout: "200ms" });
    const conn = await connectTls(p.port, "inst-1", pki.rootPem);
    await conn.write(new TextEncoder().encode("x"));
    const t0 = Date.now();
    assert.equal(await readAll(conn).catch(() => ""), "");
    assert.ok(Date.now() - t0 >= 150);
    conn.close();
    await waitFor(() =>
      p.proxy.stats().instances[0]!.listeners[0]!.idle_timeouts === 1
    );
  } finally {
    await app.close();
  }
});

// The proxy runs as `sigil proxy` in its own process so that only its fds are
// counted (`deno test --parallel` runs other test files in this process).
Deno.test("sigil proxy leaks no file descriptors over 2,000 app-closed connections", async () => {
  const app = await startTcpApp((s) => {
    s.once(
      "data",
      () => s.end("HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok"),
    );
  });
  const dir = await tempDir();
  await pki.writeInstance(`${dir}/creds`, { instanceId: "inst-1" });
  const port = freePort();
  await Deno.writeTextFile(
    `${dir}/sigil.yaml`,
    [
      "proxy:",
      "  admin_listen: 127.0.0.1:0",
      // A loaded machine may take longer than the 250 ms default to connect
      // to the app; a timeout here would close the client without an answer.
      "  connect_timeout: 10s",
      "  instances:",
      `    - credentials_dir: ${dir}/creds`,
      "      mode: tls",
      `      listeners: [{ listen: "127.0.0.1:${port}", app: "127.0.0.1:${app.port}" }]`,
    ].join("\n"),
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", "proxy", "--config", `${dir}/sigil.yaml`],
    cwd: new URL("../../", import.meta.url).pathname,
    stdout: "null",
    stderr: "null",
  }).spawn();
  const fds = () => [...Deno.readDirSync(`/proc/${child.pid}/fd`)].length;
  try {
    await waitFor(
      async () => {
        try {
          (await Deno.connect({ hostname: "127.0.0.1", port })).close();
          return true;
        } catch {
          return false;
        }
      },
      15_000,
      "sigil proxy to listen",
    );
    let completed = 0;
    const once = async () => {
      const conn = await connectTls(port, "inst-1", pki.rootPem);
      await writeAll(conn, new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n"));
      const text = await readAll(conn);
      conn.close();
      if (text.endsWith("ok")) completed++;
    };
    for (let i = 0; i < 50; i++) await once(); // warm up
    await waitFor(() => app.sockets.size === 0);
    const before = fds();
    completed = 0;
    for (let round = 0; round < 40; round++) {
      await Promise.all(Array.from({ length: 50 }, once));
    }
    assert.equal(completed, 2000);
    await waitFor(() => fds() <= before + 3, 3000).catch(() => {});
    const after = fds();
    assert.ok(
      after <= before + 3,
      `proxy fd count grew from ${before} to ${after} after 2,000 connections`,
    );
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await app.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("close() stops accepting, lets a live connection finish, and cuts it at the drain timeout", async () => {
  await using app = startHttpApp();
  const p = await setup(app.port);
  const live = await connectTls(p.port, "inst-1", pki.rootPem);
  const cut = await connectTls(p.port, "inst-1", pki.rootPem);
  assert.equal(await httpGet(live, "/a"), "hello /a");
  assert.equal(await httpGet(cut, "/b"), "hello /b");
  const t0 = Date.now();
  const closing = p.proxy.close({ drainTimeoutMs: 600 });
  await new Promise((r) => setTimeout(r, 100));
  // New connections are refused while the live ones keep working.
  await assert.rejects(
    Deno.connect({ hostname: "127.0.0.1", port: p.port }).then((c) =>
      c.close()
    ),
  );
  assert.equal(await httpGet(live, "/c"), "hello /c");
  live.close();
  await closing;
  const took = Date.now() - t0;
  assert.ok(took >= 550, `drained in ${took}ms, before the drain timeout`);
  assert.equal(await readAll(cut).catch(() => ""), "");
  cut.close();
  assert.ok(p.lines.some((l) => l.event === "proxy-drain-timeout"));
  await p[Symbol.asyncDispose]();
});

Deno.test("startProxy() counts plaintext, too-old TLS and stalled handshakes as handshake errors", async () => {
  await using app = startHttpApp();
  await using p = await setup(app.port, {
    min_tls_version: "TLSv1.3",
    handshake_timeout: "300ms",
  });
  const failures = () =>
    p.proxy.stats().instances[0]!.listeners[0]!.handshake_failures[
      "handshake-error"
    ];
  // Plaintext HTTP on the TLS port.
  const plain = await Deno.connect({ hostname: "127.0.0.1", port: p.port });
  await writeAll(plain, new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n"));
  await readAll(plain).catch(() => "");
  plain.close();
  await waitFor(() => failures() === 1, 3000, "plaintext refusal");
  // TLS 1.2 when 1.3 is the minimum.
  const old = await new Deno.Command("openssl", {
    args: ["s_client", "-connect", `127.0.0.1:${p.port}`, "-tls1_2"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.notEqual(old.code, 0);
  await waitFor(() => failures() === 2, 3000, "TLS 1.2 refusal");
  // A client that connects and never speaks is dropped at handshake_timeout.
  const silent = await Deno.connect({ hostname: "127.0.0.1", port: p.port });
  const t0 = Date.now();
  await readAll(silent).catch(() => "");
  silent.close();
  assert.ok(Date.now() - t0 < 3000);
  await waitFor(() => failures() === 3, 3000, "handshake timeout");
  assert.equal(p.proxy.stats().instances[0]!.listeners[0]!.total, 0);
});

Deno.test("startProxy() fails with ListenError naming the address when a listen port is taken", async () => {
  const dir = await tempDir();
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    await pki.writeInstance(dir, { instanceId: "inst-1" });
    const port = (taken.addr as Deno.NetAddr).port;
    const { logger } = memoryLogger();
    await assert.rejects(
      startProxy(
        proxySection({
          admin_listen: "127.0.0.1:0",
          instances: [{
            credentials_dir: dir,
            mode: "tls",
            listeners: [{ listen: `127.0.0.1:${port}`, app: "127.0.0.1:1" }],
          }],
        }),
        { logger, watch: false, admin: false },
      ),
      (e: unknown) =>
        e instanceof ListenError &&
        e.message.startsWith(`Cannot listen on "127.0.0.1:${port}"`),
    );
  } finally {
    taken.close();
    await Deno.remove(dir, { recursive: true });
  }
});
