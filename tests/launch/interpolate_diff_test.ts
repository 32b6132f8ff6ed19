/**
 * Difference test: `sigil launch` (printing the child's VCAP_SERVICES) and
 * CF's own client, `credhub-interpolate` from ../shared/peers (credhub-cli
 * `credhub/interpolate.go` + `request.go` + `error.go`, the client
 * buildpackapplifecycle `credhub/credhub.go` calls), on the same inputs
 * against one `sigil credhub`, compared byte for byte.
 *
 * What CF's side does, from its source:
 * - `interpolate.go`: no `"credhub-ref"` substring → VCAP_SERVICES returned
 *   untouched, no request; otherwise `json.Unmarshal` into a map and
 *   `json.Marshal` again (keys sorted, strings re-escaped, lone surrogates
 *   become U+FFFD), POST, and the answer's body is the result as sent.
 * - `request.go`/`error.go`: a 404 answer becomes `NotFoundError{error}`, so
 *   the error text is CredHub's `error` field alone.
 * - CredHub (`DefaultInterpolationHandler.kt`) fails the whole request on
 *   the first ref the caller may not read, so both clients fail; none of the
 *   app's readable refs is delivered.
 * - The launcher (buildpackapplifecycle `launcher/main.go`, `env/env.go`)
 *   prints `Unable to interpolate credhub refs: Unable to interpolate credhub
 *   references: <error>` on stderr; today's launcher exits 3 (env setup
 *   failure), the builder (`builder/main.go`) and older launchers 4. Sigil
 *   exits 4 (its documented code for "environment not prepared").
 * @module
 */
import assert from "node:assert/strict";
import {
  brokerStore,
  credhubRequest,
  type InstanceFiles,
  instanceFiles,
  startTestCredhub,
  type TestCredhub,
} from "../_helpers/credhub.ts";
import { PRINT_VCAP, sigilLaunch } from "../_helpers/launch.ts";
import { freePort } from "../_helpers/ports.ts";
import { runCommand } from "../_helpers/proc.ts";

const PEER =
  new URL("../../../shared/peers/credhub-interpolate.gz", import.meta.url)
    .pathname;
const HAVE_PEER = await Deno.stat(PEER).then(() => true, () => false);

const NOT_FOUND =
  "The request could not be completed because the credential does not exist or you do not have sufficient authorization.";

type Creds = InstanceFiles;

/** `sigil launch -- sh -c 'printf %s "$VCAP_SERVICES"'`. */
function ours(
  t: TestCredhub,
  who: Creds,
  vcap: string,
  url = t.ch.url,
  attempts = 1,
) {
  return sigilLaunch(t, who, vcap, PRINT_VCAP, { url, attempts });
}

/** CF's client, exactly as the launcher calls it. */
function theirs(
  bin: string,
  t: TestCredhub,
  who: Creds,
  vcap: string,
  url = t.ch.url,
) {
  return runCommand(bin, [], {
    env: {
      CREDHUB_API: url,
      CF_INSTANCE_CERT: who.cert,
      CF_INSTANCE_KEY: who.key,
      CF_SYSTEM_CERT_PATH: `${t.dir}/certs`,
      VCAP_SERVICES: vcap,
    },
  });
}

/** Unpacks `credhub-interpolate` into the test's temp dir. */
async function peer(t: TestCredhub): Promise<string> {
  const bin = `${t.dir}/credhub-interpolate`;
  const gz = await runCommand("sh", ["-c", `gunzip -c '${PEER}' > '${bin}'`]);
  assert.equal(gz.code, 0, gz.stderr);
  await Deno.chmod(bin, 0o755);
  return bin;
}

/** credhub-interpolate prints its result with one newline (fmt.Println). */
const printed = (s: string) => s.replace(/\n$/, "");

