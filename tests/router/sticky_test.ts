/**
 * Sticky sessions over real sockets, row by row as gorouter's
 * proxy/round_tripper/proxy_round_tripper_test.go ("when using sticky
 * sessions", rt:) and proxy/session_affinity_test.go (sa:) expect them of
 * `setupStickySession` and `GetStickySession`. The backends set whatever
 * Set-Cookie / WWW-Authenticate lines the row asks for and answer with
 * their instance id.
 */
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { startNatsServer } from "../_helpers/nats.ts";
import { freePort } from "../_helpers/ports.ts";
import { request, startBackend, startTestRouter, testPki } from "./_helpers.ts";
import { startGorouter } from "../_helpers/gorouter.ts";
import type { Backend, TestRouter } from "./_helpers.ts";

const ROUTE = "sticky.example.com";

/** One request and the Set-Cookie lines the client must see. */
interface Row {
  /** The gorouter test it mirrors. */
  mirrors: string;
  /** plain: default config; secure: `secure_cookies`; negotiate: `sticky_sessions_for_auth_negotiate` (negotiateSecure: both). */
  router?: "plain" | "secure" | "negotiate" | "negotiateSecure";
  path?: string;
  cookie?: string;
  authorization?: string;
  /** Set-Cookie lines the backend sends. */
  respond?: string[];
  wwwAuthenticate?: string;
  /** Instance that must answer (default: any). */
  answeredBy?: string;
  /** Instances that must not answer. */
  notBy?: string[];
  /** Set-Cookie lines the client gets; `{id}` is the answering instance. */
  expect: string[];
  status?: number;
  routerError?: string;
}

const EXPIRES = "Expires=Wed, 01 Jan 2020 01:00:00 GMT";

