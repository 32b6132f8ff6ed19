import assert from "node:assert/strict";
import { join } from "node:path";
import { MAIN, ROOT } from "../_helpers/proc.ts";
import { hostGet } from "../_helpers/http.ts";

/** Runs `sigil dev ARGS` and collects stdout until `marker` appears. */
function startDev(args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, "dev", ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  const waiters: Array<[string, () => void]> = [];
  const done = (async () => {
    for await (
      const chunk of child.stdout.pipeThrough(new TextDecoderStream())
    ) {
      out += chunk;
      for (const w of waiters.splice(0)) {
        if (out.includes(w[0])) w[1]();
        else waiters.push(w);
      }
    }
  })();
  const stderr = new Response(child.stderr).text();
  return {
    child,
    output: () => out,
    stderr,
    done,
    /** Kills it if still running and waits for its output to end. */
    async kill() {
      try {
        child.kill("SIGKILL");
      } catch {
        // exited
      }
      await child.status;
      await done;
      await stderr;
    },
    waitFor(marker: string, ms = 30_000) {
      if (out.includes(marker)) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const t = setTimeout(
          () => reject(new Error(`no "${marker}" in:\n${out}`)),
          ms,
        );
        waiters.push([marker, () => {
          clearTimeout(t);
          resolve();
        }]);
      });
    },
  };
}

Deno.test("sigil dev answers the documented curl within seconds and stops cleanly on SIGINT", async () => {
  const dev = startDev(["--port", "0"]);
  try {
    await dev.waitFor("Press Ctrl-C to stop.");
    const port = Number(
      /curl -H 'Host: hello\.localhost' http:\/\/127\.0\.0\.1:(\d+)\//.exec(
        dev.output(),
      )![1],
    );
    const stateDir = /State:\s+(\S+)\/dev\.json/.exec(dev.output())![1]!;
    const info = JSON.parse(
      await Deno.readTextFile(join(stateDir, "dev.json")),
    );
    assert.equal(info.router.http, `127.0.0.1:${port}`);
    assert.equal(info.instances.length, 4);
    for (
      const key of [
        "app",
        "app_guid",
        "instance_id",
        "index",
        "app_port",
        "tls_port",
        "admin",
        "dir",
      ]
    ) {
      assert.ok(key in info.instances[0], `dev.json instances have "${key}"`);
    }
    for (
      const key of ["http", "api", "token_file", "client_cert", "client_key"]
    ) {
      assert.ok(key in info.router, `dev.json router has "${key}"`);
    }
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const r = await hostGet(port, "hello.localhost", "/");
      assert.equal(r.status, 200);
      assert.match(r.body, /^hello from app "hello" instance \S+ \(index \d\)/);
      seen.add(r.body);
    }
    assert.equal(seen.size, 3, "round-robin over the three hello instances");
    const other = await hostGet(port, "other.localhost", "/");
    assert.match(other.body, /^hello from app "other"/);
    const routes = await (await fetch(`http://${info.router.api}/routes`))
      .json();
    assert.equal(routes["hello.localhost"].length, 3);
    const certs = await (await fetch(`http://${info.instances[0].admin}/certs`))
      .json();
    assert.equal(
      certs[0].identity.instanceId ?? certs[0].instance,
      info.instances[0].instance_id,
    );
    // The proxies are strict mTLS: a direct TLS client without the router's certificate is refused.
    const direct = await new Deno.Command("curl", {
      args: [
        "-sk",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        `https://127.0.0.1:${info.instances[0].tls_port}/`,
      ],
      stdout: "piped",
      stderr: "null",
    }).output();
    assert.equal(new TextDecoder().decode(direct.stdout), "000");

    dev.child.kill("SIGINT");
    const status = await dev.child.status;
    await dev.done;
    assert.equal(status.code, 0, await dev.stderr);
    assert.match(dev.output(), /Stopped\./);
    await assert.rejects(
      Deno.stat(stateDir),
      Deno.errors.NotFound,
      "temp dir removed",
    );
  } finally {
    await dev.kill();
  }
});

