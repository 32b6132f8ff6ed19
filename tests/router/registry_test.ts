import assert from "node:assert/strict";
import {
  classifyFailure,
  failureStatus,
  isDialError,
  isHandshakeError,
  isIdentityError,
  isUntrustedCertError,
  Registry,
  splitUri,
} from "../../lib/router/mod.ts";
import {
  hostname,
  stickyTarget,
  traceparent,
} from "../../lib/router/_headers.ts";

Deno.test("Registry.register() overwrites the same host:port and keys TLS endpoints by tls_port", () => {
  const removed: string[] = [];
  const r = new Registry({ onRemove: (ep) => removed.push(ep.key) });
  r.register({
    host: "10.0.0.1",
    port: 8080,
    uris: ["A.example.com"],
    private_instance_id: "i1",
  }, 1);
  r.register({
    host: "10.0.0.1",
    port: 8080,
    uris: ["a.example.com"],
    private_instance_id: "i2",
  }, 2);
  const pool = r.lookup("a.example.com", "/")!;
  assert.equal(pool.size, 1);
  assert.equal(pool.endpoints[0]!.instanceId, "i2");
  assert.equal(pool.endpoints[0]!.updatedAt, 2);
  r.register({
    host: "10.0.0.1",
    port: 8080,
    tls_port: 61001,
    uris: ["a.example.com"],
    server_cert_domain_san: "i3",
  }, 3);
  assert.equal(pool.size, 2);
  assert.deepEqual(pool.endpoints.map((e) => e.key), [
    "10.0.0.1:8080",
    "10.0.0.1:61001",
  ]);
  assert.equal(pool.endpoints[1]!.tls, true);
  assert.equal(r.routeCount, 1);
  assert.equal(r.endpointCount, 2);
  // A new identity at the same address releases the old transport.
  r.register({
    host: "10.0.0.1",
    tls_port: 61001,
    uris: ["a.example.com"],
    server_cert_domain_san: "i4",
  }, 4);
  assert.deepEqual(removed, ["10.0.0.1:61001"]);
});

Deno.test("Registry.unregister() matches host, port and uris", () => {
  const r = new Registry();
  const m = {
    host: "10.0.0.1",
    port: 8080,
    uris: ["a.example.com", "b.example.com/x"],
  };
  r.register(m, 0);
  r.register({ host: "10.0.0.2", port: 8080, uris: ["a.example.com"] }, 0);
  assert.equal(
    r.unregister({ host: "10.0.0.1", port: 9999, uris: ["a.example.com"] })
      .removed,
    0,
  );
  assert.equal(
    r.unregister({ host: "10.0.0.1", port: 8080, uris: ["a.example.com"] })
      .removed,
    1,
  );
  assert.equal(r.lookup("a.example.com", "/")!.endpoints[0]!.host, "10.0.0.2");
  assert.ok(r.lookup("b.example.com", "/x/y"));
  assert.equal(r.unregister(m).removed, 1);
  assert.equal(r.lookup("b.example.com", "/x"), undefined);
  assert.equal(r.routeCount, 1);
  assert.equal(r.endpointCount, 1);
});

Deno.test("Registry applies the smaller of the message and default stale thresholds", () => {
  const r = new Registry({ staleThresholdMs: 120_000 });
  r.register({
    host: "h",
    port: 1,
    uris: ["a.example.com"],
    stale_threshold_in_seconds: 30,
  }, 0);
  r.register({
    host: "h",
    port: 2,
    uris: ["a.example.com"],
    stale_threshold_in_seconds: 600,
  }, 0);
  r.register({ host: "h", port: 3, uris: ["a.example.com"] }, 0);
  assert.deepEqual(
    r.lookup("a.example.com", "/")!.endpoints.map((e) => e.staleMs),
    [30_000, 120_000, 120_000],
  );
});

Deno.test("Pool.pick() skips cooling and full endpoints and reports exhaustion", () => {
  const r = new Registry();
  for (let p = 1; p <= 3; p++) {
    r.register({ host: "h", port: p, uris: ["a.example.com"] }, 0);
  }
  const pool = r.lookup("a.example.com", "/")!;
  const seen = [0, 1, 2, 3, 4, 5].map(() =>
    (pool.pick(0, undefined, "round-robin", 10) as { port: number }).port
  );
  assert.deepEqual(seen, [1, 2, 3, 1, 2, 3]);
  pool.endpoints[0]!.failedUntil = 100;
  const picks = new Set(
    [0, 1, 2, 3].map(() =>
      (pool.pick(50, undefined, "round-robin", 10) as { port: number }).port
    ),
  );
  assert.deepEqual([...picks].sort(), [2, 3]);
  // Every endpoint cooling: the one whose cooldown ends first is used.
  pool.endpoints[1]!.failedUntil = 200;
  pool.endpoints[2]!.failedUntil = 300;
  assert.equal(
    (pool.pick(50, undefined, "round-robin", 10) as { port: number }).port,
    1,
  );
  for (const ep of pool.endpoints) {
    ep.failedUntil = 0;
    ep.inflight = 10;
  }
  assert.equal(pool.pick(0, undefined, "least-connection", 10), "exhausted");
  pool.endpoints[2]!.inflight = 3;
  assert.equal(
    (pool.pick(0, undefined, "least-connection", 10) as { port: number }).port,
    3,
  );
  assert.equal(
    pool.pick(0, [pool.endpoints[2]!], "least-connection", 10),
    "exhausted",
  );
});

