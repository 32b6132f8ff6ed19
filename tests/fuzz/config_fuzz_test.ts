/**
 * Property tests of config loading (lib/config/load.ts): random YAML text,
 * random YAML documents, and config.example.yaml with one setting replaced
 * by a random value. Each is accepted or refused with a ConfigError whose
 * message names the setting; nothing else escapes, nothing hangs.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { parse, stringify } from "yaml";
import { ConfigError, parseConfig } from "../../lib/config/mod.ts";
import { bounded, jsonValue, nastyString, params } from "./_fuzz.ts";

const EXAMPLE = await Deno.readTextFile(
  new URL("../../config.example.yaml", import.meta.url),
);

/** Parses; returns the config or the refusal; fails on anything else. */
function load(text: string) {
  return bounded("parseConfig", () => {
    try {
      return parseConfig(text, "fuzz.yaml");
    } catch (err) {
      assert.ok(err instanceof ConfigError, `${err}`);
      assert.match(err.message, /"fuzz\.yaml"/);
      return err;
    }
  });
}

/** Every key path of a parsed YAML value, e.g. `["router", "api", "listen"]`. */
function paths(
  v: unknown,
  prefix: (string | number)[] = [],
): (string | number)[][] {
  if (Array.isArray(v)) {
    return v.flatMap((x, i) => [[...prefix, i], ...paths(x, [...prefix, i])]);
  }
  if (typeof v === "object" && v !== null) {
    return Object.entries(v).flatMap(([k, x]) => [
      [...prefix, k],
      ...paths(x, [...prefix, k]),
    ]);
  }
  return [];
}

const EXAMPLE_PATHS = paths(parse(EXAMPLE)).filter((p) =>
  typeof p[p.length - 1] === "string"
);

const yamlText = fc.oneof(
  fc.string({ unit: "binary", maxLength: 300 }),
  fc.string({
    unit: fc.constantFrom(
      "a",
      ":",
      " ",
      "\n",
      "-",
      "&a",
      "*a",
      "!!",
      "{",
      "}",
      "[",
      "]",
      "'",
      '"',
      "#",
      "router",
      "ca",
      "listen",
      "<<",
    ),
    maxLength: 200,
  }),
  fc.dictionary(
    fc.constantFrom("ca", "rotator", "proxy", "router", "dev", "credhub", "x"),
    jsonValue,
  ).map((o) => stringify(o)),
);

Deno.test("fuzz parseConfig(): random YAML is accepted or refused with a ConfigError, never a crash or a hang", async () => {
  await fc.assert(
    fc.asyncProperty(yamlText, async (text) => {
      await load(text);
    }),
    params(0.3),
  );
});

Deno.test("fuzz parseConfig(): config.example.yaml with one setting replaced is refused naming that setting (or accepted)", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...EXAMPLE_PATHS),
      fc.oneof(
        jsonValue,
        nastyString,
        fc.integer(),
        fc.constantFrom("0s", "-1s", "1h", "", "127.0.0.1:99999", "nowhere"),
      ),
      async (path, value) => {
        const doc = parse(EXAMPLE);
        let at = doc;
        for (const k of path.slice(0, -1)) at = at[k];
        at[path[path.length - 1]!] = value;
        const r = await load(stringify(doc));
        if (r instanceof ConfigError) {
          const named = path.filter((k) => typeof k === "string").join(".");
          const section = String(path[0]);
          assert.ok(
            r.issues.length > 0 &&
              r.issues.some((i) =>
                i.path.startsWith(section) || named.startsWith(i.path)
              ),
            `refusal of ${named} names it: ${r.message}`,
          );
          assert.match(r.message, new RegExp(section));
        }
      },
    ),
    params(4),
  );
});

Deno.test("parseConfig() refuses a YAML alias bomb (billion laughs) and an unknown alias with a ConfigError, not a ReferenceError (found by the fuzzer)", async () => {
  const lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"];
  for (let i = 1; i < 12; i++) {
    lines.push(
      `a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(", ")}]`,
    );
  }
  const r = await load(lines.join("\n") + "\n");
  assert.ok(r instanceof ConfigError);
  assert.match(r.message, /invalid YAML.*\(yaml\).*alias/s);
  const unknown = await load("router: *nowhere\n");
  assert.ok(unknown instanceof ConfigError);
  assert.match(unknown.message, /\(yaml\).*alias/s);
});
