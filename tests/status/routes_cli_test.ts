/**
 * `sigil routes` and `sigil status` against a running `sigil dev`: the
 * printed table is parsed back and compared with the router's own `/routes`
 * and `/status.json`. The columns follow `cfdot`/`kubectl get` (upper-case
 * headers, aligned columns) and gorouter's `/routes` JSON
 * (cloudfoundry/gorouter registry/registry.go MarshalJSON).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { writeSecretFile } from "../../lib/common/mod.ts";
import { freePort } from "../_helpers/ports.ts";
import { sigil } from "../_helpers/proc.ts";
import { startTestRouter } from "../router/_helpers.ts";
import { startDevProcess } from "./_dev.ts";

const SPAN = /^\d+(d \d+h|h \d\dm|m \d\ds|s)$/;

/** Reads an aligned table back into rows keyed by (lower-case) header. */
function parseTable(text: string): Array<Record<string, string>> {
  const [head, ...lines] = text.trimEnd().split("\n");
  assert.ok(head, "a header line");
  const cols = [...head.matchAll(/\S+(?: \S+)*/g)].map((m) => ({
    name: m[0].toLowerCase(),
    at: m.index!,
  }));
  return lines.map((l) =>
    Object.fromEntries(
      cols.map((c, i) => [
        c.name,
        l.slice(c.at, cols[i + 1]?.at ?? l.length).trim(),
      ]),
    )
  );
}

Deno.test("sigil routes / sigil status against a running sigil dev", async (t) => {
  const dev = await startDevProcess();
  const { info } = dev;
  const api = `http://${info.router.api}`;
  try {
    const token = (await Deno.readTextFile(info.router.token_file)).trim();
    // An endpoint whose app id carries a terminal escape (the router drops
    // control characters; the CLI would print any left as "?").
    const reg = await fetch(`${api}/v1/register`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
      body: JSON.stringify({
        host: "127.0.0.1",
        port: 9,
        uris: ["esc.example.com"],
        app: "evil\u001b[2Japp",
        private_instance_id: "esc-1",
      }),
    });
    assert.equal(reg.status, 200);
    await reg.body?.cancel();

    await t.step(
      "sigil dev prints every status page URL, and each page answers",
      async () => {
        const urls = [...dev.out().matchAll(/^\s+(https?:\/\/\S+\/status)\s/gm)]
          .map((m) => m[1]!);
        assert.deepEqual(
          urls.sort(),
          [
            `${api}/status`,
            ...info.instances.map((i) => `http://${i.admin}/status`),
            `${info.ca.url}/status`,
          ].sort(),
        );
        const client = Deno.createHttpClient({
          caCerts: [await Deno.readTextFile(info.ca.bundle)],
        });
        try {
          for (const url of urls) {
            const res = await fetch(url, { client });
            assert.equal(res.status, 200, url);
            assert.match(await res.text(), /^<!DOCTYPE html>/);
          }
        } finally {
          client.close();
        }
      },
    );

    await t.step(
      "the table has one row per endpoint of /routes, with /status.json's state",
      async () => {
        const r = await sigil(["routes", "--router", api]);
        assert.equal(r.code, 0, r.stderr);
        assert.ok(
          !r.stdout.includes("\u001b"),
          "no escape reaches the terminal",
        );
        const rows = parseTable(r.stdout);
        assert.equal(
          Object.keys(rows[0]!).join(" "),
          "host endpoint instance app state heartbeat ttl",
        );
        const routes = await (await fetch(`${api}/routes`)).json() as Record<
          string,
          Array<{ address: string; private_instance_id: string }>
        >;
        const status = await (await fetch(`${api}/status.json`)).json();
        // gorouter's /routes has no app id: it comes from /status.json.
        const appOf = (uri: string, address: string): string =>
          status.routes.find((r: { uri: string }) => r.uri === uri)
            ?.endpoints.find((e: { address: string }) => e.address === address)
            ?.app ?? "";
        const expected = Object.entries(routes).flatMap(([uri, eps]) =>
          eps.map((e) =>
            [
              uri,
              e.address,
              e.private_instance_id,
              appOf(uri, e.address) || "-",
            ].join(" ")
          )
        ).sort();
        assert.deepEqual(
          rows.map((x) => [x.host, x.endpoint, x.instance, x.app].join(" "))
            .sort(),
          expected,
        );
        // Every dev instance's app guid is shown.
        for (const i of info.instances) {
          assert.ok(
            expected.some((e) => e.includes(`${i.instance_id} ${i.app_guid}`)),
          );
        }
        assert.ok(expected.some((e) => e.includes(" esc-1 evil")));
        for (const row of rows) {
          const ep = status.routes.find((s: { uri: string }) =>
            s.uri === row.host
          )
            ?.endpoints.find((e: { address: string }) =>
              e.address === row.endpoint
            );
          assert.ok(ep, `${row.host} ${row.endpoint} in /status.json`);
          assert.equal(row.state, ep.state);
          assert.match(row.heartbeat!, SPAN);
          assert.match(row.ttl!, /^\d+s$/);
        }
        // Every dev instance is in the table.
        for (const i of info.instances) {
          assert.ok(
            rows.some((x) =>
              x.instance === i.instance_id && x.host === `${i.app}.localhost` &&
              x.endpoint === `127.0.0.1:${i.tls_port}` && x.state === "healthy"
            ),
            i.instance_id,
          );
        }
      },
    );

    await t.step("--host filters, --json prints the API's JSON", async () => {
      const r = await sigil(["routes", "--router", api, "--host", "other"]);
      assert.equal(r.code, 0, r.stderr);
      const rows = parseTable(r.stdout);
      const other = info.instances.find((i) => i.app === "other")!;
      assert.deepEqual(rows.map((x) => [x.host, x.instance, x.state]), [[
        "other.localhost",
        other.instance_id,
        "healthy",
      ]]);
      const all = await sigil(["routes", "--router", api, "--json"]);
      assert.equal(all.code, 0, all.stderr);
      const routes = await (await fetch(`${api}/routes`)).json();
      const printed = JSON.parse(all.stdout);
      assert.deepEqual(Object.keys(printed).sort(), Object.keys(routes).sort());
      for (const [uri, eps] of Object.entries(routes)) {
        const strip = (list: Array<Record<string, unknown>>) =>
          list.map(({ ttl: _ttl, ...rest }) => rest);
        assert.deepEqual(
          strip(printed[uri]),
          strip(eps as Array<Record<string, unknown>>),
        );
      }
      const one = await sigil([
        "routes",
        "--router",
        api,
        "--host",
        "esc.",
        "--json",
      ]);
      assert.deepEqual(Object.keys(JSON.parse(one.stdout)), [
        "esc.example.com",
      ]);
    });

    await t.step("sigil status detects the role of each endpoint", async () => {
      const router = await sigil(["status", "--url", `${api}/status`]);
      assert.equal(router.code, 0, router.stderr);
      assert.match(router.stdout, /^Role: +router$/m);
      assert.match(router.stdout, /^Routes: +3 \(5 endpoints: /m);
      const other = info.instances.find((i) => i.app === "other")!;
      const proxy = await sigil(["status", "--url", `http://${other.admin}`]);
      assert.equal(proxy.code, 0, proxy.stderr);
      assert.match(proxy.stdout, /^Role: +proxy$/m);
      assert.ok(proxy.stdout.includes(`Instance ${other.instance_id} (mtls)`));
      const certs = await (await fetch(`http://${other.admin}/certs`)).json();
      assert.ok(proxy.stdout.includes(certs[0].serial));
      const regs = parseTable(
        proxy.stdout.slice(proxy.stdout.indexOf("REGISTERS WITH")),
      );
      assert.deepEqual(regs.map((x) => [x["registers with"], x.state]), [[
        api,
        "registered",
      ]]);
      // The CA over verified TLS; without its bundle, a clear refusal.
      const ca = await sigil([
        "status",
        "--url",
        info.ca.url,
        "--cacert",
        info.ca.bundle,
      ]);
      assert.equal(ca.code, 0, ca.stderr);
      assert.match(ca.stdout, /^Role: +ca$/m);
      assert.match(ca.stdout, /^Trust domain: sigil\.dev$/m);
      for (const i of info.instances) {
        assert.ok(ca.stdout.includes(i.instance_id));
      }
      const untrusted = await sigil(["status", "--url", info.ca.url]);
      assert.equal(untrusted.code, 1);
      assert.match(untrusted.stderr, /not trusted.*--cacert FILE/);
    });
  } finally {
    await dev.close();
  }
});

