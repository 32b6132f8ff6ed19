/**
 * `POST /api/v1/interpolate` with a VCAP_SERVICES of several bindings, some
 * readable and some not, over real mTLS. What CredHub does, from its source
 * (cloudfoundry/credhub 99f4ffd):
 * - `interpolation/DefaultInterpolationHandler.kt` walks the services in the
 *   order received; for each `credentials.credhub_ref` (else `credhub-ref`)
 *   it checks `read`, then takes the latest version. The first ref that is
 *   denied or missing throws `EntryNotFoundException(INVALID_ACCESS)`, so the
 *   whole request fails: no partial answer, readable refs are not returned.
 * - `generate/ExceptionHandlers.kt` maps that to 404 and the body
 *   `{"error":"The request could not be completed because the credential
 *   does not exist or you do not have sufficient authorization."}`; a ref to a
 *   credential of another type is `ParameterizedValidationException` → 400.
 * - `InterpolationIntegrationTest.java` and `DefaultInterpolationHandlerTest.java`
 *   pin the same: missing → 4xx with that error, lacking permission →
 *   EntryNotFoundException, bindings without credentials left as they are.
 * @module
 */
import assert from "node:assert/strict";
import {
  brokerStore,
  credhubRequest,
  startTestCredhub,
} from "../_helpers/credhub.ts";
import type { TestCredhub } from "../_helpers/credhub.ts";

const NOT_FOUND =
  '{"error":"The request could not be completed because the credential does not exist or you do not have sufficient authorization."}';

async function instanceOf(t: TestCredhub, app: string) {
  const c = await t.pki.issueInstance({ instanceId: crypto.randomUUID(), app });
  return { cert: c.certPem, key: c.keyPem };
}

Deno.test("credhub interpolate (DefaultInterpolationHandler.kt): several bindings all readable → 200, each ref replaced, others byte-for-byte as sent", async () => {
  const t = await startTestCredhub();
  try {
    const broker = await t.token("credhub.write credhub.read");
    const app = crypto.randomUUID();
    const n1 = `/c/b/db/${crypto.randomUUID()}/creds`;
    const n2 = `/c/b/mq/${crypto.randomUUID()}/creds`;
    const n3 = `/c/b/mq/${crypto.randomUUID()}/creds`;
    await brokerStore(t, broker, n1, "json", {
      uri: "postgres://u:p@db/x",
      opts: { ssl: true, hosts: ["a", "b"] },
    }, [app]);
    await brokerStore(t, broker, n2, "json", { pw: "zwölf 🔑" }, [app]);
    await brokerStore(t, broker, n3, "json", { snake: 1 }, [app]);
    const body = JSON.stringify({
      "user-provided": [{ name: "plain", credentials: { k: "v" } }],
      db: [{
        name: "pg",
        tags: ["sql"],
        credentials: { "credhub-ref": `((${n1}))` },
      }],
      mq: [
        { name: "one", credentials: { "credhub-ref": `((${n2}))` } },
        // CredHub takes credhub_ref before credhub-ref.
        { name: "two", credentials: { credhub_ref: `((${n3}))` } },
        { name: "no-creds" },
      ],
      odd: "not a list",
    });
    const r = await credhubRequest(t, "POST", "/api/v1/interpolate", {
      ...await instanceOf(t, app),
      body,
    });
    assert.equal(r.status, 200, r.text);
    assert.match(r.contentType, /^application\/json/);
    assert.equal(
      r.text,
      JSON.stringify({
        "user-provided": [{ name: "plain", credentials: { k: "v" } }],
        db: [{
          name: "pg",
          tags: ["sql"],
          credentials: {
            uri: "postgres://u:p@db/x",
            opts: { ssl: true, hosts: ["a", "b"] },
          },
        }],
        mq: [
          { name: "one", credentials: { pw: "zwölf 🔑" } },
          { name: "two", credentials: { snake: 1 } },
          { name: "no-creds" },
        ],
        odd: "not a list",
      }),
    );
  } finally {
    await t.close();
  }
});

