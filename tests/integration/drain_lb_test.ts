/**
 * Rolling restarts of two `sigil router` processes behind haproxy that checks
 * each router's `/healthz`, under wrk load: not one request fails. This is
 * the deploy drill of routing-release's "Configure Load Balancer healthchecks
 * for Gorouter" (the LB sees 503 during `drain_wait` while the router still
 * serves; then the router stops accepting) and gorouter's router/router.go
 * `Drain`. Before drain_wait, the listener closed the instant `/healthz`
 * flipped and every restart cost wrk read errors.
 *
 * A restarted router comes up with an empty route table and `/healthz` says
 * ok at once (sigil has no start delay like gorouter's
 * `start_response_delay_interval`), so the test holds the new process in
 * haproxy maintenance until its route is registered, as a deploy would.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { freePort } from "../_helpers/ports.ts";
import { SigilProcess } from "../_helpers/proc.ts";

const ROUTE = "drain-lb.example.com";

interface RouterSlot {
  name: string;
  port: number;
  apiPort: number;
  config: string;
  proc?: SigilProcess;
}

async function haproxyCommand(sock: string, command: string): Promise<string> {
  const c = await Deno.connect({ transport: "unix", path: sock });
  try {
    await c.write(new TextEncoder().encode(`${command}\n`));
    return await new Response(c.readable).text();
  } catch (err) {
    c.close();
    throw err;
  }
}

/** The check status haproxy reports for `app/<name>` ("UP", "DOWN", "MAINT"...). */
async function serverStatus(sock: string, name: string): Promise<string> {
  const csv = (await haproxyCommand(sock, "show stat")).trim().split("\n");
  const head = csv[0]!.replace(/^# /, "").split(",");
  const col = head.indexOf("status");
  const row = csv.find((l) => l.startsWith(`app,${name},`));
  return row?.split(",")[col] ?? "missing";
}

async function waitStatus(sock: string, name: string, want: RegExp) {
  let last = "";
  for (let i = 0; i < 600; i++) {
    last = await serverStatus(sock, name);
    if (want.test(last)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`haproxy server ${name} stayed ${last}, wanted ${want}`);
}

Deno.test({
  name:
    "rolling restart of two routers behind haproxy checking /healthz under wrk: zero failed requests (drain_wait, gorouter Drain)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "sigil-drain-lb-" });
    const { publicKey, privateKey } = await generateKeyPair("ES256", {
      extractable: true,
    });
    await Deno.writeTextFile(
      join(dir, "token.jwk"),
      JSON.stringify(await exportJWK(publicKey)),
    );
    const token = await new SignJWT({ scope: "routes.write" })
      .setProtectedHeader({ alg: "ES256" })
      .setIssuer("sigil-ca").setAudience("sigil").setSubject("drain-lb")
      .setExpirationTime("30m").sign(privateKey);

    let served = 0;
    const backend = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      () => {
        served++;
        return new Response("ok\n");
      },
    );
    const slots: RouterSlot[] = ["a", "b"].map((name) => ({
      name,
      port: freePort(),
      apiPort: freePort(),
      config: join(dir, `${name}.yaml`),
    }));
    const start = async (s: RouterSlot) => {
      s.proc = new SigilProcess(["router", "--config", s.config]);
      await s.proc.waitForEvent("router-started", 60_000);
      const res = await fetch(`http://127.0.0.1:${s.apiPort}/v1/register`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}` },
        body: JSON.stringify({
          host: "127.0.0.1",
          port: backend.addr.port,
          uris: [ROUTE],
        }),
      });
      assert.equal(res.status, 200, await res.text());
    };
    const sock = join(dir, "haproxy.sock");
    const front = freePort();
    let haproxy: Deno.ChildProcess | undefined;
    let wrk: Deno.ChildProcess | undefined;
    try {
      for (const s of slots) {
        await Deno.writeTextFile(
          s.config,
          [
            "router:",
            `  listen: 127.0.0.1:${s.port}`,
            "  api:",
            `    listen: 127.0.0.1:${s.apiPort}`,
            `    public_key_file: ${join(dir, "token.jwk")}`,
            "  access_log:",
            "    enabled: false",
            "  drain_wait: 3s",
            "  drain_timeout: 10s",
            "",
          ].join("\n"),
        );
        await start(s);
      }
      await Deno.writeTextFile(
        join(dir, "haproxy.cfg"),
        [
          "global",
          `  stats socket ${sock} level admin`,
          "  nbthread 1",
          "defaults",
          "  mode http",
          "  timeout connect 5s",
          "  timeout client 60s",
          "  timeout server 60s",
          "frontend fe",
          `  bind 127.0.0.1:${front}`,
          "  default_backend app",
          "backend app",
          "  option httpchk GET /healthz",
          "  http-check expect status 200",
          "  default-server inter 250ms fall 1 rise 2",
          ...slots.map((s) =>
            `  server ${s.name} 127.0.0.1:${s.port} check port ${s.apiPort}`
          ),
          "",
        ].join("\n"),
      );
      haproxy = new Deno.Command("haproxy", {
        args: ["-db", "-q", "-f", join(dir, "haproxy.cfg")],
        stdout: "null",
        stderr: "piped",
      }).spawn();
      for (let i = 0; i < 400; i++) {
        if (await Deno.stat(sock).then(() => true, () => false)) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      for (const s of slots) await waitStatus(sock, s.name, /^UP/);

      wrk = new Deno.Command("wrk", {
        args: [
          "-t1",
          "-c8",
          "-d300s",
          "-H",
          `Host: ${ROUTE}`,
          `http://127.0.0.1:${front}/`,
        ],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const output = wrk.output();
      const traffic = async () => {
        const seen = served;
        for (let i = 0; i < 600 && served < seen + 200; i++) {
          await new Promise((r) => setTimeout(r, 50));
        }
        assert.ok(served >= seen + 200, "traffic flows through haproxy");
      };
      await traffic();

      for (const s of slots) {
        const stopped = await s.proc!.stop("SIGTERM");
        assert.equal(stopped.code, 0, s.proc!.lines.slice(-10).join("\n"));
        const events = s.proc!.lines.map((l) => {
          try {
            return JSON.parse(l).event;
          } catch {
            return undefined;
          }
        });
        assert.ok(
          events.indexOf("router-draining") <
            events.indexOf("router-stopped-accepting"),
          "drained in order",
        );
        await traffic(); // the other router alone
        await haproxyCommand(sock, `set server app/${s.name} state maint`);
        await start(s);
        await haproxyCommand(sock, `set server app/${s.name} state ready`);
        await waitStatus(sock, s.name, /^UP/);
        await traffic();
      }

      wrk.kill("SIGINT");
      const out = await output;
      wrk = undefined;
      const report = new TextDecoder().decode(out.stdout);
      const total = Number(/(\d+) requests in/.exec(report)?.[1] ?? 0);
      assert.ok(total > 0, report);
      assert.doesNotMatch(report, /Socket errors/, report);
      assert.doesNotMatch(report, /Non-2xx or 3xx/, report);
    } finally {
      try {
        wrk?.kill("SIGKILL");
        await wrk?.status;
      } catch {
        // already gone
      }
      for (const s of slots) await s.proc?.stop("SIGTERM").catch(() => {});
      if (haproxy) {
        haproxy.kill("SIGTERM");
        await haproxy.stderr.cancel();
        await haproxy.status;
      }
      await backend.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