Deno.test("sigil routes / sigil status with --token-file against a router whose reads need routes.read", async () => {
  const t = await startTestRouter({
    api: { listen: "127.0.0.1:0", read_token_required: true },
  });
  const dir = await Deno.makeTempDir();
  try {
    const write = await t.token("routes.write");
    const reg = await fetch(`${t.apiUrl}/v1/register`, {
      method: "POST",
      headers: { authorization: `Bearer ${write}` },
      body: JSON.stringify({
        host: "127.0.0.1",
        port: 9,
        uris: ["read.example.com"],
        app: "app-r",
        private_instance_id: "inst-r",
      }),
    });
    assert.equal(reg.status, 200);
    await reg.body?.cancel();
    const readFile = join(dir, "read.jwt");
    await writeSecretFile(readFile, (await t.token("routes.read")) + "\n");
    const writeFile = join(dir, "write.jwt");
    await writeSecretFile(writeFile, write + "\n");

    const ok = await sigil([
      "routes",
      "--router",
      t.apiUrl,
      "--token-file",
      readFile,
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    const rows = parseTable(ok.stdout);
    assert.deepEqual(
      rows.map((r) => [r.host, r.endpoint, r.instance, r.app, r.state]),
      [["read.example.com", "127.0.0.1:9", "inst-r", "app-r", "healthy"]],
    );
    const status = await sigil([
      "status",
      "--url",
      t.apiUrl,
      "--token-file",
      readFile,
    ]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^Role: +router$/m);

    const none = await sigil(["routes", "--router", t.apiUrl]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /HTTP 401; send a token with --token-file FILE/);
    const wrong = await sigil([
      "routes",
      "--router",
      t.apiUrl,
      "--token-file",
      writeFile,
    ]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /HTTP 403; the token was refused/);
    assert.ok(!wrong.stderr.includes(write), "no token in the message");
  } finally {
    await t.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sigil routes against a gorouter-shaped /routes without /status.json: '-' for what it lacks, escapes printed as '?'", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: freePort(), onListen: () => {} },
    (req) =>
      new URL(req.url).pathname === "/routes"
        ? Response.json({
          "a.example.com": [{
            address: "10.0.0.1:61001",
            tls: true,
            ttl: 30,
            private_instance_id: "x\u001b[31m",
          }],
        })
        : new Response("not found", { status: 404 }),
  ) as Deno.HttpServer<Deno.NetAddr>;
  try {
    const r = await sigil([
      "routes",
      "--router",
      `http://127.0.0.1:${server.addr.port}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stdout.includes("\u001b"));
    assert.deepEqual(parseTable(r.stdout), [{
      host: "a.example.com",
      endpoint: "10.0.0.1:61001",
      instance: "x?[31m",
      app: "-",
      state: "-",
      heartbeat: "-",
      ttl: "30s",
    }]);
  } finally {
    await server.shutdown();
  }
});
