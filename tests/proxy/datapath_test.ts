import assert from "node:assert/strict";
import { startProxy } from "../../lib/proxy/mod.ts";
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
  if (extra.tls_engine) {
    assert.equal(proxy.instances[0]!.listeners[0]!.engine, extra.tls_engine);
  }
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

for (const engine of ["node", "deno"] as const) {
  Deno.test(`[${engine}] startProxy() forwards HTTP over TLS with keep-alive and names the instance id from the certificate`, async () => {
    await using app = startHttpApp();
    await using p = await setup(app.port, { tls_engine: engine });
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
    await waitFor(() =>
      p.proxy.stats().instances[0]!.listeners[0]!.active === 0
    );
  });

  // node: payload under the 1 MiB read-ahead, as Deno's node:tls loses a client
  // EOF that arrives while the TLS socket is paused (see the proxy README).
  Deno.test(`[${engine}] startProxy() passes half-close through: the app sees EOF and still answers`, async () => {
    const app = await startTcpApp((s) => {
      let n = 0;
      s.on("data", (d) => (n += d.length));
      s.on("end", () => s.end(`got ${n} bytes`));
    });
    try {
      await using p = await setup(app.port, { tls_engine: engine });
      const conn = await connectTls(p.port, "inst-1", pki.rootPem);
      const size = engine === "node" ? 200_000 : 4_000_000;
      await writeAll(conn, new Uint8Array(size).fill(7));
      await conn.closeWrite();
      assert.equal(await readAll(conn), `got ${size} bytes`);
      conn.close();
    } finally {
      await app.close();
    }
  });

  Deno.test(`[${engine}] startProxy() moves bulk data both ways with backpressure intact`, async () => {
    const app = await startTcpApp((s) => {
      s.pipe(s); // echo
    });
    try {
      await using p = await setup(app.port, { tls_engine: engine });
      const conn = await connectTls(p.port, "inst-1", pki.rootPem);
      const size = 8 * 1024 * 1024;
      const chunk = new Uint8Array(65536);
      for (let i = 0; i < chunk.length; i++) chunk[i] = i & 0xff;
      const writer = (async () => {
        for (let sent = 0; sent < size; sent += chunk.length) {
          await writeAll(conn, chunk);
        }
      })();
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

  Deno.test(`[${engine}] startProxy() closes the client and counts it when the app refuses`, async () => {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const deadPort = (l.addr as Deno.NetAddr).port;
    l.close();
    await using p = await setup(deadPort, { tls_engine: engine });
    const conn = await connectTls(p.port, "inst-1", pki.rootPem);
    await conn.write(new TextEncoder().encode("hello"));
    assert.equal(await readAll(conn).catch(() => ""), "");
    conn.close();
    await waitFor(() =>
      p.proxy.stats().instances[0]!.listeners[0]!.app_connect_failures
        .refused ===
        1
    );
    assert.ok(p.lines.some((l) => l.event === "app-connect-failed"));
    assert.equal(await p.proxy.ready(), false);
  });

  Deno.test(`[${engine}] startProxy() closes idle connections after idle_timeout`, async () => {
    const app = await startTcpApp(() => {});
    try {
      await using p = await setup(app.port, {
        tls_engine: engine,
        idle_timeout: "200ms",
      });
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
  Deno.test(`[${engine}] sigil proxy leaks no file descriptors over 2,000 app-closed connections`, async () => {
    const app = await startTcpApp((s) => {
      s.once(
        "data",
        () => s.end("HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok"),
      );
    });
    const dir = await tempDir();
    await pki.writeInstance(`${dir}/creds`, { instanceId: "inst-1" });
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    l.close();
    await Deno.writeTextFile(
      `${dir}/sigil.yaml`,
      [
        "proxy:",
        "  admin_listen: 127.0.0.1:0",
        `  tls_engine: ${engine}`,
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
        await writeAll(
          conn,
          new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n"),
        );
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

  Deno.test(`[${engine}] close() stops accepting, lets a live connection finish, and cuts it at the drain timeout`, async () => {
    await using app = startHttpApp();
    const p = await setup(app.port, { tls_engine: engine });
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

  Deno.test(`[${engine}] startProxy() counts plaintext, too-old TLS and stalled handshakes as handshake errors`, async () => {
    await using app = startHttpApp();
    // node:tls can refuse TLS 1.2; rustls (the deno engine) refuses below 1.2.
    const tooOld = engine === "node"
      ? ["-tls1_2"]
      : ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"];
    await using p = await setup(app.port, {
      tls_engine: engine,
      min_tls_version: engine === "node" ? "TLSv1.3" : "TLSv1.2",
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
    // A TLS version under the minimum.
    const old = await new Deno.Command("openssl", {
      args: ["s_client", "-connect", `127.0.0.1:${p.port}`, ...tooOld],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.notEqual(old.code, 0);
    await waitFor(() => failures() === 2, 3000, "old TLS version refusal");
    // A client that connects and never speaks is counted at handshake_timeout;
    // node:tls also drops it, Deno.listenTls keeps it until it leaves (the
    // documented limit of the deno engine).
    const silent = await Deno.connect({ hostname: "127.0.0.1", port: p.port });
    const t0 = Date.now();
    if (engine === "node") {
      await readAll(silent).catch(() => "");
      assert.ok(Date.now() - t0 < 3000);
    }
    await waitFor(() => failures() === 3, 3000, "handshake timeout");
    assert.ok(Date.now() - t0 >= 250, "counted before handshake_timeout");
    silent.close();
    assert.ok(
      p.lines.some((l) =>
        l.event === "client-refused" &&
        String(l.detail).startsWith("TLS handshake timeout")
      ),
    );
    assert.equal(p.proxy.stats().instances[0]!.listeners[0]!.total, 0);
  });
}

Deno.test("startProxy() runs mtls listeners on node:tls under tls_engine deno and logs the deno engine's limits", async () => {
  await using app = startHttpApp();
  const dir = await tempDir();
  try {
    await pki.writeInstance(`${dir}/a`, { instanceId: "inst-a" });
    await pki.writeInstance(`${dir}/b`, { instanceId: "inst-b" });
    await Deno.writeTextFile(`${dir}/ca.pem`, pki.rootPem);
    const listeners = [{ listen: "127.0.0.1:0", app: `127.0.0.1:${app.port}` }];
    for (const migrate of ["0", "1"]) {
      const { logger, lines } = memoryLogger();
      const proxy = await startProxy(
        proxySection({
          admin_listen: "127.0.0.1:0",
          tls_engine: "deno",
          instances: [
            { credentials_dir: `${dir}/a`, mode: "tls", listeners },
            {
              credentials_dir: `${dir}/b`,
              mode: "mtls",
              trusted_client_cas: [`${dir}/ca.pem`],
              listeners,
            },
          ],
        }),
        { logger, watch: false, admin: false, tcpMigrateReq: migrate },
      );
      try {
        const engines = proxy.instances.map((i) => i.listeners[0]!.engine);
        assert.deepEqual(engines, ["deno", "node"]);
        assert.deepEqual(
          proxy.stats().instances.map((i) => i.listeners[0]!.engine),
          ["deno", "node"],
        );
        const warnings = lines.filter((l) => l.event === "tls-engine-limits");
        assert.equal(warnings.length, 1, "one warning, for the tls instance");
        assert.equal(warnings[0]!.instance, "inst-a");
        assert.match(String(warnings[0]!.warning), /never completes its TLS/);
        assert.equal(
          /tcp_migrate_req is not 1/.test(String(warnings[0]!.warning)),
          migrate === "0",
        );
        const conn = await connectTls(
          proxy.port("inst-a"),
          "inst-a",
          pki.rootPem,
        );
        assert.equal(await httpGet(conn, "/x"), "hello /x");
        conn.close();
      } finally {
        await proxy.close({ drainTimeoutMs: 0 });
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
