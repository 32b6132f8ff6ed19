/**
 * Drill (issue 20, "Secrets"): an operator points `token_file` at a
 * line-wrapped token, or at a private key by mistake. Every role runs through
 * its error paths with such files, as real `sigil` processes, and no log line
 * of any of them may hold token or key material. Before the fix the rotator
 * logged `Invalid header value: "Bearer <the whole file>"` on every retry and
 * the proxy the same on every route heartbeat.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { sigil, SigilProcess } from "../_helpers/proc.ts";
import { createTestPki } from "../_helpers/pki.ts";
import { freePort } from "../_helpers/ports.ts";

/** Pieces of a secret that must never show up: 12-char windows of each line. */
function fragments(secret: string): string[] {
  const out = new Set<string>();
  for (const line of secret.split(/\r?\n/)) {
    const body = line.replace(/-----[A-Z ]+-----/g, "").trim();
    for (let i = 0; i + 12 <= body.length; i += 6) {
      out.add(body.slice(i, i + 12));
    }
  }
  return [...out];
}

function assertClean(
  who: string,
  lines: string[],
  secrets: Record<string, string>,
) {
  for (const line of lines) {
    assert.doesNotMatch(line, /PRIVATE KEY/, `${who} logged a PEM header`);
    for (const [name, secret] of Object.entries(secrets)) {
      for (const f of fragments(secret)) {
        assert.ok(
          !line.includes(f),
          `${who} logged part of the ${name} ("${f}") in: ${
            line.slice(0, 300)
          }`,
        );
      }
    }
  }
}