Deno.test({
  name:
    "sigil launch vs CF's credhub-interpolate (credhub-cli credhub/interpolate.go): same VCAP_SERVICES byte for byte; denied refs (another app's ref, app B's certificate, a revoked grant) fail both the same way; no ref → untouched, no call",
  ignore: !HAVE_PEER,
  fn: async () => {
    const t = await startTestCredhub();
    try {
      const bin = await peer(t);
      const broker = await t.token("credhub.write credhub.read");
      const appA = crypto.randomUUID(), appB = crypto.randomUUID();
      const appC = crypto.randomUUID();
      const n = (s: string) => `/c/broker/${s}/${crypto.randomUUID()}/creds`;
      const db1 = n("p-mysql"), db2 = n("p-mysql"), mq = n("rabbit");
      const cOnly = n("p-mysql");
      await brokerStore(t, broker, db1, "json", {
        uri: "mysql://u:p@db1/x?reconnect=true&ssl=1",
        nested: {
          list: [1, "two", { "3": true, deep: [[], {}, [null]] }],
          num: 1.5e-7,
          big: 12345678901234567890,
          neg: -0.25,
        },
      }, [appA]);
      await brokerStore(t, broker, db2, "json", {
        zeta: "last",
        alpha: "first",
        "ü-key": "zwölf",
        "🔑": "emoji key",
        Z: "upper",
      }, [appA]);
      await brokerStore(t, broker, mq, "json", {
        password: "pässwörd 🔑 日本語 ✓",
        escapes: 'tab\t nl\n cr\r quote" backslash\\ ctrl\u0001 <&> \u2028',
        arr: [{ host: "mq-0", ports: [5671] }, { host: "mq-1", ports: [] }],
      }, [appA]);
      await brokerStore(t, broker, cOnly, "json", { pw: "app C's" }, [appC]);

      // As Cloud Controller might hand it over: indented, keys unsorted,
      // escaped forms (\u00fc, \/, a lone surrogate) in plain bindings.
      const ref = (name: string) => `{"credhub-ref": "((${name}))"}`;
      const base = `{
  "user-provided": [
    {"name": "plain", "credentials": {"k": "v \\u00fc \\/ \\ud800 <b>&amp;</b>", "a": [1, 2.50, 1e3]}, "tags": []}
  ],
  "p-mysql": [
    {"name": "db-one", "label": "p-mysql", "credentials": ${
        ref(db1)
      }, "tags": ["mysql"]},
    {"name": "db-two", "label": "p-mysql", "credentials": ${ref(db2)}}
  ],
  "rabbit": [
    {"name": "mq", "credentials": ${ref(mq)}, "volume_mounts": []}
  ]`;
      const vcapA = base + "\n}";
      const a = await instanceFiles(t, appA);

      const o1 = await ours(t, a, vcapA);
      const t1 = await theirs(bin, t, a, vcapA);
      assert.equal(t1.code, 0, t1.stderr);
      assert.equal(o1.code, 0, o1.stderr);
      assert.equal(o1.stdout, printed(t1.stdout));
      const got = JSON.parse(o1.stdout);
      assert.equal(
        got["p-mysql"][0].credentials.nested.list[2].deep[2][0],
        null,
      );
      assert.equal(got.rabbit[0].credentials.password, "pässwörd 🔑 日本語 ✓");
      assert.equal(got["p-mysql"][1].credentials["🔑"], "emoji key");
      assert.ok(!o1.stderr.includes("pässwörd"), "no credential in our log");

      // A binding whose ref is another app's credential: CredHub answers
      // 404 for the whole request; both clients fail with the same text.
      const vcapC = base + `,
  "p-mysql-c": [{"name": "c", "credentials": ${ref(cOnly)}}]
}`;
      const o2 = await ours(t, a, vcapC, t.ch.url, 3);
      const t2 = await theirs(bin, t, a, vcapC);
      assert.equal(t2.code, 1, "credhub-interpolate exits 1 on an error");
      assert.equal(t2.stdout, "");
      // The peer prints the launcher's inner wording around the Go error.
      const cfLine = printed(t2.stderr).split("\n").at(-1);
      assert.equal(
        cfLine,
        `Unable to interpolate credhub references: ${NOT_FOUND}`,
      );
      assert.equal(o2.code, 4, o2.stderr);
      assert.equal(o2.stdout, "", "the app was not started");
      // Ours: the launcher's outer prefix around the same text.
      const line =
        `sigil launch: Unable to interpolate credhub refs: ${cfLine}`;
      assert.ok(o2.stderr.split("\n").includes(line), o2.stderr);
      assert.ok(!o2.stderr.includes("pässwörd"), "no partial credentials");
      // CredHub's 404 is final: one attempt of the three (CF retries it).
      assert.equal(
        o2.stderr.split("\n").filter((l) =>
          l.includes('"credhub-interpolate-failed"')
        ).length,
        1,
        o2.stderr,
      );

      // App B's certificate against app A's bindings: the same failure.
      const b = await instanceFiles(t, appB);
      const o3 = await ours(t, b, vcapA);
      const t3 = await theirs(bin, t, b, vcapA);
      assert.equal(t3.code, 1);
      assert.equal(printed(t3.stderr).split("\n").at(-1), cfLine);
      assert.equal(o3.code, 4);
      assert.ok(o3.stderr.split("\n").includes(line), o3.stderr);

      // No "credhub-ref" (none at all, or only the snake_case form that
      // CredHub would accept but both clients do not look for): untouched,
      // and no call: the URL has no listener, so a call would fail.
      const dead = `https://127.0.0.1:${freePort()}`;
      for (
        const plain of [
          '{"user-provided":[{"credentials":{"k":"v \\u00fc"},"name":"x"}]}',
          `{"s":[{"credentials":{"credhub_ref":"((${db1}))"}}], "b": 1}`,
        ]
      ) {
        const o4 = await ours(t, a, plain, dead);
        const t4 = await theirs(bin, t, a, plain, dead);
        assert.equal(t4.code, 0, t4.stderr);
        assert.equal(printed(t4.stdout), plain);
        assert.equal(o4.code, 0, o4.stderr);
        assert.equal(o4.stdout, plain);
      }

      // The broker revokes app A's read on one binding's credential: the
      // interpolation loses it, so both clients now fail as for app B.
      const found = await credhubRequest(
        t,
        "GET",
        `/api/v2/permissions?actor=mtls-app:${appA}&path=${
          encodeURIComponent(mq)
        }`,
        { token: broker },
      );
      assert.equal(found.status, 200, found.text);
      const del = await credhubRequest(
        t,
        "DELETE",
        `/api/v2/permissions/${JSON.parse(found.text).uuid}`,
        { token: broker },
      );
      assert.equal(del.status, 200, del.text);
      const o5 = await ours(t, a, vcapA);
      const t5 = await theirs(bin, t, a, vcapA);
      assert.equal(t5.code, 1);
      assert.equal(printed(t5.stderr).split("\n").at(-1), cfLine);
      assert.equal(o5.code, 4);
      assert.ok(o5.stderr.split("\n").includes(line), o5.stderr);
    } finally {
      await t.close();
    }
  },
});

