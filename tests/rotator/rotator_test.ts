import assert from "node:assert/strict";
import { join } from "node:path";
import { FakeClock } from "../_helpers/fake_clock.ts";
import { RotatorSection } from "../../lib/config/mod.ts";
import { createLogger } from "../../lib/observe/mod.ts";
import {
  certificateMatchesKey,
  parseCertificate,
  verifyChain,
} from "../../lib/pki/mod.ts";
import {
  CaRequestError,
  readCredentials,
  startRotator,
} from "../../lib/rotator/mod.ts";
import type { RunningRotator } from "../../lib/rotator/mod.ts";
import { createTestCa } from "./_ca.ts";
import type { TestCa } from "./_ca.ts";

const MIN = 60_000;

interface Harness {
  base: string;
  clock: FakeClock;
  ca: TestCa;
  logs: Array<Record<string, unknown>>;
  section(extra?: Record<string, unknown>, instances?: number): RotatorSection;
  start(section: RotatorSection): Promise<RunningRotator>;
  events(name: string): Array<Record<string, unknown>>;
  cleanup(): Promise<void>;
}

function instance(base: string, n: number) {
  return {
    instance_id: `inst-${n}`,
    app: "app-1",
    space: "space-1",
    org: "org-1",
    ips: [`10.0.0.${n}`],
    dir: join(base, `inst-${n}`),
  };
}

async function harness(validityMs = MIN): Promise<Harness> {
  const base = await Deno.makeTempDir({ prefix: "sigil-rot-" });
  const clock = new FakeClock();
  const ca = await createTestCa({ now: clock.now(), validityMs });
  const bundle = join(base, "bundle.pem");
  await Deno.writeTextFile(bundle, ca.rootPem);
  const logs: Array<Record<string, unknown>> = [];
  const running: RunningRotator[] = [];
  const h: Harness = {
    base,
    clock,
    ca,
    logs,
    section(extra = {}, instances = 1) {
      return RotatorSection.parse({
        ca_url: "https://127.0.0.1:1",
        ca_bundle: bundle,
        token_file: join(base, "token"),
        min_interval: "1s",
        instances: Array.from(
          { length: instances },
          (_, i) => instance(base, i + 1),
        ),
        ...extra,
      });
    },
    async start(section) {
      const r = await startRotator(section, {
        clock,
        sign: ca.signer(() => clock.now()),
        logger: createLogger("rotator", {
          level: "debug",
          now: () => clock.now(),
          sink: (l) => logs.push(JSON.parse(l)),
        }),
        sync: false,
      });
      running.push(r);
      return r;
    },
    events: (name) => logs.filter((l) => l.event === name),
    async cleanup() {
      for (const r of running) await r.close();
      await Deno.remove(base, { recursive: true });
    },
  };
  return h;
}

async function checkOnDisk(h: Harness, n: number) {
  const dir = join(h.base, `inst-${n}`);
  const certPem = await Deno.readTextFile(join(dir, "instance.crt"));
  const keyPem = await Deno.readTextFile(join(dir, "instance.key"));
  assert.ok(await certificateMatchesKey(certPem, keyPem), "key matches cert");
  const info = parseCertificate(certPem);
  assert.equal(info.identity?.instanceId, `inst-${n}`);
  assert.equal(info.identity?.app, "app-1");
  assert.equal(info.identity?.space, "space-1");
  assert.equal(info.identity?.org, "org-1");
  assert.deepEqual(info.identity?.ips, [`10.0.0.${n}`]);
  await verifyChain(certPem, h.ca.rootPem, h.clock.now());
  return { info, keyPem };
}

Deno.test("startRotator() performs 100 rotations of 1-minute certificates with a fresh matching key every time", async () => {
  const h = await harness(MIN);
  try {
    const r = await h.start(h.section());
    await r.ready();
    let prev = await checkOnDisk(h, 1);
    const keys = new Set([prev.keyPem]);
    for (let i = 0; i < 100; i++) {
      const before = h.clock.now();
      await h.clock.next();
      await r.idle();
      const cur = await checkOnDisk(h, 1);
      assert.notEqual(cur.info.serial, prev.info.serial, `rotation ${i}`);
      assert.ok(!keys.has(cur.keyPem), "fresh key each renewal");
      keys.add(cur.keyPem);
      // Renewed at 2/3 of the lifetime ±10%, well before the old expiry.
      const elapsed = h.clock.now() - prev.info.notBefore.getTime();
      assert.ok(
        elapsed >= 0.6 * MIN - 1000 && elapsed <= 0.734 * MIN + 1000,
        `elapsed ${elapsed}`,
      );
      assert.ok(h.clock.now() < prev.info.notAfter.getTime());
      assert.ok(h.clock.now() > before);
      prev = cur;
    }
    assert.equal(h.ca.issued, 101);
    assert.equal(h.events("cert-issued").length, 101);
    assert.equal(h.events("cert-renew-failed").length, 0);
    assert.equal(h.events("cert-expired").length, 0);
    const st = r.status()[0]!;
    assert.equal(st.renewals, 101);
    assert.equal(st.serial, prev.info.serial);
    // Log lines never carry key material or PEM.
    assert.ok(!JSON.stringify(h.logs).includes("BEGIN"));
  } finally {
    await h.cleanup();
  }
});

