/**
 * `sigil launch` as a subprocess against a real `sigil credhub` over mTLS,
 * compared with CF's own client (`credhub-interpolate` from ../shared/peers,
 * the Go client Diego's launcher uses: buildpackapplifecycle
 * `credhub/credhub.go`).
 * @module
 */
import assert from "node:assert/strict";
import { request } from "node:https";
import { startTestCredhub } from "../_helpers/credhub.ts";
import type { TestCredhub } from "../_helpers/credhub.ts";
import { freePort } from "../_helpers/ports.ts";
import { MAIN, runCommand } from "../_helpers/proc.ts";

interface Fixture extends TestCredhub {
  broker: string;
}

async function fixture(): Promise<Fixture> {
  const t = await startTestCredhub();
  return Object.assign(t, {
    broker: await t.token("credhub.write credhub.read"),
  });
}

function brokerCall(f: Fixture, path: string, body: unknown): Promise<number> {
  return new Promise((resolve, reject) => {
    const u = new URL(f.ch.url);
    const req = request({
      hostname: u.hostname,
      port: u.port,
      path,
      method: path.startsWith("/api/v1/data") ? "PUT" : "POST",
      ca: f.pki.rootPem,
      servername: "localhost",
      agent: false,
      headers: {
        authorization: `bearer ${f.broker}`,
        "content-type": "application/json",
      },
    }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode!));
    });
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

/** Writes an instance certificate of `app` and returns its file paths. */
async function instance(f: Fixture, app: string) {
  const c = await f.pki.issueInstance({ instanceId: crypto.randomUUID(), app });
  const base = `${f.dir}/${app}`;
  await Deno.writeTextFile(`${base}.crt`, c.certPem);
  await Deno.writeTextFile(`${base}.key`, c.keyPem, { mode: 0o600 });
  return { cert: `${base}.crt`, key: `${base}.key` };
}

function run(cmd: string, args: string[], env: Record<string, string>) {
  return runCommand(cmd, args, { env });
}

function launch(
  f: Fixture,
  creds: { cert: string; key: string },
  vcap: string,
  child: string[],
  url = f.ch.url,
) {
  return run(Deno.execPath(), [
    "run",
    "-A",
    "--quiet",
    MAIN,
    "launch",
    "--credhub-url",
    url,
    "--system-cert-path",
    `${f.dir}/certs`,
    "--attempts",
    "2",
    "--",
    ...child,
  ], {
    VCAP_SERVICES: vcap,
    CF_INSTANCE_CERT: creds.cert,
    CF_INSTANCE_KEY: creds.key,
  });
}

const PRINT_VCAP = ["sh", "-c", 'printf %s "$VCAP_SERVICES"'];

Deno.test("sigil launch: the child sees VCAP_SERVICES interpolated for its app; another app's instance exits 4 with CF's message", async () => {
  const f = await fixture();
  try {
    const appA = crypto.randomUUID(), appB = crypto.randomUUID();
    const name = `/c/broker/db/${crypto.randomUUID()}/creds`;
    assert.equal(
      await brokerCall(f, "/api/v1/data", {
        name,
        type: "json",
        value: { user: "ü-ser", pw: "s3cret" },
      }),
      200,
    );
    assert.equal(
      await brokerCall(f, "/api/v2/permissions", {
        actor: `mtls-app:${appA}`,
        path: name,
        operations: ["read"],
      }),
      201,
    );
    const vcap = JSON.stringify({
      db: [{ name: "db", credentials: { "credhub-ref": `((${name}))` } }],
    });
    const a = await launch(f, await instance(f, appA), vcap, PRINT_VCAP);
    assert.equal(a.code, 0, a.stderr);
    assert.deepEqual(JSON.parse(a.stdout).db[0].credentials, {
      user: "ü-ser",
      pw: "s3cret",
    });
    assert.ok(!a.stderr.includes("s3cret"), "no credential in the log");

    const b = await launch(f, await instance(f, appB), vcap, PRINT_VCAP);
    assert.equal(b.code, 4);
    assert.match(b.stderr, /Unable to interpolate credhub refs/);
    assert.equal(b.stdout, "", "the app was not started");

    // No refs: no call, and the child's exit status is passed through.
    const plain = await launch(
      f,
      await instance(f, appB),
      '{"db":[{"credentials":{"pw":"x"}}]}',
      ["sh", "-c", "exit 7"],
      `https://127.0.0.1:${freePort()}`,
    );
    assert.equal(plain.code, 7);

    // CredHub unreachable: retried, then exit 4.
    const down = await launch(
      f,
      await instance(f, appA),
      vcap,
      PRINT_VCAP,
      `https://127.0.0.1:${freePort()}`,
    );
    assert.equal(down.code, 4);
    assert.match(down.stderr, /Unable to interpolate credhub refs/);
  } finally {
    await f.close();
  }
});

