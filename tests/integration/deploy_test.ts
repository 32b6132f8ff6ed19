import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT, sigil } from "../_helpers/proc.ts";

const UNITS = [
  "sigil-ca.service",
  "sigil-rotator.service",
  "sigil-proxy.service",
  "sigil-router.service",
];

Deno.test("deploy/systemd units pass systemd-analyze verify and carry the hardening", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(join(dir, "bin"));
    const launcher = join(dir, "bin", "sigil");
    await Deno.copyFile(join(ROOT, "deploy", "sigil-launcher.sh"), launcher);
    await Deno.chmod(launcher, 0o755);
    const files: string[] = [];
    for await (const e of Deno.readDir(join(ROOT, "deploy", "systemd"))) {
      files.push(e.name);
    }
    for (
      const u of [
        ...UNITS,
        "sigil-rotator-once.service",
        "sigil-rotator-once.timer",
      ]
    ) {
      assert.ok(files.includes(u), `deploy/systemd/${u} exists`);
    }
    for (const f of files) {
      const text = await Deno.readTextFile(join(ROOT, "deploy", "systemd", f));
      await Deno.writeTextFile(
        join(dir, f),
        text.replaceAll("/usr/local/bin/sigil", launcher),
      );
    }
    const out = await new Deno.Command("systemd-analyze", {
      args: ["verify", ...files.map((f) => join(dir, f))],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    // Every service in the folder (including ones added later) scores at
    // most 2.0 ("OK") in systemd-analyze's offline security audit.
    for (const f of files.filter((f) => f.endsWith(".service"))) {
      const sec = await new Deno.Command("systemd-analyze", {
        args: ["security", "--offline=true", join(dir, f)],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(sec.stdout);
      const score = Number(
        /Overall exposure level for \S+: ([\d.]+)/.exec(text)?.[1],
      );
      assert.ok(score <= 2.0, `${f}: exposure ${score} > 2.0\n${text}`);
    }
    for (const u of UNITS) {
      const text = await Deno.readTextFile(join(ROOT, "deploy", "systemd", u));
      for (
        const line of [
          "Restart=on-failure",
          "NoNewPrivileges=yes",
          "ProtectSystem=strict",
          "PrivateTmp=yes",
          "ProtectHome=yes",
          "ExecReload=/bin/kill -HUP $MAINPID",
          "SystemCallArchitectures=native",
          "SystemCallFilter=@system-service",
          "ProtectClock=yes",
          "ProtectKernelLogs=yes",
          "ProtectHostname=yes",
          "RestrictRealtime=yes",
          "ProtectProc=invisible",
          "RemoveIPC=yes",
          // READY=1 / STOPPING=1 (tests/integration/sd_notify_test.ts)
          "Type=notify",
        ]
      ) {
        assert.ok(text.includes(line), `${u} has ${line}`);
      }
      assert.match(text, /^User=sigil/m, `${u} runs as a dedicated user`);
      assert.match(text, /--config \/etc\/sigil\/sigil\.yaml/);
      const caps = /^AmbientCapabilities=(.*)$/m.exec(text)?.[1] ?? "";
      assert.equal(
        caps,
        u === "sigil-router.service" ? "CAP_NET_BIND_SERVICE" : "",
        `${u} capabilities`,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task bundle output runs with deno run --no-config from any directory", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = join(dir, "sigil.js");
    const b = await new Deno.Command(Deno.execPath(), {
      args: [
        "bundle",
        "--quiet",
        "--platform",
        "deno",
        "-o",
        out,
        join(ROOT, "main.ts"),
      ],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(b.code, 0, new TextDecoder().decode(b.stderr));
    const run = (args: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--no-config",
          "--allow-net",
          "--allow-read",
          "--allow-write",
          "--allow-env",
          "--allow-run",
          "--allow-sys",
          out,
          ...args,
        ],
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
      }).output();
    const v = await run(["version"]);
    assert.equal(v.code, 0, new TextDecoder().decode(v.stderr));
    assert.match(new TextDecoder().decode(v.stdout), /^sigil \d/);
    // The same bundle through deploy/sigil-launcher.sh, with and without
    // SIGIL_V8_FLAGS (V8 refuses a flag it does not know: proof it got there).
    const launch = (v8Flags?: string) =>
      new Deno.Command("sh", {
        args: [join(ROOT, "deploy", "sigil-launcher.sh"), "version"],
        env: {
          DENO: Deno.execPath(),
          SIGIL_BUNDLE: out,
          ...(v8Flags ? { SIGIL_V8_FLAGS: v8Flags } : {}),
        },
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
      }).output();
    for (const flags of [undefined, "--memory-saver-mode"]) {
      const l = await launch(flags);
      assert.equal(l.code, 0, new TextDecoder().decode(l.stderr));
      assert.match(new TextDecoder().decode(l.stdout), /^sigil \d/);
    }
    const bogus = await launch("--no-such-v8-flag");
    assert.match(
      new TextDecoder().decode(bogus.stderr),
      /V8 did not recognize flag '--no-such-v8-flag'/,
    );
    const init = await run(["ca", "init", "--dir", join(dir, "ca")]);
    assert.equal(init.code, 0, new TextDecoder().decode(init.stderr));
    const check = await sigil([
      "inspect",
      join(dir, "ca", "root.crt"),
      "--json",
    ]);
    assert.equal(JSON.parse(check.stdout).is_ca, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