Deno.test({
  name:
    "sigil launch vs CF's credhub-interpolate: a VCAP_SERVICES Go's decoder refuses (a number beyond float64, not an object, broken JSON) fails both before any call; ours quotes no value",
  ignore: !HAVE_PEER,
  fn: async () => {
    const t = await startTestCredhub();
    try {
      const bin = await peer(t);
      const a = await instanceFiles(t, crypto.randomUUID());
      const dead = `https://127.0.0.1:${freePort()}`;
      const ref = '{"credhub-ref":"((/c/b/s/x))"}';
      const cases: Array<[string, string, RegExp]> = [
        [
          `{"s":[{"credentials":${ref}}],"pin":1e400}`,
          "cannot unmarshal number",
          /VCAP_SERVICES is not valid JSON: the number at key "pin" is outside the range of a 64-bit float/,
        ],
        [`["credhub-ref"]`, "cannot unmarshal array", /not a JSON object/],
        [
          `{"s":[{"credentials":${ref}}],"pw":s3cret-v4lue}`,
          "invalid character",
          /VCAP_SERVICES is not valid JSON: an unexpected character/,
        ],
      ];
      for (const [vcap, go, mine] of cases) {
        const o = await ours(t, a, vcap, dead);
        const g = await theirs(bin, t, a, vcap, dead);
        assert.equal(g.code, 1, vcap);
        assert.match(g.stderr, new RegExp(go), vcap);
        assert.equal(o.code, 4, vcap);
        assert.equal(o.stdout, "", vcap);
        assert.match(o.stderr, mine, vcap);
        assert.match(o.stderr, /Unable to interpolate credhub refs/);
        assert.ok(
          !/1e400|s3cret/.test(o.stderr),
          `no value quoted: ${o.stderr}`,
        );
      }
    } finally {
      await t.close();
    }
  },
});