const ROWS: Row[] = [
  {
    mirrors:
      "rt: no cookies on the request, JSESSIONID on the response: will select an endpoint and set the VCAP_ID to the privateInstanceId",
    respond: ["JSESSIONID=s1"],
    expect: ["JSESSIONID=s1", "__VCAP_ID__={id}; Path=/; HttpOnly"],
  },
  {
    mirrors:
      "rt: when the JSESSIONID cookie has properties set, sets the same properties on the VCAP_ID",
    respond: [
      `JSESSIONID=s1; ${EXPIRES}; HttpOnly; Secure; SameSite=Strict; Partitioned`,
    ],
    expect: [
      `JSESSIONID=s1; ${EXPIRES}; HttpOnly; Secure; SameSite=Strict; Partitioned`,
      `__VCAP_ID__={id}; Path=/; ${EXPIRES}; HttpOnly; Secure; SameSite=Strict; Partitioned`,
    ],
  },
  {
    mirrors:
      "rt: JSESSION_ID and a VCAP_ID on the response: leaves the VCAP_ID alone and does not overwrite it",
    respond: [
      "JSESSIONID=s1",
      "__VCAP_ID__=vcap-id-property-already-on-the-response",
    ],
    expect: [
      "JSESSIONID=s1",
      "__VCAP_ID__=vcap-id-property-already-on-the-response",
    ],
  },
  {
    mirrors:
      "rt: only a VCAP_ID set on the response: leaves the VCAP_ID alone and does not overwrite it",
    respond: ["__VCAP_ID__=vcap-id-property-already-on-the-response"],
    expect: ["__VCAP_ID__=vcap-id-property-already-on-the-response"],
  },
  {
    mirrors:
      "sa: first request, the response does not contain a JSESSIONID cookie: does not respond with a VCAP_ID cookie",
    respond: ["OTHER=1; Max-Age=10"],
    expect: ["OTHER=1; Max-Age=10"],
  },
  {
    mirrors: "sa: no Set-Cookie at all: no VCAP_ID",
    expect: [],
  },
  {
    mirrors:
      "sa: the response contains a JSESSIONID cookie (Max-Age=1): responds with a VCAP_ID cookie scoped to the session (MaxAge zero)",
    respond: ["JSESSIONID=xxx; Max-Age=1"],
    expect: ["JSESSIONID=xxx; Max-Age=1", "__VCAP_ID__={id}; Path=/; HttpOnly"],
  },
  {
    mirrors:
      "sa: the JSESSIONID cookie has an expiry date: responds with a VCAP_ID cookie that has the same expiry",
    respond: ["JSESSIONID=xxx; expires=Thu, 01-Jan-2065 10:00:00 GMT"],
    expect: [
      "JSESSIONID=xxx; expires=Thu, 01-Jan-2065 10:00:00 GMT",
      "__VCAP_ID__={id}; Path=/; Expires=Thu, 01 Jan 2065 10:00:00 GMT; HttpOnly",
    ],
  },
  {
    mirrors:
      "sa: the JSESSIONID cookie is set to Secure: responds with a VCAP_ID cookie that is also Secure",
    respond: ["JSESSIONID=xxx; Secure"],
    expect: [
      "JSESSIONID=xxx; Secure",
      "__VCAP_ID__={id}; Path=/; HttpOnly; Secure",
    ],
  },
  {
    mirrors:
      "sa: with secure cookies enabled and non-secure cookie: marks the cookie as secure only",
    router: "secure",
    respond: ["JSESSIONID=xxx"],
    expect: ["JSESSIONID=xxx", "__VCAP_ID__={id}; Path=/; HttpOnly; Secure"],
  },
  {
    mirrors:
      "sa: the JSESSIONID cookie has SameSite attribute set: the VCAP_ID has the same SameSite attribute",
    respond: ["JSESSIONID=xxx; SameSite=lax"],
    expect: [
      "JSESSIONID=xxx; SameSite=lax",
      "__VCAP_ID__={id}; Path=/; HttpOnly; SameSite=Lax",
    ],
  },
  {
    mirrors:
      "Go net/http: an unknown SameSite value is the default mode, not written",
    respond: ["JSESSIONID=xxx; SameSite=Bogus"],
    expect: [
      "JSESSIONID=xxx; SameSite=Bogus",
      "__VCAP_ID__={id}; Path=/; HttpOnly",
    ],
  },
  {
    mirrors:
      "sa: context paths: the VCAP_ID cookie has the route's context path",
    path: "/path1/x",
    answeredBy: "inst-c",
    respond: ["JSESSIONID=xxx"],
    expect: ["JSESSIONID=xxx", "__VCAP_ID__=inst-c; Path=/path1; HttpOnly"],
  },
  {
    mirrors:
      "rt: setupStickySession breaks at the first sticky cookie: exactly one VCAP_ID, attributes of the first",
    respond: ["SESSION=b; Secure", "JSESSIONID=a; SameSite=None"],
    expect: [
      "SESSION=b; Secure",
      "JSESSIONID=a; SameSite=None",
      "__VCAP_ID__={id}; Path=/; HttpOnly; Secure",
    ],
  },
  {
    mirrors:
      "rt: sticky cookies on the request, JSESSIONID on the response: will select the previous backend and VCAP_ID is set on the response",
    cookie: "JSESSIONID=s1; __VCAP_ID__=inst-b",
    answeredBy: "inst-b",
    respond: ["JSESSIONID=s1"],
    expect: ["JSESSIONID=s1", "__VCAP_ID__=inst-b; Path=/; HttpOnly"],
  },
  {
    mirrors:
      "rt: the JSESSIONID on the response has new properties: the VCAP_ID on the response is set with the same new values",
    cookie: "JSESSIONID=s1; __VCAP_ID__=inst-a",
    answeredBy: "inst-a",
    respond: [
      `JSESSIONID=s2; ${EXPIRES}; HttpOnly; Secure; SameSite=Strict; Partitioned`,
    ],
    expect: [
      `JSESSIONID=s2; ${EXPIRES}; HttpOnly; Secure; SameSite=Strict; Partitioned`,
      `__VCAP_ID__=inst-a; Path=/; ${EXPIRES}; HttpOnly; Secure; SameSite=Strict; Partitioned`,
    ],
  },
  {
    mirrors:
      "sa: subsequent requests, when the JSESSIONID is expired: expires the VCAP_ID",
    cookie: "JSESSIONID=s1; __VCAP_ID__=inst-a",
    answeredBy: "inst-a",
    respond: ["JSESSIONID=; Max-Age=0"],
    expect: [
      "JSESSIONID=; Max-Age=0",
      "__VCAP_ID__=inst-a; Path=/; Max-Age=0; HttpOnly",
    ],
  },
  {
    mirrors:
      "sa: a negative Max-Age also expires the VCAP_ID (Go reads it as -1)",
    respond: ["JSESSIONID=; Max-Age=-5"],
    expect: [
      "JSESSIONID=; Max-Age=-5",
      "__VCAP_ID__={id}; Path=/; Max-Age=0; HttpOnly",
    ],
  },
  {
    mirrors: "Go net/http: a Max-Age strconv.Atoi cannot read is ignored",
    respond: ["JSESSIONID=x; Max-Age=-1e3"],
    expect: [
      "JSESSIONID=x; Max-Age=-1e3",
      "__VCAP_ID__={id}; Path=/; HttpOnly",
    ],
  },
  {
    mirrors: "Go net/http: Max-Age=-05 is read as -5, so it deletes",
    respond: ["JSESSIONID=x; Max-Age=-05"],
    expect: [
      "JSESSIONID=x; Max-Age=-05",
      "__VCAP_ID__={id}; Path=/; Max-Age=0; HttpOnly",
    ],
  },
  {
    mirrors:
      "rt: sticky cookies on the request, no cookies set on the response: no cookies are set on the response",
    cookie: "JSESSIONID=s1; __VCAP_ID__=inst-a",
    answeredBy: "inst-a",
    expect: [],
  },
  {
    mirrors:
      "rt: no cookies on the response, the VCAP_ID on the request doesn't match the chosen backend: will select a new backend and update the VCAP_ID",
    cookie: "JSESSIONID=s1; __VCAP_ID__=inst-gone",
    notBy: ["inst-c"],
    expect: ["__VCAP_ID__={id}; Path=/; HttpOnly"],
  },
  {
    mirrors:
      "rt: JSESSIONID on the response, the VCAP_ID on the request doesn't match the chosen backend: will select a new backend and update the VCAP_ID",
    cookie: "JSESSIONID=s1; __VCAP_ID__=inst-gone",
    respond: ["JSESSIONID=s1"],
    expect: ["JSESSIONID=s1", "__VCAP_ID__={id}; Path=/; HttpOnly"],
  },
  {
    mirrors:
      "rt: VCAP_ID on the response, the VCAP_ID on the request doesn't match the chosen backend: leaves it alone and does not overwrite it",
    cookie: "JSESSIONID=s1; __VCAP_ID__=inst-gone",
    respond: ["__VCAP_ID__=vcap-id-property-already-on-the-response"],
    expect: ["__VCAP_ID__=vcap-id-property-already-on-the-response"],
  },
  {
    mirrors:
      "GetStickySession: a VCAP_ID without a sticky cookie does not pin, so nothing is re-issued",
    cookie: "__VCAP_ID__=inst-gone",
    expect: [],
  },
  {
    mirrors:
      "rt: 'WWW-Authenticate: Negotiate' on the response: will select an endpoint and set the VCAP_ID (MaxAge 60, SameSite Strict)",
    router: "negotiate",
    wwwAuthenticate: "Negotiate SOME-TOKEN",
    expect: ["__VCAP_ID__={id}; Path=/; Max-Age=60; HttpOnly; SameSite=Strict"],
  },
  {
    mirrors:
      "rt: Negotiate and a VCAP_ID set on the response: leaves the VCAP_ID alone and does not overwrite it",
    router: "negotiate",
    wwwAuthenticate: "Negotiate SOME-TOKEN",
    respond: ["__VCAP_ID__=vcap-id-property-already-on-the-response"],
    expect: ["__VCAP_ID__=vcap-id-property-already-on-the-response"],
  },
  {
    mirrors:
      "rt: Negotiate and JSESSIONID cookie with extra properties: sets the auth negotiate default properties on the VCAP_ID",
    router: "negotiate",
    wwwAuthenticate: "Negotiate SOME-TOKEN",
    respond: [`JSESSIONID=s1; ${EXPIRES}; HttpOnly; Secure; SameSite=Strict`],
    expect: [
      `JSESSIONID=s1; ${EXPIRES}; HttpOnly; Secure; SameSite=Strict`,
      "__VCAP_ID__={id}; Path=/; Max-Age=60; HttpOnly; SameSite=Strict",
    ],
  },
  {
    mirrors:
      "rt: Negotiate, when config requires secure cookies: sets the auth negotiate default properties with Secure on the VCAP_ID",
    router: "negotiateSecure",
    wwwAuthenticate: "Negotiate SOME-TOKEN",
    respond: [`JSESSIONID=s1; ${EXPIRES}; HttpOnly; Secure; SameSite=Strict`],
    expect: [
      `JSESSIONID=s1; ${EXPIRES}; HttpOnly; Secure; SameSite=Strict`,
      "__VCAP_ID__={id}; Path=/; Max-Age=60; HttpOnly; Secure; SameSite=Strict",
    ],
  },
  {
    mirrors:
      "rt: when sticky sessions for 'Authorization: Negotiate' is disabled: does not set the VCAP_ID cookie",
    wwwAuthenticate: "Negotiate SOME-TOKEN",
    expect: [],
  },
  {
    mirrors:
      "rt: Negotiate disabled, JSESSIONID cookie with extra properties: sets the VCAP_ID cookie with JSESSION_ID properties",
    wwwAuthenticate: "Negotiate SOME-TOKEN",
    respond: [`JSESSIONID=s1; ${EXPIRES}; HttpOnly; Secure; SameSite=Strict`],
    expect: [
      `JSESSIONID=s1; ${EXPIRES}; HttpOnly; Secure; SameSite=Strict`,
      `__VCAP_ID__={id}; Path=/; ${EXPIRES}; HttpOnly; Secure; SameSite=Strict`,
    ],
  },
  {
    mirrors:
      "rt: VCAP_ID cookie and 'Authorization: Negotiate' on the request: will select the previous backend",
    router: "negotiate",
    cookie: "__VCAP_ID__=inst-b",
    authorization: "Negotiate SOME-TOKEN",
    answeredBy: "inst-b",
    expect: [],
  },
  {
    mirrors:
      "round_robin: endpoint-missing-but-request-must-be-sticky: Negotiate to a gone instance is NoEndpointsAvailable (502)",
    router: "negotiate",
    cookie: "__VCAP_ID__=inst-gone",
    authorization: "negotiate SOME-TOKEN",
    status: 502,
    routerError: "endpoint_failure (No endpoints available)",
    expect: [],
  },
];