Deno.test("sigil dev --misroute shows the router refusing and pruning a stale endpoint", async () => {
  const dir = await Deno.makeTempDir();
  const dev = startDev([
    "--port",
    "0",
    "--dir",
    join(dir, "state"),
    "--misroute",
  ]);
  try {
    await dev.waitFor("Stale endpoint pruned");
    const out = dev.output();
    assert.match(out, /Requests that reached app "other": 0/);
    assert.match(out, /Stale endpoint pruned from the route table: yes/);
    assert.doesNotMatch(out, /x other instance/);
    assert.match(out, /refused the stale endpoint's certificate [1-9]\d* time/);
    dev.child.kill("SIGTERM");
    assert.equal((await dev.child.status).code, 0);
    await dev.done;
    const kept = JSON.parse(
      await Deno.readTextFile(join(dir, "state", "dev.json")),
    );
    assert.equal(kept.instances.length, 4, "--dir keeps the state");
  } finally {
    await dev.kill();
    await Deno.remove(dir, { recursive: true });
  }
});

/** `curl ARGS` (an independent TLS client); resolves to stdout and the status code. */
async function curl(args: string[]): Promise<{ body: string; status: string }> {
  const out = await new Deno.Command("curl", {
    args: ["-sS", "-w", "\n%{http_code}", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const i = text.lastIndexOf("\n");
  return { body: text.slice(0, i), status: text.slice(i + 1) };
}

Deno.test("sigil dev CredHub: hello's instances see their binding at /credentials through the router, other gets not-found; curl --cert agrees", async () => {
  const dir = await Deno.makeTempDir();
  const state = join(dir, "state");
  const dev = startDev(["--port", "0", "--dir", state]);
  try {
    await dev.waitFor("Press Ctrl-C to stop.", 60_000);
    const out = dev.output();
    const port = Number(
      /curl -H 'Host: hello\.localhost' http:\/\/127\.0\.0\.1:(\d+)\/credentials/
        .exec(out)![1],
    );
    assert.match(
      out,
      /curl -H 'Host: other\.localhost' http:\/\/127\.0\.0\.1:\d+\/credentials {3}\(404: other may not read it\)/,
    );
    const info = JSON.parse(await Deno.readTextFile(join(state, "dev.json")));
    const hello = info.instances.find((i: { app: string }) =>
      i.app === "hello"
    );
    const other = info.instances.find((i: { app: string }) =>
      i.app === "other"
    );
    // The broker's view (its own token): the stored binding.
    const token = (await Deno.readTextFile(info.credhub.token_file)).trim();
    const stored = await curl([
      "--cacert",
      info.ca.bundle,
      "-H",
      `Authorization: Bearer ${token}`,
      `${info.credhub.url}/api/v1/data?name=${info.credhub.credential}&current=true`,
    ]);
    assert.equal(stored.status, "200", stored.body);
    const value = JSON.parse(stored.body).data[0].value;
    assert.equal(value.username, "hello-user");

    // Through the real router: every hello instance interpolates its own
    // VCAP_SERVICES (round robin reaches all three), other gets nothing.
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const r = await hostGet(port, "hello.localhost", "/credentials");
      assert.equal(r.status, 200, r.body);
      const services = JSON.parse(r.body);
      assert.deepEqual(services["p-mysql"][0].credentials, value);
      assert.equal(services["p-mysql"][0].name, "hello-db");
      assert.ok(!r.body.includes("credhub-ref"), "the reference is replaced");
      seen.add(String(r.headers["x-instance-id"]));
    }
    assert.equal(seen.size, 3, "each hello instance answered");
    const denied = await hostGet(port, "other.localhost", "/credentials");
    assert.equal(denied.status, 404);
    assert.match(
      denied.body,
      /^app "other" gets no credentials \(sigil launch would exit 4\): .*does not exist or you do not have sufficient authorization/,
    );
    assert.ok(!denied.body.includes(value.password));

    // Independent client: curl with each instance's certificate against CredHub.
    const interpolate = (inst: { dir: string }) =>
      curl([
        "--cacert",
        info.ca.bundle,
        "--cert",
        join(inst.dir, "instance.crt"),
        "--key",
        join(inst.dir, "instance.key"),
        "-H",
        "Content-Type: application/json",
        "-X",
        "POST",
        "-d",
        info.credhub.vcap_services,
        `${info.credhub.url}/api/v1/interpolate`,
      ]);
    const mine = await interpolate(hello);
    assert.equal(mine.status, "200", mine.body);
    assert.deepEqual(JSON.parse(mine.body)["p-mysql"][0].credentials, value);
    const theirs = await interpolate(other);
    assert.equal(theirs.status, "404", theirs.body);
    assert.ok(!theirs.body.includes(value.password));
    const anonymous = await curl([
      "--cacert",
      info.ca.bundle,
      "-X",
      "POST",
      "-d",
      info.credhub.vcap_services,
      `${info.credhub.url}/api/v1/interpolate`,
    ]);
    assert.equal(anonymous.status, "401", anonymous.body);

    dev.child.kill("SIGTERM");
    assert.equal((await dev.child.status).code, 0);
    await dev.done;
    const stderr = await dev.stderr;
    assert.ok(!stderr.includes(value.password), "no password in the logs");
  } finally {
    await dev.kill();
    await Deno.remove(dir, { recursive: true });
  }
});
