import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT, sigil } from "../_helpers/proc.ts";

/** Hardening every service carries (oneshot ones skip the restart/reload lines). */
const HARDENING = [
  "NoNewPrivileges=yes",
  "ProtectSystem=strict",
  "PrivateTmp=yes",
  "ProtectHome=yes",
  "SystemCallArchitectures=native",
  "SystemCallFilter=@system-service",
  "ProtectClock=yes",
  "ProtectKernelLogs=yes",
  "ProtectHostname=yes",
  "RestrictRealtime=yes",
  "ProtectProc=invisible",
  "RemoveIPC=yes",
];
const LONG_RUNNING = [
  "Restart=on-failure",
  "ExecReload=/bin/kill -HUP $MAINPID",
  "ExecStartPre=/usr/local/bin/sigil config check /etc/sigil/sigil.yaml",
  // READY=1 / STOPPING=1 (tests/integration/sd_notify_test.ts)
  "Type=notify",
];

Deno.test("every unit in deploy/systemd passes systemd-analyze verify, scores <= 2.0 and carries the hardening", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(join(dir, "bin"));
    const launcher = join(dir, "bin", "sigil");
    await Deno.copyFile(join(ROOT, "deploy", "sigil-launcher.sh"), launcher);
    await Deno.chmod(launcher, 0o755);
    // Every file in the folder, so a unit added later cannot be left out.
    const files: string[] = [];
    for await (const e of Deno.readDir(join(ROOT, "deploy", "systemd"))) {
      files.push(e.name);
    }
    files.sort();
    for (
      const u of [
        "sigil-ca.service",
        "sigil-credhub.service",
        "sigil-proxy.service",
        "sigil-rotator.service",
        "sigil-rotator-once.service",
        "sigil-rotator-once.timer",
        "sigil-router.service",
      ]
    ) {
      assert.ok(files.includes(u), `deploy/systemd/${u} exists`);
    }
    for (const f of files) {
      assert.match(
        f,
        /^sigil-[\w-]+\.(service|timer)$/,
        `unexpected file ${f}`,
      );
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
    const guide = await Deno.readTextFile(join(ROOT, "deploy", "README.md"));
    for (const f of files) {
      const unit = f.replace(/\.(service|timer)$/, "");
      assert.ok(guide.includes(unit), `deploy/README.md explains ${unit}`);
      if (f.endsWith(".timer")) {
        assert.ok(
          files.includes(`${unit}.service`),
          `${f} has a ${unit}.service to start`,
        );
        continue;
      }
      // systemd-analyze's offline security audit: at most 2.0 ("OK").
      const sec = await new Deno.Command("systemd-analyze", {
        args: ["security", "--offline=true", join(dir, f)],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const report = new TextDecoder().decode(sec.stdout);
      const score = Number(
        /Overall exposure level for \S+: ([\d.]+)/.exec(report)?.[1],
      );
      assert.ok(score <= 2.0, `${f}: exposure ${score} > 2.0\n${report}`);
      const text = await Deno.readTextFile(join(ROOT, "deploy", "systemd", f));
      const oneshot = /^Type=oneshot$/m.test(text);
      for (const line of [...HARDENING, ...(oneshot ? [] : LONG_RUNNING)]) {
        assert.ok(text.includes(line), `${f} has ${line}`);
      }
      assert.match(text, /^User=sigil/m, `${f} runs as a dedicated user`);
      assert.match(text, /^ExecStart=\/usr\/local\/bin\/sigil \S+/m);
      assert.match(text, /--config \/etc\/sigil\/sigil\.yaml/);
      const caps = /^AmbientCapabilities=(.*)$/m.exec(text)?.[1] ?? "";
      assert.equal(
        caps,
        f === "sigil-router.service" ? "CAP_NET_BIND_SERVICE" : "",
        `${f} capabilities`,
      );
      // What it may write is its own state directory.
      const state = /^StateDirectory=(.*)$/m.exec(text)?.[1];
      const writable = /^ReadWritePaths=(.*)$/m.exec(text)?.[1];
      if (state) {
        assert.equal(writable, `/var/lib/${state}`, `${f} ReadWritePaths`);
      }
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