/** Sends each row to the router at `url` and checks what comes back. */
async function runRows(url: string, rows: Row[], who: string): Promise<void> {
  for (const row of rows) {
    const headers: Record<string, string> = {};
    if (row.cookie !== undefined) headers.cookie = row.cookie;
    if (row.authorization !== undefined) {
      headers.authorization = row.authorization;
    }
    if (row.respond !== undefined) {
      headers["x-test-set-cookie"] = JSON.stringify(row.respond);
    }
    if (row.wwwAuthenticate !== undefined) {
      headers["x-test-www-authenticate"] = row.wwwAuthenticate;
    }
    // Pinned rows repeat, so a round-robin hit cannot pass by luck.
    const rounds = row.answeredBy !== undefined || row.notBy ? 4 : 1;
    for (let i = 0; i < rounds; i++) {
      const res = await request(url, ROUTE, { path: row.path ?? "/", headers });
      const at = `${who}: ${row.mirrors} (round ${i + 1})`;
      assert.equal(res.status, row.status ?? 200, at);
      if (row.routerError !== undefined) {
        assert.equal(res.headers["x-cf-routererror"], row.routerError, at);
      } else {
        assert.ok(res.text.startsWith("inst-"), `${at}: ${res.text}`);
      }
      if (row.answeredBy !== undefined) {
        assert.equal(res.text, row.answeredBy, at);
      }
      for (const no of row.notBy ?? []) assert.notEqual(res.text, no, at);
      assert.deepEqual(
        res.headers["set-cookie"] ?? [],
        row.expect.map((c) => c.replace("{id}", res.text)),
        at,
      );
    }
  }
}

