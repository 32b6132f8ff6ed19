import assert from "node:assert/strict";
import { Registry } from "../../lib/router/mod.ts";
import { RouterStats } from "../../lib/router/_stats.ts";

Deno.test("Registry shares identical tags and metadata between endpoints and still reports them", () => {
  const r = new Registry();
  for (let i = 0; i < 3; i++) {
    r.register({
      host: `10.0.0.${i}`,
      tls_port: 61001,
      uris: [`a${i}.example.com`],
      private_instance_id: `inst-${i}`,
      server_cert_domain_san: `inst-${i}`,
      tags: { component: "route-emitter" },
      availability_zone: "z1",
    }, 0);
  }
  r.register({ host: "10.0.0.9", port: 8080, uris: ["plain.example.com"] }, 0);
  const eps = [0, 1, 2].map((i) =>
    r.lookup(`a${i}.example.com`, "/")!.endpoints[0]!
  );
  assert.equal(eps[0]!.meta, eps[1]!.meta);
  assert.equal(eps[1]!.meta, eps[2]!.meta);
  assert.deepEqual(eps[0]!.tags, { component: "route-emitter" });
  assert.equal(eps[0]!.availabilityZone, "z1");
  assert.ok(Object.isFrozen(eps[0]!.tags));
  const plain = r.lookup("plain.example.com", "/")!.endpoints[0]!;
  assert.equal(plain.tags, undefined);
  assert.equal(plain.protocol, undefined);
  const json = r.toJson();
  assert.deepEqual(json["a1.example.com"]![0]!.tags, {
    component: "route-emitter",
  });
  assert.equal(json["a1.example.com"]![0]!.availability_zone, "z1");
  assert.equal(json["plain.example.com"]![0]!.tags, null);
  assert.equal(json["plain.example.com"]![0]!.protocol, "http1");
  // Re-registering with other tags changes only that endpoint.
  r.register({
    host: "10.0.0.1",
    tls_port: 61001,
    uris: ["a1.example.com"],
    private_instance_id: "inst-1",
    server_cert_domain_san: "inst-1",
    tags: { component: "other" },
  }, 1);
  assert.deepEqual(r.lookup("a1.example.com", "/")!.endpoints[0]!.tags, {
    component: "other",
  });
  assert.deepEqual(eps[0]!.tags, { component: "route-emitter" });
});

Deno.test("Registry keeps a host's root and path routes apart as routes come and go", () => {
  const r = new Registry();
  const msg = (host: string, uri: string) => ({ host, port: 80, uris: [uri] });
  r.register(msg("10.0.0.1", "h.example.com"), 0);
  r.register(msg("10.0.0.2", "h.example.com/api"), 0);
  r.register(msg("10.0.0.3", "h.example.com/api/v2"), 0);
  assert.equal(r.routeCount, 3);
  assert.equal(r.lookup("h.example.com", "/x")!.uri, "h.example.com");
  assert.equal(r.lookup("h.example.com", "/api/1")!.uri, "h.example.com/api");
  assert.equal(
    r.lookup("h.example.com", "/api/v2/z")!.uri,
    "h.example.com/api/v2",
  );
  r.unregister(msg("10.0.0.2", "h.example.com/api"));
  r.unregister(msg("10.0.0.3", "h.example.com/api/v2"));
  assert.equal(r.routeCount, 1);
  assert.equal(r.lookup("h.example.com", "/api/1")!.uri, "h.example.com");
  r.unregister(msg("10.0.0.1", "h.example.com"));
  assert.equal(r.lookup("h.example.com", "/"), undefined);
  assert.equal(r.routeCount, 0);
  assert.equal(r.endpointCount, 0);
  // A path route first, then the root.
  r.register(msg("10.0.0.4", "p.example.com/only"), 0);
  assert.equal(r.lookup("p.example.com", "/"), undefined);
  r.register(msg("10.0.0.5", "p.example.com"), 0);
  assert.equal(r.lookup("p.example.com", "/")!.endpoints[0]!.host, "10.0.0.5");
  assert.equal(
    r.lookup("p.example.com", "/only")!.endpoints[0]!.host,
    "10.0.0.4",
  );
  assert.deepEqual([...r.pools()].map((p) => p.uri).sort(), [
    "p.example.com",
    "p.example.com/only",
  ]);
  // Many endpoints in one pool (past the exact-size copies and the key index).
  for (let i = 0; i < 40; i++) {
    r.register(msg(`10.1.0.${i}`, "big.example.com"), 0);
  }
  const big = r.lookup("big.example.com", "/")!;
  assert.equal(big.size, 40);
  assert.equal(big.get("10.1.0.17:80")!.host, "10.1.0.17");
  for (let i = 0; i < 40; i += 2) {
    r.unregister(msg(`10.1.0.${i}`, "big.example.com"));
  }
  assert.equal(big.size, 20);
  assert.equal(big.get("10.1.0.17:80")!.host, "10.1.0.17");
  assert.equal(big.get("10.1.0.16:80"), undefined);
});

Deno.test("RouterStats counts accepted registrations into registry_messages_total", () => {
  const s = new RouterStats(() => ({ routes: 0, endpoints: 0 }));
  for (let i = 0; i < 3; i++) s.accepted("nats", "register");
  s.accepted("http", "unregister");
  let text = s.render();
  assert.match(
    text,
    /registry_messages_total\{source="nats",action="register",result="ok"\} 3/,
  );
  assert.match(
    text,
    /registry_messages_total\{source="http",action="unregister",result="ok"\} 1/,
  );
  s.accepted("nats", "register");
  text = s.render();
  assert.match(
    text,
    /registry_messages_total\{source="nats",action="register",result="ok"\} 4/,
  );
});
