import assert from "node:assert/strict";
import { RouterSection } from "../../lib/config/mod.ts";
import { silentLogger } from "../../lib/observe/mod.ts";
import { startRouter } from "../../lib/router/mod.ts";
import { request, startBackend, startTestRouter } from "./_helpers.ts";

// Needs `"unstable": ["net"]` in deno.json (or --unstable-net): Deno 2.9
// still treats `Deno.serve({ reusePort: true })` as unstable.
Deno.test("two routers with reuse_port bind the same port and both serve it", async () => {
  const first = await startTestRouter({ reuse_port: true });
  const port = first.router.port;
  const second = await startTestRouter({
    reuse_port: true,
    listen: `127.0.0.1:${port}`,
  });
  const be = await startBackend({ name: "A" });
  try {
    assert.equal(second.router.port, port);
    for (const t of [first, second]) {
      t.router.apply("register", {
        host: "127.0.0.1",
        port: be.port,
        uris: ["shared.example.com"],
      });
    }
    // Fresh connections: the kernel spreads them across both listeners.
    for (let i = 0; i < 40; i++) {
      const res = await request(
        `http://127.0.0.1:${port}`,
        "shared.example.com",
      );
      assert.equal(res.status, 200);
    }
    assert.equal(first.access.length + second.access.length, 40);
    assert.ok(first.access.length > 0, "first router served some requests");
    assert.ok(second.access.length > 0, "second router served some requests");
  } finally {
    await be.close();
    await second.close();
    await first.close();
  }
});

Deno.test("a second router without reuse_port cannot take a used port", async () => {
  const first = await startTestRouter({ reuse_port: true });
  try {
    await assert.rejects(
      startRouter(
        RouterSection.parse({
          listen: `127.0.0.1:${first.router.port}`,
          api: { enabled: false },
          access_log: { enabled: false },
        }),
        { logger: silentLogger },
      ),
      /Cannot listen on "127\.0\.0\.1:\d+" \(router\.listen\): address already in use/,
    );
  } finally {
    await first.close();
  }
});