/** Backends inst-a, inst-b (on ROUTE) and inst-c (ROUTE/path1) answering as rows ask. */
async function startBackends(): Promise<Backend[]> {
  const backends: Backend[] = [];
  for (const id of ["inst-a", "inst-b", "inst-c"]) {
    backends.push(
      await startBackend({
        name: id,
        handler: (req, res) => {
          const sc = req.headers["x-test-set-cookie"];
          if (typeof sc === "string") {
            res.setHeader("set-cookie", JSON.parse(sc));
          }
          const wa = req.headers["x-test-www-authenticate"];
          if (typeof wa === "string") res.setHeader("www-authenticate", wa);
          res.end(id);
          return true;
        },
      }),
    );
  }
  return backends;
}

/** The registrations of {@linkcode startBackends}' backends. */
function registrations(
  backends: Backend[],
): {
  host: string;
  port: number;
  uris: string[];
  private_instance_id: string;
}[] {
  return [ROUTE, ROUTE, `${ROUTE}/path1`].map((uri, i) => ({
    host: "127.0.0.1",
    port: backends[i]!.port,
    uris: [uri],
    private_instance_id: backends[i]!.name,
  }));
}

const NAMES = ["JSESSIONID", "SESSION"];

Deno.test("sticky sessions behave as gorouter's setupStickySession, row by row", async () => {
  const backends = await startBackends();
  const routers: Record<string, TestRouter> = {};
  try {
    routers.plain = await startTestRouter({ sticky_cookie_names: NAMES });
    routers.secure = await startTestRouter({ secure_cookies: true });
    routers.negotiate = await startTestRouter({
      sticky_sessions_for_auth_negotiate: true,
    });
    routers.negotiateSecure = await startTestRouter({
      sticky_sessions_for_auth_negotiate: true,
      secure_cookies: true,
    });
    for (const t of Object.values(routers)) {
      for (const r of registrations(backends)) t.router.apply("register", r);
    }
    for (const [name, t] of Object.entries(routers)) {
      await runRows(
        t.url,
        ROWS.filter((r) => (r.router ?? "plain") === name),
        `sigil ${name}`,
      );
    }
  } finally {
    for (const t of Object.values(routers)) await t.close();
    for (const b of backends) await b.close();
  }
});

