import assert from "node:assert/strict";
import { MetricsRegistry } from "../../lib/observe/mod.ts";

Deno.test("Counter.inc() counts one series per label set, in any key order", () => {
  const m = new MetricsRegistry("t");
  const c = m.counter("hits_total", "Hits");
  c.inc({ a: "1", b: "2" });
  c.inc({ b: "2", a: "1" }, 2);
  c.inc({ a: "1", b: "3" });
  assert.equal(c.get({ a: "1", b: "2" }), 3);
  assert.equal(c.get({ a: "1", b: "3" }), 1);
  assert.equal(c.get({ a: "9" }), 0);
});

Deno.test("Counter.inc() with a frozen label object is the same series as a fresh equal one", () => {
  const m = new MetricsRegistry("t");
  const c = m.counter("bytes_total", "Bytes");
  const frozen = Object.freeze({ instance: "i1", direction: "in" });
  for (let i = 0; i < 3; i++) c.inc(frozen, 10);
  c.inc({ direction: "in", instance: "i1" }, 5);
  assert.equal(c.get(frozen), 35);
  assert.equal(c.get({ instance: "i1", direction: "in" }), 35);
  // A mutable object that changes between calls is never served a stale key.
  const mutable: Record<string, string> = { instance: "i1", direction: "in" };
  c.inc(mutable);
  mutable.direction = "out";
  c.inc(mutable);
  assert.equal(c.get({ instance: "i1", direction: "in" }), 36);
  assert.equal(c.get({ instance: "i1", direction: "out" }), 1);
  const text = m.render();
  assert.match(text, /^t_bytes_total\{instance="i1",direction="in"\} 36$/m);
  assert.match(text, /^t_bytes_total\{instance="i1",direction="out"\} 1$/m);
});

Deno.test("MetricsRegistry.render() escapes label values", () => {
  const m = new MetricsRegistry("t");
  m.counter("x_total", "X").inc({ v: 'a"b\\c\nd' });
  assert.ok(m.render().includes('t_x_total{v="a\\"b\\\\c\\nd"} 1'));
});