const PEER =
  new URL("../../../shared/peers/credhub-interpolate.gz", import.meta.url)
    .pathname;

Deno.test({
  name:
    "sigil launch and CF's credhub-interpolate give the same VCAP_SERVICES, byte for byte",
  ignore: !(await Deno.stat(PEER).then(() => true, () => false)),
  fn: async () => {
    const f = await fixture();
    try {
      const bin = `${f.dir}/credhub-interpolate`;
      const gz = await run("sh", ["-c", `gunzip -c '${PEER}' > '${bin}'`], {});
      assert.equal(gz.code, 0, gz.stderr);
      await Deno.chmod(bin, 0o755);
      const app = crypto.randomUUID();
      const names = [1, 2].map((i) => `/c/broker/s${i}/${crypto.randomUUID()}`);
      assert.equal(
        await brokerCall(f, "/api/v1/data", {
          name: names[0],
          type: "json",
          value: { nested: { list: [1, "two", { "3": true }] }, uni: "日本 ✓" },
        }),
        200,
      );
      assert.equal(
        await brokerCall(f, "/api/v1/data", {
          name: names[1],
          type: "json",
          value: { uri: "postgres://u:p@db/x" },
        }),
        200,
      );
      for (const n of names) {
        assert.equal(
          await brokerCall(f, "/api/v2/permissions", {
            actor: `mtls-app:${app}`,
            path: n,
            operations: ["read"],
          }),
          201,
        );
      }
      const vcap = JSON.stringify({
        "user-provided": [{ name: "plain", credentials: { k: "v ✓" } }],
        s1: [{
          name: "one",
          credentials: { "credhub-ref": `((${names[0]}))` },
        }],
        s2: [{
          name: "two",
          credentials: { "credhub-ref": `((${names[1]}))` },
        }],
      });
      const creds = await instance(f, app);
      const ours = await launch(f, creds, vcap, PRINT_VCAP);
      assert.equal(ours.code, 0, ours.stderr);
      const theirs = await run(bin, [], {
        CREDHUB_API: f.ch.url,
        CF_INSTANCE_CERT: creds.cert,
        CF_INSTANCE_KEY: creds.key,
        CF_SYSTEM_CERT_PATH: `${f.dir}/certs`,
        VCAP_SERVICES: vcap,
      });
      assert.equal(theirs.code, 0, theirs.stderr);
      assert.equal(ours.stdout, theirs.stdout.replace(/\n$/, ""));

      // Another app's instance: both refuse (CredHub answers not-found).
      const other = await instance(f, crypto.randomUUID());
      const ours2 = await launch(f, other, vcap, PRINT_VCAP);
      const theirs2 = await run(bin, [], {
        CREDHUB_API: f.ch.url,
        CF_INSTANCE_CERT: other.cert,
        CF_INSTANCE_KEY: other.key,
        CF_SYSTEM_CERT_PATH: `${f.dir}/certs`,
        VCAP_SERVICES: vcap,
      });
      assert.equal(ours2.code, 4);
      assert.notEqual(theirs2.code, 0);
      const why = /does not exist or you do not have sufficient authorization/;
      assert.match(theirs2.stdout + theirs2.stderr, why);
      assert.match(ours2.stderr, why);
    } finally {
      await f.close();
    }
  },
});