Deno.test("credhub interpolate (DefaultInterpolationHandler.kt + ExceptionHandlers.kt): one denied or missing ref among readable ones → the whole request is 404 with CredHub's error body", async () => {
  const t = await startTestCredhub();
  try {
    const broker = await t.token("credhub.write credhub.read");
    const appA = crypto.randomUUID(), appB = crypto.randomUUID();
    const appC = crypto.randomUUID();
    const mine = `/c/b/db/${crypto.randomUUID()}/creds`;
    const theirs = `/c/b/db/${crypto.randomUUID()}/creds`;
    await brokerStore(t, broker, mine, "json", { pw: "mine" }, [appA]);
    await brokerStore(t, broker, theirs, "json", { pw: "theirs" }, [appC]);
    const a = await instanceOf(t, appA);
    const vcap = (extra: Record<string, unknown>) =>
      JSON.stringify({
        db: [{ name: "mine", credentials: { "credhub-ref": `((${mine}))` } }],
        ...extra,
      });
    const cases: Array<[string, { cert: string; key: string }, string]> = [
      [
        "another app's credential",
        a,
        vcap({
          other: [{ credentials: { "credhub-ref": `((${theirs}))` } }],
        }),
      ],
      [
        "a missing credential",
        a,
        vcap({
          other: [{
            credentials: { "credhub-ref": `((/c/b/none/${appB}/creds))` },
          }],
        }),
      ],
      [
        "app B's instance on app A's bindings",
        await instanceOf(t, appB),
        vcap({}),
      ],
    ];
    for (const [what, who, body] of cases) {
      const r = await credhubRequest(t, "POST", "/api/v1/interpolate", {
        ...who,
        body,
      });
      assert.equal(r.status, 404, `${what}: ${r.text}`);
      assert.match(r.contentType, /^application\/json/, what);
      assert.equal(r.text, NOT_FOUND, what);
      assert.ok(!r.text.includes("mine"), `${what}: nothing partial`);
    }
    // The same instance still gets its own binding alone.
    const ok = await credhubRequest(t, "POST", "/api/v1/interpolate", {
      ...a,
      body: vcap({}),
    });
    assert.equal(ok.status, 200);
    assert.equal(
      ok.text,
      '{"db":[{"name":"mine","credentials":{"pw":"mine"}}]}',
    );
  } finally {
    await t.close();
  }
});

Deno.test("credhub interpolate (DefaultInterpolationHandler.kt): refs are checked in the order sent; a non-json credential is 400 with CredHub's type message", async () => {
  const t = await startTestCredhub();
  try {
    const broker = await t.token("credhub.write credhub.read");
    const app = crypto.randomUUID();
    const pw = `/c/b/pw/${crypto.randomUUID()}`;
    await brokerStore(t, broker, pw, "password", "hunter2-secret", [app]);
    const who = await instanceOf(t, app);
    const denied = { credentials: { "credhub-ref": `((/c/b/nope/${app}))` } };
    const wrongType = { credentials: { "credhub-ref": `((${pw}))` } };
    const typeError =
      `{"error":"The credential '${pw}' is not the expected type. A credhub-ref credential must be of type 'JSON'."}`;
    const first = await credhubRequest(t, "POST", "/api/v1/interpolate", {
      ...who,
      body: JSON.stringify({ x: [wrongType], y: [denied] }),
    });
    assert.equal(first.status, 400);
    assert.equal(first.text, typeError);
    assert.ok(!first.text.includes("hunter2"), "no value in the error");
    const second = await credhubRequest(t, "POST", "/api/v1/interpolate", {
      ...who,
      body: JSON.stringify({ y: [denied], x: [wrongType] }),
    });
    assert.equal(second.status, 404);
    assert.equal(second.text, NOT_FOUND);
  } finally {
    await t.close();
  }
});
