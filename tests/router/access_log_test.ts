import assert from "node:assert/strict";
import {
  createAccessLog,
  formatAccessLine,
} from "../../lib/router/_access_log.ts";
import type { Exchange } from "../../lib/router/_record.ts";
import { Endpoint } from "../../lib/router/mod.ts";

function exchange(): Exchange {
  return {
    start: 0,
    startMs: Date.now(),
    method: "GET",
    host: "app.example.com",
    path: "/",
    remote: "127.0.0.1",
    proto: "http",
    requestId: crypto.randomUUID(),
    headers: [],
    userAgent: "",
    referer: "",
    forwardedFor: "127.0.0.1",
    forwardedProto: "http",
    bytesIn: 0,
    bytesOut: 0,
    failed: 0,
    ep: undefined,
    routerError: "",
    status: 0,
  };
}

Deno.test("createAccessLog() appends every line to its file, long lines included", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sigil-router-log-" });
  try {
    const log = await createAccessLog({ file: `${dir}/access.log` });
    for (let i = 0; i < 2000; i++) {
      const x = exchange();
      x.path = `/${i}/\u00e9`;
      if (i % 500 === 0) x.userAgent = "u".repeat(40_000);
      log.write(x, 200, 0.001);
    }
    await log.close();
    const lines = (await Deno.readTextFile(`${dir}/access.log`)).trimEnd()
      .split("\n");
    assert.equal(lines.length, 2000);
    lines.forEach((l, i) => assert.equal(JSON.parse(l).path, `/${i}/\u00e9`));
    assert.equal(JSON.parse(lines[500]!).user_agent.length, 40_000);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("formatAccessLine() writes valid JSON with gorouter's fields, escaping as needed", () => {
  const ep = new Endpoint("10.0.0.5:61001", "10.0.0.5", 61001, true);
  ep.app = "app-1";
  ep.index = "3";
  ep.instanceId = "inst-1";
  const x: Exchange = {
    start: 0,
    startMs: Date.UTC(2026, 0, 2, 3, 4, 5, 678),
    method: "GET",
    host: "app.example.com",
    path: '/a"b\\c?x=\u00e9\n\ud800',
    remote: "127.0.0.1",
    proto: "http",
    requestId: "5f1c2a4e-0000-4000-8000-000000000000",
    headers: [],
    userAgent: "curl/8 \t(tab)",
    referer: "",
    forwardedFor: "10.1.2.3, 127.0.0.1",
    forwardedProto: "http",
    bytesIn: 12,
    bytesOut: 345,
    failed: 1,
    ep,
    routerError: "",
    status: 0,
  };
  const line = formatAccessLine(x, 200, 0.0125);
  const rec = JSON.parse(line);
  assert.deepEqual(rec, {
    time: "2026-01-02T03:04:05.678Z",
    host: "app.example.com",
    method: "GET",
    path: '/a"b\\c?x=\u00e9\n\ud800',
    protocol: "HTTP/1.1",
    status: 200,
    bytes_in: 12,
    bytes_out: 345,
    remote: "127.0.0.1",
    backend: "10.0.0.5:61001",
    request_id: "5f1c2a4e-0000-4000-8000-000000000000",
    response_time: 0.0125,
    app_id: "app-1",
    app_index: "3",
    instance_id: "inst-1",
    failed_attempts: 1,
    router_error: "",
    user_agent: "curl/8 \t(tab)",
    referer: "",
    x_forwarded_for: "10.1.2.3, 127.0.0.1",
    x_forwarded_proto: "http",
  });
  assert.ok(!line.includes("\n"));
  const none = JSON.parse(formatAccessLine({ ...x, ep: undefined }, 404, 0));
  assert.equal(none.backend, "");
  assert.equal(none.instance_id, "");
});
