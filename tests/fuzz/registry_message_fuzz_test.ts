/**
 * Property tests of the registration message parser (lib/routes/_message.ts,
 * CF's `router.register` as gorouter's mbus/subscriber.go reads it) and of
 * the two doors it guards: the router's `POST /v1/register` over a real
 * socket and NATS `router.register` through a real nats-server. Each
 * property: no crash and no hang, a refusal names the field, and a refused
 * message leaves the route table as it was.
 */
import assert from "node:assert/strict";
import { isIP } from "node:net";
import fc from "fast-check";
import { connect } from "@nats-io/transport-node";
import {
  parseRegistryMessage,
  RegistryMessageError,
} from "../../lib/routes/mod.ts";
import { routeUriProblem } from "../../lib/routes/_message.ts";
import { startNatsServer } from "../_helpers/nats.ts";
import { startTestRouter } from "../router/_helpers.ts";
import { bounded, jsonValue, nastyString, params } from "./_fuzz.ts";

const FIELDS = [
  "host",
  "port",
  "tls_port",
  "uris",
  "app",
  "private_instance_id",
  "private_instance_index",
  "server_cert_domain_san",
  "tags",
  "stale_threshold_in_seconds",
  "isolation_segment",
  "route_service_url",
  "endpoint_updated_at_ns",
  "protocol",
  "availability_zone",
  "options",
] as const;

const VALID = {
  host: "10.0.0.5",
  port: 8080,
  tls_port: 61001,
  uris: ["fuzz.example.com", "fuzz.example.com/api"],
  app: "app-guid",
  private_instance_id: "inst-1",
  server_cert_domain_san: "inst-1",
  tags: { component: "route-emitter" },
  stale_threshold_in_seconds: 120,
  protocol: "http1",
  options: { loadbalancing: "round-robin" },
};

/** A field value: mostly of the kind the field wants, often not. */
const fieldValue = fc.oneof(
  jsonValue,
  nastyString,
  fc.integer({ min: -100_000, max: 200_000 }),
  fc.double(),
  fc.array(nastyString, { maxLength: 4 }),
  fc.constantFrom(null, "", 0, -1, 65536, 65535, [], {}),
);

/** The valid message with one field replaced, removed, or one added. */
const mutated = fc.tuple(
  fc.constantFrom(...FIELDS, "extra_field"),
  fc.oneof(fieldValue, fc.constant(undefined)),
).map(([field, value]) => {
  const m: Record<string, unknown> = structuredClone(VALID);
  if (value === undefined) delete m[field];
  else m[field] = value;
  return { field, body: JSON.stringify(m) };
});

/** Anything at all: random text, random JSON, random objects with our keys. */
const anyBody = fc.oneof(
  fc.string({ unit: "binary", maxLength: 200 }),
  jsonValue.map((v) => JSON.stringify(v)),
  fc.dictionary(fc.constantFrom(...FIELDS), fieldValue).map((o) =>
    JSON.stringify(o)
  ),
);

/** What every accepted message must hold, whatever came in. */
function assertSane(m: ReturnType<typeof parseRegistryMessage>) {
  assert.ok(
    isIP(m.host) !== 0 || /^[A-Za-z0-9_.-]+$/.test(m.host),
    `host ${JSON.stringify(m.host)}`,
  );
  assert.ok((m.port ?? 0) > 0 || (m.tls_port ?? 0) > 0);
  for (const p of [m.port, m.tls_port]) {
    if (p !== undefined) assert.ok(Number.isInteger(p) && p >= 0 && p < 65536);
  }
  assert.ok(m.uris.length > 0);
  for (const u of m.uris) assert.equal(routeUriProblem(u), undefined, u);
}

/** Parses; returns the message, or the refusal (anything else fails the property). */
function parse(body: string) {
  return bounded("parseRegistryMessage", () => {
    try {
      return parseRegistryMessage(body);
    } catch (err) {
      assert.ok(err instanceof RegistryMessageError, String(err));
      assert.match(err.reason, /^invalid-(json|message)$/);
      assert.match(
        err.message,
        /^Cannot (accept|read) registration message: /,
      );
      return err;
    }
  });
}