Deno.test("the real gorouter (April 2023) answers the same rows it supports", async () => {
  // That version predates Partitioned (Go 1.19) and
  // sticky_sessions_for_auth_negotiate; every other row runs, the secure
  // ones against a gorouter with secure_cookies.
  const supported = (r: Row) =>
    !(r.router ?? "").startsWith("negotiate") &&
    !(r.respond ?? []).some((c) => c.includes("Partitioned"));
  const configs = {
    plain: { sticky_session_cookie_names: NAMES },
    secure: { secure_cookies: true },
  };
  const backends = await startBackends();
  const dir = await Deno.makeTempDir({ prefix: "sigil-sticky-gorouter-" });
  await using nats = await startNatsServer();
  const nc = await connect({ servers: nats.url });
  try {
    let ran = 0;
    for (const [name, extra] of Object.entries(configs)) {
      const rows = ROWS.filter((r) =>
        supported(r) && (r.router ?? "plain") === name
      );
      ran += rows.length;
      const port = freePort();
      await Deno.mkdir(`${dir}/${name}`);
      await using gorouter = await startGorouter(`${dir}/${name}`, {
        port,
        natsPort: nats.port,
        caCerts: [(await testPki()).rootPem],
        extra,
      });
      const url = `http://127.0.0.1:${port}`;
      // gorouter subscribes a moment after it serves: wait for all three.
      for (let i = 0;; i++) {
        for (const r of registrations(backends)) {
          nc.publish("router.register", JSON.stringify(r));
        }
        await nc.flush();
        const seen = new Set<string>();
        for (let j = 0; j < 4; j++) seen.add((await request(url, ROUTE)).text);
        seen.add((await request(url, ROUTE, { path: "/path1" })).text);
        if (seen.size === 3) break;
        if (i >= 300) {
          throw new Error(`gorouter never routed to all: ${[...seen]}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      try {
        await runRows(url, rows, `gorouter ${name}`);
      } catch (e) {
        throw new Error(`${e}\n${gorouter.output().slice(-2000)}`);
      }
    }
    assert.ok(ran >= 21, `only ${ran} rows ran against gorouter`);
  } finally {
    await nc.close();
    for (const b of backends) await b.close();
    await Deno.remove(dir, { recursive: true });
  }
});
