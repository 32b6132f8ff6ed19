import assert from "node:assert/strict";
import { formatAccessLine } from "../../lib/router/_access_log.ts";
import type { Exchange } from "../../lib/router/_attempt.ts";
import { Endpoint } from "../../lib/router/mod.ts";

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