Deno.test("fuzz parseRegistryMessage(): any input is accepted sane or refused with a RegistryMessageError, never a crash or a hang", async () => {
  await fc.assert(
    fc.asyncProperty(anyBody, async (body) => {
      const r = await parse(body);
      if (!(r instanceof RegistryMessageError)) assertSane(r);
    }),
    params(4),
  );
});

Deno.test("fuzz parseRegistryMessage(): one bad field in a valid message is refused naming that field", async () => {
  await fc.assert(
    fc.asyncProperty(mutated, async ({ field, body }) => {
      const r = await parse(body);
      if (r instanceof RegistryMessageError) {
        assert.ok(
          r.message.includes(`${field}`),
          `refusal names "${field}": ${r.message}`,
        );
        // The value itself is not echoed back into logs.
        assert.ok(r.message.length < 500, r.message);
      } else {
        assertSane(r);
      }
    }),
    params(4),
  );
});

Deno.test("fuzz POST /v1/register over a socket: 200 exactly when the parser accepts, 400 naming the field otherwise, and a refusal leaves the route table unchanged", async () => {
  const t = await startTestRouter();
  const token = await t.token("routes.write");
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(mutated.map((m) => m.body), anyBody),
        async (body) => {
          const before = JSON.stringify(t.router.registry.toJson());
          const res = await bounded(
            "POST /v1/register",
            () =>
              fetch(`${t.apiUrl}/v1/register`, {
                method: "POST",
                headers: { authorization: `Bearer ${token}` },
                body,
              }),
          );
          const json = await res.json();
          const local = await parse(body);
          if (local instanceof RegistryMessageError) {
            assert.equal(res.status, 400, JSON.stringify(json));
            assert.equal(json.error, local.reason);
            assert.equal(json.message, local.message);
            assert.equal(
              JSON.stringify(t.router.registry.toJson()),
              before,
              "a refused message changed the route table",
            );
          } else {
            assert.equal(res.status, 200, JSON.stringify(json));
          }
        },
      ),
      params(),
    );
  } finally {
    await t.close();
  }
});

Deno.test("fuzz NATS router.register: refused messages leave the route table unchanged and the subscription alive", async () => {
  await using nats = await startNatsServer();
  const t = await startTestRouter({ nats: { servers: [nats.url] } });
  const nc = await connect({ servers: [nats.url] });
  let n = 0;
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(mutated.map((m) => m.body), anyBody), {
          minLength: 1,
          maxLength: 10,
        }),
        async (bodies) => {
          const refused = [];
          for (const b of bodies) {
            if ((await parse(b)) instanceof RegistryMessageError) {
              refused.push(b);
            }
          }
          const before = JSON.stringify(t.router.registry.toJson());
          for (const b of refused) nc.publish("router.register", b);
          // A valid message after them: once it is in, the ones before it
          // (same publisher, same subject: in order) have been handled.
          const uri = `sentinel-${++n}.example.com`;
          nc.publish(
            "router.register",
            JSON.stringify({ host: "127.0.0.1", port: 9, uris: [uri] }),
          );
          await nc.flush();
          for (
            let i = 0;
            i < 1000 && !t.router.registry.lookup(uri, "/");
            i++
          ) {
            await new Promise((r) => setTimeout(r, 10));
          }
          assert.ok(
            t.router.registry.lookup(uri, "/"),
            "the router still reads NATS",
          );
          t.router.apply("unregister", {
            host: "127.0.0.1",
            port: 9,
            uris: [uri],
          });
          assert.equal(JSON.stringify(t.router.registry.toJson()), before);
        },
      ),
      params(0.3),
    );
  } finally {
    await nc.close();
    await t.close();
  }
});

Deno.test("parseRegistryMessage() refuses 10,000 bad tags in one short line, sender keys quoted (found by the fuzzer)", () => {
  const tags: Record<string, number> = {};
  for (let i = 0; i < 10_000; i++) tags[`k\r\n${i}`] = i;
  assert.throws(
    () => parseRegistryMessage(JSON.stringify({ ...VALID, tags })),
    (e: unknown) => {
      assert.ok(e instanceof RegistryMessageError);
      assert.match(
        e.message,
        /^Cannot accept registration message: tags\."k\\r\\n0": /,
      );
      assert.match(e.message, /\(and 9997 more\)$/);
      assert.ok(e.message.length < 400, `${e.message.length} chars`);
      return true;
    },
  );
});