Deno.test("startRotator() rides out a CA outage of hours: backoff caps at 5 min, files untouched, success right after the CA returns", async () => {
  const h = await harness(60 * MIN);
  try {
    const r = await h.start(h.section());
    await r.ready();
    const good = await checkOnDisk(h, 1);
    const crtBefore = await Deno.readTextFile(
      join(h.base, "inst-1", "instance.crt"),
    );
    h.ca.mode = "down";
    // Run to the renewal point, then 3 hours of outage.
    await h.clock.next();
    await r.idle();
    const start = h.clock.now();
    while (h.clock.now() - start < 2 * 60 * MIN) {
      await h.clock.next();
      await r.idle();
    }
    const fails = h.events("cert-renew-failed");
    const delays = fails.map((f) => f.retry_in_ms as number);
    assert.ok(fails.length > 30, `failures ${fails.length}`);
    assert.ok(Math.max(...delays) <= 5 * MIN, "never beyond the cap");
    assert.ok(delays.slice(-10).every((d) => d >= 4 * MIN), "reached the cap");
    assert.ok(delays[0]! <= 1000 && delays[1]! <= 2000 && delays[2]! <= 4000);
    // One failure log per attempt: attempts are numbered 1..n without gaps.
    assert.deepEqual(fails.map((f) => f.attempt), fails.map((_, i) => i + 1));
    assert.equal(
      await Deno.readTextFile(join(h.base, "inst-1", "instance.crt")),
      crtBefore,
    );
    // The cert expired during the outage: an error event every minute.
    const expired = h.events("cert-expired");
    const expiredFor = h.clock.now() - good.info.notAfter.getTime();
    assert.ok(
      Math.abs(expired.length - Math.floor(expiredFor / MIN) - 1) <= 1,
      `expired events ${expired.length}`,
    );
    assert.equal(expired[0]!.level, "error");
    const m = r.metrics.registry.render();
    assert.match(
      m,
      new RegExp(
        `sigil_rotator_renewal_failures_total\\{instance="inst-1"\\} ${fails.length}`,
      ),
    );
    assert.match(m, /sigil_rotator_cert_expired\{instance="inst-1"\} 1/);

    h.ca.mode = "ok";
    const issuedBefore = h.ca.issued;
    const back = h.clock.now();
    while (h.ca.issued === issuedBefore) {
      await h.clock.next();
      await r.idle();
    }
    assert.ok(h.clock.now() - back <= 5 * MIN, "renewed at the next retry");
    assert.equal(h.ca.issued, issuedBefore + 1);
    const after = await checkOnDisk(h, 1);
    assert.ok(after.info.notAfter.getTime() > h.clock.now());
    assert.equal(r.status()[0]!.consecutiveFailures, 0);
  } finally {
    await h.cleanup();
  }
});

Deno.test("startRotator() never replaces a good pair with a bad certificate from the CA", async () => {
  const h = await harness(10 * MIN);
  try {
    const r = await h.start(h.section());
    await r.ready();
    const crt = await Deno.readTextFile(join(h.base, "inst-1", "instance.crt"));
    const modes = [
      "wrong-identity",
      "wrong-key",
      "expired",
      "untrusted",
      "garbage",
      "refuse",
    ] as const;
    for (const mode of modes) {
      h.ca.mode = mode;
      const failed = await r.renewAll();
      assert.deepEqual(failed, ["inst-1"], mode);
      assert.equal(
        await Deno.readTextFile(join(h.base, "inst-1", "instance.crt")),
        crt,
        mode,
      );
    }
    const errors = h.events("cert-renew-failed").map((e) => String(e.error));
    assert.match(errors[0]!, /different identity/);
    assert.match(errors[1]!, /key does not match/);
    assert.match(errors[2]!, /expired|not valid/);
    assert.match(errors[3]!, /trust bundle/);
    assert.match(errors[4]!, /cannot parse|Invalid/i);
    h.ca.mode = "ok";
    assert.deepEqual(await r.renewAll(), []);
    assert.notEqual(
      await Deno.readTextFile(join(h.base, "inst-1", "instance.crt")),
      crt,
    );
    await checkOnDisk(h, 1);
  } finally {
    await h.cleanup();
  }
});

