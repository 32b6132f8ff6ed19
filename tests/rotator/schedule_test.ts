import assert from "node:assert/strict";
import {
  backoffDelay,
  jitteredRenewalTime,
  renewalTime,
} from "../../lib/rotator/mod.ts";

const H = 3_600_000;

Deno.test("renewalTime() renews at a fraction of the lifetime", () => {
  assert.equal(
    renewalTime(0, 24 * H, { kind: "fraction", fraction: 0.5 }),
    12 * H,
  );
  assert.equal(
    renewalTime(1000, 1000 + 90_000, { kind: "fraction", fraction: 2 / 3 }),
    61_000,
  );
});

Deno.test("renewalTime() renews a duration before expiry, falling back to 2/3 when it exceeds the lifetime", () => {
  assert.equal(
    renewalTime(0, 24 * H, { kind: "before-expiry", beforeExpiryMs: 8 * H }),
    16 * H,
  );
  assert.equal(
    renewalTime(0, 60_000, { kind: "before-expiry", beforeExpiryMs: 8 * H }),
    Math.round(60_000 * 0.667),
  );
});

Deno.test("jitteredRenewalTime() spreads within ±jitter and stays before expiry", () => {
  const at = { kind: "fraction" as const, fraction: 2 / 3 };
  const lo = jitteredRenewalTime(0, 24 * H, at, 0.1, 0);
  const hi = jitteredRenewalTime(0, 24 * H, at, 0.1, 0.999999);
  assert.ok(Math.abs(lo - 16 * H * 0.9) < 1000, `lo ${lo}`);
  assert.ok(Math.abs(hi - 16 * H * 1.1) < 1000, `hi ${hi}`);
  for (let i = 0; i < 1000; i++) {
    const t = jitteredRenewalTime(0, 60_000, at, 0.5, Math.random());
    assert.ok(t >= 20_000 && t < 60_000, `t ${t}`);
  }
});

Deno.test("backoffDelay() doubles from 1s to the 5 min cap and jitter never exceeds the cap", () => {
  const b = { initial: 1000, max: 300_000, jitter: 0 };
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((n) => backoffDelay(b, n, 0)),
    [1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 300000],
  );
  assert.equal(backoffDelay(b, 10_000, 0), 300_000);
  const j = { ...b, jitter: 0.2 };
  for (let n = 1; n < 30; n++) {
    const d = backoffDelay(j, n, Math.random());
    const base = Math.min(300_000, 1000 * 2 ** (n - 1));
    assert.ok(d <= base && d >= base * 0.8, `attempt ${n}: ${d}`);
  }
});
