/**
 * Keeps config.example.yaml honest against the schema: it must validate, and
 * every option the schema knows must be documented in it.
 */
import assert from "node:assert/strict";
import { Config, parseConfig } from "../../lib/config/mod.ts";

const EXAMPLE = new URL("../../config.example.yaml", import.meta.url);

type Def = {
  type: string;
  shape?: Record<string, unknown>;
  innerType?: unknown;
  in?: unknown;
  out?: unknown;
  element?: unknown;
  options?: unknown[];
};
const defOf = (s: unknown) => (s as { _zod: { def: Def } })._zod.def;

/** Every key path the schema accepts, e.g. `proxy.instances.listeners.listen`. */
function keyPaths(schema: unknown, prefix = ""): string[] {
  const def = defOf(schema);
  switch (def.type) {
    case "object": {
      const out: string[] = [];
      for (const [k, v] of Object.entries(def.shape ?? {})) {
        const p = prefix ? `${prefix}.${k}` : k;
        out.push(p, ...keyPaths(v, p));
      }
      return out;
    }
    case "optional":
    case "default":
    case "prefault":
    case "nullable":
    case "readonly":
      return keyPaths(def.innerType, prefix);
    case "pipe":
      return [...keyPaths(def.in, prefix), ...keyPaths(def.out, prefix)];
    case "array":
      return keyPaths(def.element, prefix);
    case "union":
      return (def.options ?? []).flatMap((o) => keyPaths(o, prefix));
    default:
      return [];
  }
}

Deno.test("config.example.yaml validates against the schema", async () => {
  const cfg = parseConfig(
    await Deno.readTextFile(EXAMPLE),
    "config.example.yaml",
  );
  for (const section of ["ca", "rotator", "proxy", "router", "dev"] as const) {
    assert.ok(
      cfg[section] !== undefined,
      `the example has a "${section}" section`,
    );
  }
});

Deno.test("config.example.yaml documents every option of the schema", async () => {
  const text = await Deno.readTextFile(EXAMPLE);
  // An option counts as documented when its key appears as "key:" on a line,
  // set or commented out ("# key: value").
  const documented = new Set(
    [...text.matchAll(/^[\s#-]*([a-z][a-z0-9_]*):/gm)].map((m) => m[1]!),
  );
  const missing = [...new Set(keyPaths(Config))].filter((p) =>
    !documented.has(p.split(".").pop()!)
  );
  assert.deepEqual(
    missing,
    [],
    `options missing from config.example.yaml: ${missing.join(", ")}`,
  );
});