Deno.test("Registry lookup stays a map hit with 100k endpoints", () => {
  const r = new Registry();
  for (let i = 0; i < 100_000; i++) {
    r.register({
      host: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
      tls_port: 61001,
      uris: [`app-${i % 25_000}.example.com`],
      server_cert_domain_san: `inst-${i}`,
    }, 0);
  }
  assert.equal(r.endpointCount, 100_000);
  assert.equal(r.routeCount, 25_000);
  assert.equal(r.lookup("app-24999.example.com", "/")!.size, 4);
});

Deno.test("splitUri() and hostname() normalise case, ports and trailing slashes", () => {
  assert.deepEqual(splitUri("Hello.Example.com"), ["hello.example.com", ""]);
  assert.deepEqual(splitUri("hello.example.com/API/"), [
    "hello.example.com",
    "/api",
  ]);
  assert.deepEqual(splitUri("hello.example.com/"), ["hello.example.com", ""]);
  assert.equal(hostname("Hello.Example.com:8080"), "hello.example.com");
  assert.equal(hostname("[::1]:8080"), "[::1]");
  assert.equal(hostname(""), "");
});

Deno.test("stickyTarget() needs both __VCAP_ID__ and a sticky cookie", () => {
  assert.equal(
    stickyTarget("JSESSIONID=a; __VCAP_ID__=i1", ["JSESSIONID"]),
    "i1",
  );
  assert.equal(stickyTarget("__VCAP_ID__=i1", ["JSESSIONID"]), undefined);
  assert.equal(
    stickyTarget("OTHER=a; __VCAP_ID__=i1", ["JSESSIONID"]),
    undefined,
  );
});

Deno.test("traceparent() continues valid traces and starts new ones otherwise", () => {
  const id = "0af76519-16cd-43dd-8448-eb211c80319c";
  assert.match(
    traceparent(undefined, id),
    /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/,
  );
  assert.match(
    traceparent("garbage", id),
    /^00-0af7651916cd43dd8448eb211c80319c-/,
  );
  const t = traceparent(
    "00-11111111111111111111111111111111-2222222222222222-00",
    id,
  );
  assert.match(t, /^00-11111111111111111111111111111111-[0-9a-f]{16}-00$/);
});

Deno.test("failure classifiers sort backend errors by code", () => {
  const e = (code: string) => Object.assign(new Error("x"), { code });
  assert.ok(isIdentityError(e("ERR_TLS_CERT_ALTNAME_INVALID")));
  assert.ok(isUntrustedCertError(e("CERT_HAS_EXPIRED")));
  assert.ok(isUntrustedCertError(e("DEPTH_ZERO_SELF_SIGNED_CERT")));
  assert.ok(isDialError(e("ECONNREFUSED")));
  assert.ok(isHandshakeError(e("ERR_SSL_WRONG_VERSION_NUMBER")));
  assert.ok(isHandshakeError(e("ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED")));
  assert.equal(classifyFailure(e("ECONNRESET"), "handshake"), "handshake");
  assert.equal(classifyFailure(e("ECONNRESET"), "sent"), "reset");
  assert.equal(failureStatus("identity"), 503);
  assert.equal(failureStatus("untrusted"), 526);
  assert.equal(failureStatus("handshake"), 525);
  assert.equal(failureStatus("dial"), 502);
});

Deno.test("Registry.register(): a heartbeat keeps a failed endpoint's cooldown; a new identity clears it", () => {
  const r = new Registry();
  const msg = {
    host: "h",
    tls_port: 1,
    uris: ["a.example.com"],
    server_cert_domain_san: "inst-1",
  };
  r.register(msg, 0);
  const ep = r.lookup("a.example.com", "/")!.endpoints[0]!;
  ep.failedUntil = 30_000;
  r.register(msg, 20_000); // the 20 s heartbeat
  assert.equal(ep.failedUntil, 30_000);
  r.register({ ...msg, server_cert_domain_san: "inst-2" }, 25_000);
  assert.equal(ep.failedUntil, 0);
});

// registry/registry_test.go "Lookup" › "wildcard routes" and route/uris.go
// NextWildcard: the most specific wildcard wins; exact names beat wildcards.
Deno.test("Registry.lookup() finds wildcard routes, most specific first, as gorouter", () => {
  const r = new Registry();
  const reg = (uri: string, port: number) =>
    r.register({ host: "10.0.0.1", port, uris: [uri] }, 0);
  reg("*.example.com", 1);
  reg("*.apps.example.com", 2);
  reg("exact.apps.example.com", 3);
  reg("*.apps.example.com/api", 4);
  const port = (host: string, path = "/") =>
    r.lookup(host, path)?.endpoints[0]?.port;
  const table: Array<[string, string, number | undefined]> = [
    ["exact.apps.example.com", "/", 3],
    ["foo.apps.example.com", "/", 2],
    ["foo.apps.example.com", "/api/v1", 4],
    ["foo.bar.apps.example.com", "/", 2],
    ["other.example.com", "/", 1],
    ["apps.example.com", "/", 1],
    ["example.com", "/", undefined],
    ["foo.example.org", "/", undefined],
  ];
  for (const [host, path, want] of table) {
    assert.equal(port(host, path), want, `${host}${path}`);
  }
  // When the last wildcard goes, plain lookups stop trying wildcards.
  r.unregister({ host: "10.0.0.1", port: 1, uris: ["*.example.com"] });
  assert.equal(port("other.example.com"), undefined);
  r.unregister({ host: "10.0.0.1", port: 2, uris: ["*.apps.example.com"] });
  r.unregister({ host: "10.0.0.1", port: 4, uris: ["*.apps.example.com/api"] });
  assert.equal(port("foo.apps.example.com"), undefined);
  assert.equal(port("exact.apps.example.com"), 3);
});
