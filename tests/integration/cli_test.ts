import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT, sigil } from "../_helpers/proc.ts";

Deno.test("sigil --help lists every subcommand; sigil <cmd> --help lists its flags", async () => {
  const r = await sigil(["--help"]);
  assert.equal(r.code, 0);
  for (
    const cmd of [
      "dev",
      "ca init",
      "ca issue",
      "ca token",
      "ca serve",
      "ca ledger",
      "inspect",
      "rotator",
      "proxy",
      "router",
      "config check",
    ]
  ) {
    assert.match(r.stdout, new RegExp(`\\n  ${cmd} `), `help lists "${cmd}"`);
  }
  const t = await sigil(["ca", "token", "--help"]);
  assert.equal(t.code, 0);
  for (
    const flag of [
      "--dir",
      "--subject",
      "--app",
      "--space",
      "--org",
      "--cidr",
      "--scope",
      "--ttl",
    ]
  ) {
    assert.ok(t.stdout.includes(flag), flag);
  }
  assert.match(r.stdout, /\n {2}version /);
  // A command group alone, or with --help, lists its commands.
  const g = await sigil(["ca", "--help"]);
  assert.equal(g.code, 0);
  for (const sub of ["init", "issue", "token", "serve", "ledger"]) {
    assert.match(g.stdout, new RegExp(`\\n {2}ca ${sub} `));
  }
  const bare = await sigil(["config"]);
  assert.equal(bare.code, 2);
  assert.match(bare.stdout, /config check/);
});

Deno.test("sigil exits 2 on unknown flags and commands, and prints its version", async () => {
  const u = await sigil(["ca", "init", "--dri", "/tmp/x"]);
  assert.equal(u.code, 2);
  assert.match(u.stderr, /--dri/);
  const c = await sigil(["frobnicate"]);
  assert.equal(c.code, 2);
  assert.match(c.stderr, /Unknown command/);
  const m = await sigil(["ca", "init"]);
  assert.equal(m.code, 2);
  assert.match(m.stderr, /--dir/);
  const v = await sigil(["version"]);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^sigil \d+\.\d+\.\d+/);
  // Bad durations and unusable paths: one line, no stack trace.
  const dir = await Deno.makeTempDir();
  try {
    const z = await sigil([
      "ca",
      "init",
      "--dir",
      `${dir}/ca`,
      "--intermediate-validity",
      "0s",
    ]);
    assert.equal(z.code, 2);
    assert.match(z.stderr, /"--intermediate-validity": "0s" must be longer/);
    await Deno.writeTextFile(`${dir}/file`, "");
    const p = await sigil(["ca", "init", "--dir", `${dir}/file/ca`]);
    assert.equal(p.code, 1);
    assert.match(p.stderr, /^sigil: .*file\/ca/m);
    assert.doesNotMatch(p.stderr, /Uncaught| {4}at /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sigil config check reports every problem with its path and line, exit 2", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const bad = join(dir, "bad.yaml");
    await Deno.writeTextFile(
      bad,
      "ca:\n  dir: /x\n  dirr: /y\n  listen: nowhere\nrouterr: {}\n",
    );
    const r = await sigil(["config", "check", bad]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /ca\.dirr: unrecognized key.*\(line 3\)/);
    assert.match(r.stderr, /ca\.listen: invalid address "nowhere".*\(line 4\)/);
    assert.match(r.stderr, /routerr: unrecognized key.*\(line 5\)/);
    const yaml = join(dir, "broken.yaml");
    await Deno.writeTextFile(yaml, "ca:\n  dir: [\n");
    const y = await sigil(["config", "check", yaml]);
    assert.equal(y.code, 2);
    assert.match(y.stderr, /line \d+/);
    const missing = await sigil(["config", "check", join(dir, "nope.yaml")]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /file not found/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("config.example.yaml passes sigil config check", async () => {
  const r = await sigil([
    "config",
    "check",
    "--schema-only",
    join(ROOT, "config.example.yaml"),
  ]);
  assert.equal(r.code, 0, r.stderr);
});
