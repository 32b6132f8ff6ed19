import assert from "node:assert/strict";
import {
  parseRegistryMessage,
  parseRouterStartMessage,
  RegistryMessageError,
} from "../../lib/routes/mod.ts";

const VALID = {
  host: "10.0.0.5",
  tls_port: 61001,
  uris: ["hello.example.com", "hello.example.com/api"],
  app: "app-guid",
  private_instance_id: "a1b2c3",
  private_instance_index: "0",
  server_cert_domain_san: "a1b2c3",
  tags: { component: "route-emitter" },
};

function rejects(data: unknown, reason: string, field?: string): void {
  const text = typeof data === "string" ? data : JSON.stringify(data);
  assert.throws(
    () => parseRegistryMessage(text),
    (err: unknown) => {
      assert.ok(err instanceof RegistryMessageError);
      assert.equal(err.reason, reason);
      if (field) assert.match(err.message, new RegExp(`\\b${field}\\b`));
      return true;
    },
  );
}

Deno.test("parseRegistryMessage() accepts a Cloud Foundry route-emitter message", () => {
  const m = parseRegistryMessage(JSON.stringify(VALID));
  assert.equal(m.host, "10.0.0.5");
  assert.equal(m.tls_port, 61001);
  assert.deepEqual(m.uris, VALID.uris);
  assert.equal(m.server_cert_domain_san, "a1b2c3");
  assert.deepEqual(m.tags, { component: "route-emitter" });
});

Deno.test("parseRegistryMessage() accepts bytes and a plain port, and ignores unknown fields", () => {
  const m = parseRegistryMessage(
    new TextEncoder().encode(
      JSON.stringify({
        host: "10.0.0.6",
        port: 8080,
        uris: ["a.example.com"],
        protocol: "http2",
        some_future_field: { x: 1 },
      }),
    ),
  );
  assert.equal(m.port, 8080);
  assert.equal(m.protocol, "http2");
  assert.equal("some_future_field" in m, false);
});

Deno.test("parseRegistryMessage() rejects bad JSON", () => {
  rejects("{not json", "invalid-json");
  rejects("", "invalid-json");
});

Deno.test("parseRegistryMessage() rejects a message without host", () => {
  const { host: _host, ...rest } = VALID;
  rejects(rest, "invalid-message", "host");
  rejects({ ...VALID, host: "" }, "invalid-message", "host");
});

Deno.test("parseRegistryMessage() rejects ports out of range", () => {
  rejects({ ...VALID, tls_port: 70000 }, "invalid-message", "tls_port");
  rejects({ ...VALID, tls_port: -1 }, "invalid-message", "tls_port");
  rejects({ ...VALID, tls_port: 1.5 }, "invalid-message", "tls_port");
  rejects(
    { host: "10.0.0.5", port: 65536, uris: ["a.example.com"] },
    "invalid-message",
    "port",
  );
  rejects(
    { host: "10.0.0.5", port: 0, uris: ["a.example.com"] },
    "invalid-message",
    "port",
  );
});

Deno.test("parseRegistryMessage() rejects uris that are not a list of hostnames", () => {
  rejects({ ...VALID, uris: "hello.example.com" }, "invalid-message", "uris");
  rejects({ ...VALID, uris: [] }, "invalid-message", "uris");
  rejects(
    { ...VALID, uris: ["https://hello.example.com"] },
    "invalid-message",
    "uris",
  );
  rejects({ ...VALID, uris: ["hello.example.com:8080"] }, "invalid-message");
  rejects({ ...VALID, uris: ["bad host.example.com"] }, "invalid-message");
  rejects({ ...VALID, uris: [42] }, "invalid-message", "uris");
});

Deno.test("parseRouterStartMessage() applies Cloud Foundry defaults and rejects a missing id", () => {
  const m = parseRouterStartMessage('{"id":"0-abc","hosts":["10.0.0.1",3]}');
  assert.deepEqual(m, {
    id: "0-abc",
    hosts: ["10.0.0.1"],
    minimumRegisterIntervalInSeconds: 20,
    pruneThresholdInSeconds: 120,
  });
  assert.throws(
    () => parseRouterStartMessage('{"hosts":[]}'),
    RegistryMessageError,
  );
  assert.throws(() => parseRouterStartMessage("nope"), RegistryMessageError);
});

