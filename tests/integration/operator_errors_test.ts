/**
 * Operator mistakes get one clear line (a JSON log line for the roles that log
 * JSON), the README's exit codes (0 ok, 1 runtime failure, 2 usage or config
 * error) and never a Deno stack trace.
 */
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { join } from "node:path";
import { exportJWK, generateKeyPair } from "jose";
import { sigil } from "../_helpers/proc.ts";
import { prepareTestCredhub } from "../_helpers/credhub.ts";
import { testPki } from "../router/_helpers.ts";

const STACK = /Uncaught|\n\s+at |error: /;

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const ISSUE = ["--app", "a", "--space", "s", "--org", "o"];

/**
 * A start failure: exit 1, no stack trace, and one JSON `start-failed` line
 * of `component` with `code` and exactly `error`.
 */
function assertStartFailed(
  r: { code: number; stderr: string },
  component: string,
  code: string,
  error: string,
): void {
  assert.equal(r.code, 1, r.stderr);
  assert.doesNotMatch(r.stderr, STACK);
  const lines = r.stderr.trim().split("\n").map((l) => JSON.parse(l));
  const failed = lines.find((l) => l.event === "start-failed");
  assert.ok(failed, r.stderr);
  assert.equal(failed.component, component);
  assert.equal(failed.code, code);
  assert.equal(failed.error, error);
}

/** `sigil ca issue` of `instance` from the CA in `ca` into `out`. */
function issue(ca: string, instance: string, out: string, ...extra: string[]) {
  return sigil([
    "ca",
    "issue",
    "--dir",
    ca,
    "--instance",
    instance,
    ...ISSUE,
    ...extra,
    "--out",
    out,
  ]);
}

Deno.test("ca init on an existing CA and a bad --instance exit 2; ca issue into an unwritable --out exits 1 and is not ledgered", async () => {
  await withDir(async (dir) => {
    const ca = join(dir, "ca");
    assert.equal((await sigil(["ca", "init", "--dir", ca])).code, 0);
    // A regular file where --out needs a directory: nothing is issued.
    await Deno.writeTextFile(join(dir, "file"), "");
    const mistakes = [
      {
        run: () => sigil(["ca", "init", "--dir", ca]),
        code: 2,
        stderr: /^sigil: Cannot create CA in ".*ca": it already holds/,
      },
      {
        run: () => issue(ca, "bad id", join(dir, "x")),
        code: 2,
        stderr: /instance_id must be .*\(got "bad id"\)/,
      },
      {
        run: () => issue(ca, "i-1", join(dir, "file", "i-1")),
        code: 1,
        stderr:
          /^sigil: Cannot issue certificate for "i-1": cannot write "--out" directory ".*file\/i-1": not a directory; nothing was issued/,
      },
    ];
    for (const m of mistakes) {
      const r = await m.run();
      assert.equal(r.code, m.code, r.stderr);
      assert.match(r.stderr, m.stderr);
      assert.doesNotMatch(r.stderr, STACK);
    }
    const ledger = await sigil(["ca", "ledger", "--dir", ca, "--json"]);
    assert.equal(ledger.code, 0, ledger.stderr);
    assert.doesNotMatch(
      ledger.stdout,
      /"i-1"/,
      "the failed issue is not ledgered",
    );
    // The same issue into a writable directory is ledgered once.
    const ok = await issue(ca, "i-1", join(dir, "i-1"));
    assert.equal(ok.code, 0, ok.stderr);
    const after = await sigil([
      "ca",
      "ledger",
      "--dir",
      ca,
      "--instance",
      "i-1",
    ]);
    assert.equal(after.stdout.trim().split("\n").length, 2, after.stdout);
  });
});

Deno.test("ca serve on a busy port: one JSON start-failed line naming ca.listen and the address, exit 1, no stack trace", async () => {
  await withDir(async (dir) => {
    const ca = join(dir, "ca");
    assert.equal((await sigil(["ca", "init", "--dir", ca])).code, 0);
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, "127.0.0.1", r));
    const port = (busy.address() as { port: number }).port;
    try {
      const cfg = join(dir, "sigil.yaml");
      await Deno.writeTextFile(
        cfg,
        `ca:\n  dir: ${ca}\n  listen: 127.0.0.1:${port}\n`,
      );
      assertStartFailed(
        await sigil(["ca", "serve", "--config", cfg]),
        "ca",
        "ERR_CA_LISTEN",
        `Cannot listen on "127.0.0.1:${port}" (ca.listen): address already in use (stop the process holding it or choose another port)`,
      );
    } finally {
      busy.close();
    }
  });
});