async function mintToken(dir: string, scope: string, subject: string) {
  const r = await sigil([
    "ca",
    "token",
    "--dir",
    dir,
    "--subject",
    subject,
    "--scope",
    scope,
    "--app",
    "*",
    "--space",
    "*",
    "--org",
    "*",
    "--cidr",
    "0.0.0.0/0",
  ]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

Deno.test("secrets drill: a wrapped token or a PEM key as token_file reaches no log line of the rotator, proxy, router or CA", async () => {
  const base = await Deno.makeTempDir({ prefix: "sigil-secrets-" });
  const procs: SigilProcess[] = [];
  try {
    const caDir = join(base, "ca");
    const init = await sigil(["ca", "init", "--dir", caDir]);
    assert.equal(init.code, 0, init.stderr);
    const cellToken = await mintToken(caDir, "cert.issue", "cell-1");
    const routesToken = await mintToken(caDir, "routes.write", "proxies");
    const keyPem = await Deno.readTextFile(join(caDir, "intermediate.key"));
    const secrets = {
      "cell token": cellToken,
      "routes token": routesToken,
      "private key": keyPem,
    };
    const wrap = (t: string) => t.match(/.{1,64}/g)!.join("\n") + "\n";
    const files: Record<string, string> = {
      "wrapped cell token": wrap(cellToken),
      "wrapped routes token": wrap(routesToken),
      "private key": keyPem,
      "token with a trailing blank": cellToken + " \n",
    };
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(join(base, name.replaceAll(" ", "_")), text, {
        mode: 0o600,
      });
    }
    const path = (name: string) => join(base, name.replaceAll(" ", "_"));

    const caYaml = join(base, "ca.yaml");
    await Deno.writeTextFile(
      caYaml,
      `ca:\n  dir: ${caDir}\n  listen: "127.0.0.1:0"\n`,
    );
    const ca = new SigilProcess(["ca", "serve", "--config", caYaml]);
    procs.push(ca);
    const caUrl = `https://${(await ca.waitForEvent("ca-listening")).address}`;
    const bundle = join(caDir, "root.crt");

    const apiPort = freePort();
    const routerYaml = join(base, "router.yaml");
    await Deno.writeTextFile(
      routerYaml,
      [
        "router:",
        "  drain_wait: 0s",
        `  listen: "127.0.0.1:${freePort()}"`,
        "  api:",
        `    listen: "127.0.0.1:${apiPort}"`,
        `    jwks_url: ${caUrl}/v1/jwks.json`,
        `    ca_bundle: ${bundle}`,
        "",
      ].join("\n"),
    );
    const router = new SigilProcess(["router", "--config", routerYaml]);
    procs.push(router);
    await router.waitForEvent("router-started", 30_000);

    // The CA and the router API, sent bearer material that is not a token.
    const keyLine = keyPem.split("\n")[1]!;
    const caClient = Deno.createHttpClient({
      caCerts: [await Deno.readTextFile(bundle)],
    });
    for (const bearer of [keyLine, cellToken.slice(0, 40), `${routesToken}x`]) {
      const r1 = await fetch(`${caUrl}/v1/sign`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${bearer}`,
          "content-type": "application/json",
        },
        body: "{}",
        client: caClient,
      } as RequestInit);
      assert.equal(r1.status, 401);
      assertClean("the CA's answer", [await r1.text()], secrets);
      const r2 = await fetch(`http://127.0.0.1:${apiPort}/v1/register`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${bearer}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({ host: "127.0.0.1", port: 1, uris: ["a.test"] }),
      });
      assert.equal(r2.status, 401);
      assertClean("the router's answer", [await r2.text()], secrets);
    }
    caClient.close();

    // The rotator, once per bad token file: it must say which file and why.
    for (
      const name of [
        "wrapped cell token",
        "private key",
        "token with a trailing blank",
      ]
    ) {
      const dir = join(base, `inst-${name.replaceAll(" ", "_")}`);
      const yaml = join(base, `rotator-${name.replaceAll(" ", "_")}.yaml`);
      await Deno.writeTextFile(
        yaml,
        [
          "rotator:",
          `  ca_url: ${caUrl}`,
          `  ca_bundle: ${bundle}`,
          `  token_file: ${path(name)}`,
          "  instances:",
          `    - {instance_id: i-1, app: a, space: s, org: o, ips: [10.0.0.5], dir: ${dir}}`,
          "",
        ].join("\n"),
      );
      const rot = new SigilProcess(["rotator", "--config", yaml]);
      procs.push(rot);
      const failed = await rot.waitForEvent("cert-renew-failed", 30_000);
      assert.match(
        JSON.stringify(failed),
        new RegExp(`token file \\\\"${path(name)}\\\\" is not a JWT`),
      );
      await rot.stop("SIGTERM");
      assertClean(`the rotator (${name})`, rot.lines, secrets);
    }

    // The proxy, registering with the router API with a bad router token.
    const pki = await createTestPki();
    for (const name of ["wrapped routes token", "private key"]) {
      const creds = join(base, `creds-${name.replaceAll(" ", "_")}`);
      await pki.writeInstance(creds, { instanceId: "i-2" });
      const yaml = join(base, `proxy-${name.replaceAll(" ", "_")}.yaml`);
      await Deno.writeTextFile(
        yaml,
        [
          "proxy:",
          "  admin_listen: 127.0.0.1:0",
          "  instances:",
          `    - credentials_dir: ${creds}`,
          "      mode: tls",
          "      listeners:",
          `        - { listen: "127.0.0.1:0", app: "127.0.0.1:${freePort()}" }`,
          "      register:",
          "        routes: [secrets.example.com]",
          "        host: 127.0.0.1",
          "        routers:",
          `          - url: http://127.0.0.1:${apiPort}`,
          `            token_file: ${path(name)}`,
          "",
        ].join("\n"),
      );
      const proxy = new SigilProcess(["proxy", "--config", yaml]);
      procs.push(proxy);
      const failed = await proxy.waitForEvent("routes-register-failed", 30_000);
      assert.match(String(failed.error), /is not a JWT/);
      await proxy.stop("SIGTERM");
      assertClean(`the proxy (${name})`, proxy.lines, secrets);
    }

    await router.stop("SIGTERM");
    await ca.stop("SIGTERM");
    assertClean("the router", router.lines, secrets);
    assertClean("the CA", ca.lines, secrets);
  } finally {
    for (const p of procs) await p.stop("SIGKILL").catch(() => {});
    await Deno.remove(base, { recursive: true });
  }
});