// gorouter's subscriber refuses a message only when JSON decoding into its
// RegistryMessage fails or route_service_url is not https
// (mbus/subscriber.go createRegistryMessage, ValidateMessage); everything
// else registers with its defaults (route/pool.go NewEndpoint,
// registry/registry.go register, route/uris.go RouteKey). Cases follow
// mbus/subscriber_test.go and registry/registry_test.go.
Deno.test("parseRegistryMessage() accepts what gorouter's subscriber accepts, with its defaults", () => {
  type Case = {
    name: string;
    change: Record<string, unknown>;
    expect: Record<string, unknown>;
    ignored: string[];
  };
  const cases: Case[] = [
    {
      name: "tls_port without server_cert_domain_san",
      change: { server_cert_domain_san: undefined },
      expect: { tls_port: 61001, server_cert_domain_san: undefined },
      ignored: [],
    },
    {
      name: "port 0 beside a tls_port",
      change: { port: 0 },
      expect: { port: 0, tls_port: 61001 },
      ignored: [],
    },
    {
      name: "stale threshold 0 (unset)",
      change: { stale_threshold_in_seconds: 0 },
      expect: { stale_threshold_in_seconds: undefined },
      ignored: [],
    },
    {
      name: "negative stale threshold (gorouter would prune at once)",
      change: { stale_threshold_in_seconds: -5 },
      expect: { stale_threshold_in_seconds: undefined },
      ignored: ["stale_threshold_in_seconds"],
    },
    {
      name: "unknown protocol",
      change: { protocol: "gopher" },
      expect: { protocol: "http1" },
      ignored: ["protocol"],
    },
    {
      name: "http2 protocol",
      change: { protocol: "http2" },
      expect: { protocol: "http2" },
      ignored: [],
    },
    {
      name: "unknown load-balancing algorithm",
      change: { options: { loadbalancing: "random-ish" } },
      expect: { options: {} },
      ignored: ["options.loadbalancing"],
    },
    {
      name: "known load-balancing algorithm",
      change: { options: { loadbalancing: "least-connection" } },
      expect: { options: { loadbalancing: "least-connection" } },
      ignored: [],
    },
    {
      name: "uri with a query (RouteKey cuts it)",
      change: { uris: ["hello.example.com/api?x=1"] },
      expect: { uris: ["hello.example.com/api"] },
      ignored: ["uris.0"],
    },
    {
      name: "one unroutable uri among good ones",
      change: { uris: ["hello.example.com", "bad host", "*.apps.example.com"] },
      expect: { uris: ["hello.example.com", "*.apps.example.com"] },
      ignored: ["uris.1"],
    },
    {
      name: "JSON null reads as absent (Go)",
      change: { app: null, tags: null, stale_threshold_in_seconds: null },
      expect: { app: undefined, tags: undefined },
      ignored: [],
    },
    {
      name: "https route service",
      change: { route_service_url: "https://auth.example.com/check" },
      expect: { route_service_url: "https://auth.example.com/check" },
      ignored: [],
    },
  ];
  for (const c of cases) {
    const ignored: string[] = [];
    const m = parseRegistryMessage(
      JSON.stringify({ ...VALID, ...c.change }),
      (i) => ignored.push(i.field),
    );
    for (const [k, v] of Object.entries(c.expect)) {
      assert.deepEqual((m as Record<string, unknown>)[k], v, `${c.name}: ${k}`);
    }
    assert.deepEqual(ignored, c.ignored, c.name);
  }
});

Deno.test("parseRegistryMessage() refuses what gorouter refuses, naming the field", () => {
  // Not https (gorouter checks only the prefix; a URL is required here).
  rejects(
    { ...VALID, route_service_url: "http://auth.example.com" },
    "invalid-message",
    "route_service_url",
  );
  rejects(
    { ...VALID, route_service_url: "https-but-not-a-url" },
    "invalid-message",
    "route_service_url",
  );
  // Wrong JSON types fail json.Unmarshal in gorouter.
  rejects(
    { ...VALID, private_instance_index: 0 },
    "invalid-message",
    "private_instance_index",
  );
  rejects({ ...VALID, tags: { a: 1 } }, "invalid-message", "tags");
  rejects(
    { ...VALID, stale_threshold_in_seconds: "30" },
    "invalid-message",
    "stale_threshold_in_seconds",
  );
  // Nothing routable left (gorouter would register names no request can match).
  rejects(
    { ...VALID, uris: ["bad host", "a.example.com:8080"] },
    "invalid-message",
    "uris",
  );
});

Deno.test("parseRegistryMessage() refuses an endpoint host that is not an IP address or a DNS name", () => {
  for (
    const host of [
      "127.0.0.1\r\nX: y",
      "10.0.0.5:8080",
      "bad host",
      "*.example.com",
    ]
  ) {
    rejects({ ...VALID, host }, "invalid-message", "host");
  }
  for (const host of ["10.0.0.5", "::1", "cell-1.service.cf.internal"]) {
    assert.equal(
      parseRegistryMessage(JSON.stringify({ ...VALID, host })).host,
      host,
    );
  }
});