Deno.test("startRotator() keeps a valid pair across restarts and renews only when due", async () => {
  const h = await harness(60 * MIN);
  try {
    const r1 = await h.start(h.section());
    await r1.ready();
    await r1.close();
    const serial = (await checkOnDisk(h, 1)).info.serial;
    const r2 = await h.start(h.section());
    await r2.ready();
    assert.equal(h.ca.issued, 1, "not re-issued while valid");
    assert.equal(r2.status()[0]!.serial, serial);
    assert.equal(h.events("cert-loaded").length, 1);
    await r2.close();
    // Past the renewal point while stopped: renewed on start.
    await h.clock.tick(50 * MIN);
    const r3 = await h.start(h.section());
    await r3.idle();
    assert.equal(h.ca.issued, 2);
    assert.equal(h.events("cert-issued").at(-1)!.reason, "due");
  } finally {
    await h.cleanup();
  }
});

Deno.test("RunningRotator.reload() picks up a new instance and renewAll() forces renewal of everything", async () => {
  const h = await harness(60 * MIN);
  try {
    const r = await h.start(h.section({}, 1));
    await r.ready();
    await r.reload(h.section({}, 2));
    await r.ready();
    await checkOnDisk(h, 2);
    assert.equal(h.events("instance-added").length, 1);
    const before = r.status().map((s) => s.serial);
    assert.deepEqual(await r.renewAll(), []);
    const after = r.status().map((s) => s.serial);
    assert.equal(after.length, 2);
    assert.ok(after.every((s, i) => s !== before[i]));
    await r.reload(h.section({}, 0));
    assert.equal(r.status().length, 0);
    assert.equal(h.events("instance-removed").length, 2);
  } finally {
    await h.cleanup();
  }
});

Deno.test("startRotator() serves per-instance metrics as absolute timestamps", async () => {
  const h = await harness(60 * MIN);
  try {
    const r = await h.start(h.section({ metrics_listen: "127.0.0.1:0" }));
    await r.ready();
    const a = r.metricsAddress!;
    const res = await fetch(`http://${a.hostname}:${a.port}/metrics`);
    const text = await res.text();
    assert.equal(res.status, 200);
    const info = (await checkOnDisk(h, 1)).info;
    assert.match(
      text,
      new RegExp(
        `sigil_rotator_cert_not_after_timestamp_seconds\\{instance="inst-1"\\} ${
          Math.floor(info.notAfter.getTime() / 1000)
        }`,
      ),
    );
    assert.match(
      text,
      new RegExp(
        `sigil_rotator_last_success_timestamp_seconds\\{instance="inst-1"\\} ${
          Math.floor(h.clock.now() / 1000)
        }`,
      ),
    );
    assert.match(
      text,
      /sigil_rotator_next_renewal_timestamp_seconds\{instance="inst-1"\} \d+/,
    );
    assert.match(text, /sigil_rotator_renewals_total\{instance="inst-1"\} 1/);
    assert.match(text, /sigil_rotator_cert_expired\{instance="inst-1"\} 0/);
    const next = r.status()[0]!.nextRenewal!;
    assert.ok(next > h.clock.now() && next < info.notAfter.getTime());
  } finally {
    await h.cleanup();
  }
});

Deno.test("startRotator() runs on_rotate after each swap with the instance's paths in the environment", async () => {
  const h = await harness(60 * MIN);
  try {
    const out = join(h.base, "hook.out");
    const r = await h.start(h.section({
      on_rotate: [
        "sh",
        "-c",
        `echo "$SIGIL_INSTANCE_ID $SIGIL_SERIAL $SIGIL_CERT_FILE" >> ${out}`,
      ],
    }));
    await r.ready();
    await r.idle();
    await r.renewAll();
    await r.idle();
    const lines = (await Deno.readTextFile(out)).trim().split("\n");
    assert.equal(lines.length, 2);
    const serial = r.status()[0]!.serial;
    assert.equal(
      lines[1],
      `inst-1 ${serial} ${join(h.base, "inst-1", "instance.crt")}`,
    );
  } finally {
    await h.cleanup();
  }
});

