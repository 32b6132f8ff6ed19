import assert from "node:assert/strict";
import { readTokenRequired, RouterSection } from "../../lib/config/mod.ts";
import { startTestRouter } from "./_helpers.ts";

const READ_PATHS = ["/routes", "/metrics", "/status", "/status.json"];

// gorouter serves /routes on 127.0.0.1:8082 only, and behind basic auth on
// its status port (routing-release gorouter spec `router.status.*`); Sigil's
// loopback API listener is open like 8082, any other needs routes.read.
Deno.test("router /routes, /metrics and /status need a routes.read token when required: 401 without or with a bad one, 403 with routes.write only, 200 with routes.read", async () => {
  const t = await startTestRouter({
    api: { listen: "127.0.0.1:0", read_token_required: true },
  });
  try {
    const read = await t.token("routes.read");
    const write = await t.token("routes.write");
    for (const path of READ_PATHS) {
      const none = await fetch(`${t.apiUrl}${path}`);
      assert.equal(none.status, 401, path);
      assert.equal(
        none.headers.get("www-authenticate"),
        'Bearer realm="sigil-router"',
      );
      assert.equal((await none.json()).error, "unauthorized");
      const bad = await fetch(`${t.apiUrl}${path}`, {
        headers: { authorization: "Bearer not.a.jwt" },
      });
      assert.equal(bad.status, 401, path);
      await bad.body?.cancel();
      const wrong = await fetch(`${t.apiUrl}${path}`, {
        headers: { authorization: `Bearer ${write}` },
      });
      assert.equal(wrong.status, 403, path);
      assert.match((await wrong.json()).message, /lacks scope "routes\.read"/);
      const ok = await fetch(`${t.apiUrl}${path}`, {
        headers: { authorization: `Bearer ${read}` },
      });
      assert.equal(ok.status, 200, path);
      await ok.body?.cancel();
    }
    // Health stays open (load balancers probe it), registration still
    // needs routes.write, not routes.read.
    const health = await fetch(`${t.apiUrl}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
    const reg = await fetch(`${t.apiUrl}/v1/register`, {
      method: "POST",
      headers: { authorization: `Bearer ${read}` },
      body: "{}",
    });
    assert.equal(reg.status, 403);
    await reg.body?.cancel();
    const refused = t.logs.find((l) =>
      l.event === "api-auth-refused" && l.path === "/routes"
    );
    assert.equal(refused?.client, "127.0.0.1");
  } finally {
    await t.close();
  }
});

Deno.test("router on a loopback API listener serves /routes, /metrics and /status without a token, like gorouter's 127.0.0.1:8082", async () => {
  const t = await startTestRouter();
  try {
    for (const path of READ_PATHS) {
      const res = await fetch(`${t.apiUrl}${path}`);
      assert.equal(res.status, 200, path);
      await res.body?.cancel();
    }
  } finally {
    await t.close();
  }
});

Deno.test("router config: a non-loopback API listener requires the routes.read token and refuses read_token_required: false", () => {
  const api = { public_key_file: "/k.jwk", cert: "/c", key: "/k" };
  const wide = RouterSection.parse({ api: { ...api, listen: "0.0.0.0:8082" } });
  assert.equal(readTokenRequired(wide.api), true);
  const local = RouterSection.parse({ api: { ...api, listen: "127.0.0.1:0" } });
  assert.equal(readTokenRequired(local.api), false);
  const refused = RouterSection.safeParse({
    api: { ...api, listen: "10.0.0.10:8082", read_token_required: false },
  });
  assert.equal(refused.success, false);
  assert.deepEqual(refused.error?.issues[0]?.path, [
    "api",
    "read_token_required",
  ]);
  assert.ok(
    RouterSection.safeParse({
      api: { ...api, listen: "127.0.0.1:8082", read_token_required: false },
    }).success,
  );
});