Deno.test("sigil inspect reads PEM chains, DER and stdin; shows algorithms, usages and time left; bad input exits 2", async () => {
  await withDir(async (dir) => {
    const ca = join(dir, "ca");
    assert.equal((await sigil(["ca", "init", "--dir", ca])).code, 0);
    const out = join(dir, "i-1");
    assert.equal(
      (await issue(ca, "i-1", out, "--ip", "10.0.0.5")).code,
      0,
    );
    const crt = join(out, "instance.crt");
    const j = await sigil(["inspect", crt, "--json"]);
    assert.equal(j.code, 0, j.stderr);
    const v = JSON.parse(j.stdout);
    assert.equal(v.identity.instance_id, "i-1");
    assert.equal(v.key_algorithm, "ECDSA P-256");
    assert.equal(v.signature_algorithm, "ECDSA with SHA-256");
    assert.deepEqual(v.key_usage, ["digitalSignature"]);
    assert.deepEqual(v.extended_key_usage, ["serverAuth", "clientAuth"]);
    assert.ok(v.seconds_left > 23 * 3600 && v.seconds_left <= 24 * 3600);
    assert.equal(v.chain.length, 1, "the intermediate follows the leaf");
    assert.equal(v.chain[0].is_ca, true);
    assert.ok(v.chain[0].key_usage.includes("keyCertSign"));
    // DER, converted by openssl (an independent encoder).
    const der = join(dir, "leaf.der");
    const conv = await new Deno.Command("openssl", {
      args: ["x509", "-in", crt, "-outform", "DER", "-out", der],
    }).output();
    assert.equal(conv.code, 0);
    const d = await sigil(["inspect", der, "--json"]);
    assert.equal(d.code, 0, d.stderr);
    assert.equal(JSON.parse(d.stdout).serial, v.serial);
    // stdin, human output.
    const s = await sigil(["inspect", "-"], {
      stdin: await Deno.readTextFile(crt),
    });
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /Certificate 1 of 2/);
    assert.match(
      s.stdout,
      /Time left: +23h 59m|Time left: +1d 0h 0m|Time left: +23h 58m/,
    );
    assert.match(s.stdout, /Ext\. usage: +serverAuth, clientAuth/);
    // Bad input: exit 2, one line, no stack.
    await Deno.writeTextFile(join(dir, "bad.pem"), "garbage\n");
    for (
      const [file, msg] of [
        [join(dir, "bad.pem"), /does not parse/],
        [join(ca, "root.key"), /no 'BEGIN CERTIFICATE' block/],
        [join(dir, "nope.pem"), /Cannot read/],
      ] as const
    ) {
      const r = await sigil(["inspect", file]);
      assert.equal(r.code, 2, `${file}: ${r.stderr}`);
      assert.match(r.stderr, msg);
      assert.doesNotMatch(r.stderr, STACK);
      assert.doesNotMatch(r.stderr, /PRIVATE KEY|MI[GI]/, "no key material");
    }
  });
});

Deno.test("router on a busy port: one JSON start-failed line naming router.listen, router.https.listen or router.api.listen and the address, exit 1, no stack trace", async () => {
  await withDir(async (dir) => {
    const { publicKey } = await generateKeyPair("ES256", { extractable: true });
    await Deno.writeTextFile(
      join(dir, "token.jwk"),
      JSON.stringify(await exportJWK(publicKey)),
    );
    const pki = await testPki();
    const front = await pki.issueClient({ ips: ["127.0.0.1"] });
    await Deno.writeTextFile(join(dir, "front.crt"), front.certPem);
    await Deno.writeTextFile(join(dir, "front.key"), front.keyPem, {
      mode: 0o600,
    });
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, "127.0.0.1", r));
    const port = (busy.address() as { port: number }).port;
    try {
      for (
        const [setting, listen, https, api] of [
          ["router.listen", port, 0, 0],
          ["router.https.listen", 0, port, 0],
          ["router.api.listen", 0, 0, port],
        ] as const
      ) {
        const cfg = join(dir, "sigil.yaml");
        await Deno.writeTextFile(
          cfg,
          [
            "router:",
            `  listen: 127.0.0.1:${listen}`,
            "  https:",
            `    listen: 127.0.0.1:${https}`,
            `    cert: ${join(dir, "front.crt")}`,
            `    key: ${join(dir, "front.key")}`,
            "  api:",
            `    listen: 127.0.0.1:${api}`,
            `    public_key_file: ${join(dir, "token.jwk")}`,
            "  access_log:",
            "    enabled: false",
            "",
          ].join("\n"),
        );
        assertStartFailed(
          await sigil(["router", "--config", cfg]),
          "router",
          "ERR_ROUTER_LISTEN",
          `Cannot listen on "127.0.0.1:${port}" (${setting}): address already in use (stop the process holding it or choose another port)`,
        );
      }
    } finally {
      busy.close();
    }
  });
});

Deno.test("credhub on a busy port: one JSON start-failed line naming credhub.listen and the address, exit 1, no stack trace", async () => {
  const f = await prepareTestCredhub();
  const busy = createServer();
  await new Promise<void>((r) => busy.listen(0, "127.0.0.1", r));
  const port = (busy.address() as { port: number }).port;
  try {
    const yaml = (await Deno.readTextFile(f.configPath)).replace(
      /listen: 127\.0\.0\.1:\d+/,
      `listen: 127.0.0.1:${port}`,
    );
    await Deno.writeTextFile(f.configPath, yaml);
    assertStartFailed(
      await sigil(["credhub", "--config", f.configPath]),
      "credhub",
      "ERR_CREDHUB_LISTEN",
      `Cannot listen on "127.0.0.1:${port}" (credhub.listen): address already in use (stop the process holding it or choose another port)`,
    );
  } finally {
    busy.close();
    await Deno.remove(f.dir, { recursive: true });
  }
});