Deno.test("startRotator() sends reload_signal to the pid in pid_file, read fresh each time", async () => {
  const h = await harness(60 * MIN);
  const child = new Deno.Command("sh", {
    args: ["-c", "trap 'echo got-hup' HUP; while :; do sleep 0.05; done"],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  try {
    const pidFile = join(h.base, "proxy.pid");
    await Deno.writeTextFile(pidFile, `${child.pid}\n`);
    const r = await h.start(
      h.section({ reload_signal: "SIGHUP", pid_file: pidFile }),
    );
    await r.ready();
    await r.idle();
    assert.equal(h.events("reload-signal-sent").length, 1);
    await Deno.writeTextFile(pidFile, "not-a-pid");
    await r.renewAll();
    await r.idle();
    assert.equal(h.events("reload-signal-failed").length, 1);
    const reader = child.stdout.getReader();
    const { value } = await reader.read();
    assert.match(new TextDecoder().decode(value), /got-hup/);
    reader.releaseLock();
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await child.stdout.cancel().catch(() => {});
    await h.cleanup();
  }
});

Deno.test("readCredentials() of a rotated dir returns the pair on disk", async () => {
  const h = await harness(60 * MIN);
  try {
    const r = await h.start(h.section());
    await r.ready();
    const p = await readCredentials(join(h.base, "inst-1"));
    assert.ok(p && await certificateMatchesKey(p.certPem, p.keyPem));
    assert.equal(parseCertificate(p.certPem).serial, r.status()[0]!.serial);
  } finally {
    await h.cleanup();
  }
});

Deno.test("startRotator() honours the CA's Retry-After up to the backoff cap", async () => {
  const h = await harness(60 * MIN);
  try {
    const r = await h.start(h.section());
    await r.ready();
    const sign = h.ca.sign;
    let retryAfterMs = 90_000;
    h.ca.sign = () =>
      Promise.reject(
        new CaRequestError("ERR_ROTATOR_CA_REJECTED", "CA answered 429", {
          status: 429,
          retryAfterMs,
        }),
      );
    await r.renewAll();
    retryAfterMs = 3_600_000;
    await r.renewAll();
    const delays = h.events("cert-renew-failed").map((e) => e.retry_in_ms);
    assert.deepEqual(delays, [90_000, 5 * MIN]);
    h.ca.sign = sign;
  } finally {
    await h.cleanup();
  }
});

Deno.test("RunningRotator.close() abandons a CA request in flight and writes nothing", async () => {
  const h = await harness(60 * MIN);
  try {
    const r = await h.start(h.section());
    await r.ready();
    const crt = await Deno.readTextFile(join(h.base, "inst-1", "instance.crt"));
    let started!: () => void;
    const inFlight = new Promise<void>((res) => (started = res));
    h.ca.sign = () => {
      started();
      return new Promise(() => {}); // never answers
    };
    const renewal = r.renewAll();
    await inFlight;
    await r.close();
    assert.deepEqual(await renewal, ["inst-1"]);
    assert.equal(
      await Deno.readTextFile(join(h.base, "inst-1", "instance.crt")),
      crt,
    );
    assert.equal(h.events("rotator-stopped").length, 1);
  } finally {
    await h.cleanup();
  }
});

Deno.test("startRotator() started mid-outage with an expired pair keeps logging cert-expired every minute", async () => {
  const h = await harness(10 * MIN);
  try {
    const r1 = await h.start(h.section());
    await r1.ready();
    await r1.close();
    h.ca.mode = "down";
    await h.clock.tick(11 * MIN);
    const r2 = await h.start(h.section());
    await r2.idle();
    const start = h.clock.now();
    while (h.clock.now() - start < 5 * MIN) {
      await h.clock.next();
      await r2.idle();
    }
    assert.equal(h.events("cert-invalid").length, 1);
    const expired = h.events("cert-expired");
    assert.ok(expired.length >= 5, `cert-expired events: ${expired.length}`);
    assert.match(
      r2.metrics.registry.render(),
      /sigil_rotator_cert_expired\{instance="inst-1"\} 1/,
    );
    h.ca.mode = "ok";
    while (h.ca.issued === 1) {
      await h.clock.next();
      await r2.idle();
    }
    await checkOnDisk(h, 1);
  } finally {
    await h.cleanup();
  }
});

Deno.test("RunningRotator.reload() renews at once when an instance's identity changes", async () => {
  const h = await harness(60 * MIN);
  try {
    const r = await h.start(h.section());
    await r.ready();
    const s = h.section();
    s.instances[0]!.ips = ["10.9.9.9"];
    await r.reload(s);
    await r.idle();
    const crt = await Deno.readTextFile(join(h.base, "inst-1", "instance.crt"));
    assert.deepEqual(parseCertificate(crt).identity?.ips, ["10.9.9.9"]);
    assert.equal(h.events("cert-issued").at(-1)!.reason, "invalid");
  } finally {
    await h.cleanup();
  }
});
