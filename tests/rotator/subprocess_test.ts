/**
 * `sigil rotator` as a real subprocess against a real `sigil ca serve`:
 * `--once` exit codes, SIGHUP, SIGTERM, and crash safety under SIGKILL.
 */
import assert from "node:assert/strict";
import { freePort } from "../_helpers/ports.ts";
import { join } from "node:path";
import { sigil, SigilProcess } from "../_helpers/proc.ts";
import { checkPair, events, rotatorYaml, startRealCa } from "./_real_ca.ts";

Deno.test("sigil rotator (subprocess) against a real sigil ca serve", async (t) => {
  const base = await Deno.makeTempDir({ prefix: "sigil-rot-proc-" });
  const ca = await startRealCa(base);
  try {
    await t.step(
      "--once issues what is missing, exits 0 when nothing is due and 1 when a due cert cannot be renewed",
      async () => {
        const d1 = join(base, "once-1"), d2 = join(base, "once-2");
        const cfg = join(base, "once.yaml");
        await Deno.writeTextFile(
          cfg,
          rotatorYaml(ca, [{ id: "once-1", dir: d1 }], { validity: "1h" }),
        );
        const r1 = await sigil(["rotator", "--config", cfg, "--once"]);
        assert.equal(r1.code, 0, r1.stderr);
        const first = await checkPair(ca, d1, "once-1");
        const r2 = await sigil(["rotator", "--config", cfg, "--once"]);
        assert.equal(r2.code, 0, r2.stderr);
        assert.match(r2.stderr, /"skipped":1/);
        assert.equal((await checkPair(ca, d1, "once-1")).serial, first.serial);
        // CA unreachable: nothing due still exits 0; a missing cert exits 1.
        const dead = `https://127.0.0.1:${freePort()}`;
        const down = { ...ca, url: dead };
        await Deno.writeTextFile(
          cfg,
          rotatorYaml(down, [{ id: "once-1", dir: d1 }]),
        );
        const r3 = await sigil(["rotator", "--config", cfg, "--once"]);
        assert.equal(r3.code, 0, r3.stderr);
        await Deno.writeTextFile(
          cfg,
          rotatorYaml(down, [{ id: "once-1", dir: d1 }, {
            id: "once-2",
            dir: d2,
          }]),
        );
        const r4 = await sigil(["rotator", "--config", cfg, "--once"]);
        assert.equal(r4.code, 1);
        assert.match(r4.stderr, /"event":"cert-renew-failed"/);
        // It exits instead of retrying, so the log promises no retry.
        assert.doesNotMatch(r4.stderr, /retry_in_ms/);
        assert.equal((await checkPair(ca, d1, "once-1")).serial, first.serial);
        // A config error is a usage failure.
        await Deno.writeTextFile(cfg, "rotator:\n  ca_url: http://x\n");
        assert.equal(
          (await sigil(["rotator", "--config", cfg, "--once"])).code,
          2,
        );
      },
    );

    await t.step(
      "SIGHUP picks up a new instance and renews everything; SIGTERM exits 0",
      async () => {
        const d1 = join(base, "hup-1"), d2 = join(base, "hup-2");
        const cfg = join(base, "hup.yaml");
        await Deno.writeTextFile(
          cfg,
          rotatorYaml(ca, [{ id: "hup-1", dir: d1 }], { validity: "1h" }),
        );
        const p = new SigilProcess(["rotator", "--config", cfg]);
        try {
          await p.waitFor((l) =>
            l.event === "cert-issued" && l.instance === "hup-1"
          );
          const s1 = (await checkPair(ca, d1, "hup-1")).serial;
          await Deno.writeTextFile(
            cfg,
            rotatorYaml(ca, [{ id: "hup-1", dir: d1 }, {
              id: "hup-2",
              dir: d2,
            }], { validity: "1h" }),
          );
          p.child.kill("SIGHUP");
          await p.waitFor((l) =>
            l.event === "cert-issued" && l.instance === "hup-2"
          );
          await p.waitFor((l) =>
            l.event === "cert-issued" && l.instance === "hup-1" &&
            l.reason === "forced"
          );
          await checkPair(ca, d2, "hup-2");
          assert.notEqual((await checkPair(ca, d1, "hup-1")).serial, s1);
        } finally {
          const { code } = await p.stop("SIGTERM");
          assert.equal(code, 0);
        }
        assert.ok(events(p, "rotator-stopped").length === 1);
      },
    );
    await t.step(
      "SIGTERM during back-to-back renewals lets the write finish and exits 0",
      async () => {
        const dir = join(base, "term-1");
        const cfg = join(base, "term.yaml");
        await Deno.writeTextFile(
          cfg,
          rotatorYaml(ca, [{ id: "term-1", dir }], {
            validity: "1m",
            renew_at: "0.0001",
            jitter: "0",
            min_interval: "1ms",
          }),
        );
        for (let round = 0; round < 5; round++) {
          const p = new SigilProcess(["rotator", "--config", cfg]);
          await p.waitForEvent("cert-issued");
          await new Promise((r) => setTimeout(r, Math.random() * 100));
          const { code } = await p.stop("SIGTERM");
          assert.equal(code, 0, p.lines.slice(-5).join("\n"));
          // Nothing half-written is left behind by a graceful stop.
          for await (const e of Deno.readDir(join(dir, "versions"))) {
            assert.match(e.name, /^\d+$/);
          }
          await checkPair(ca, dir, "term-1");
        }
      },
    );
  } finally {
    await ca.stop();
    await Deno.remove(base, { recursive: true });
  }
});
