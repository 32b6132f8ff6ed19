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

Deno.test("parseRegistryMessage() rejects an unknown protocol", () => {
  rejects({ ...VALID, protocol: "gopher" }, "invalid-message", "protocol");
});

Deno.test("parseRegistryMessage() requires server_cert_domain_san with tls_port", () => {
  const { server_cert_domain_san: _san, ...rest } = VALID;
  rejects(rest, "invalid-message", "server_cert_domain_san");
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

Deno.test("parseRegistryMessage() rejects a route service it would route around", () => {
  rejects(
    { ...VALID, route_service_url: "https://auth.example.com" },
    "invalid-message",
    "route_service_url",
  );
});
