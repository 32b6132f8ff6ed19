/**
 * The audit log of a `sigil credhub` subprocess: one `credential-audit` line
 * per read and write with actor, name, operation and result, named after
 * CredHub's `AuditingOperationCode` and CEF `OperationDeviceAction`
 * (`components/audit/.../CEFAuditRecord.kt`), and no stored value anywhere in
 * the captured output.
 * @module
 */
import assert from "node:assert/strict";
import { credhubCall, prepareTestCredhub } from "../_helpers/credhub.ts";
import { SigilProcess } from "../_helpers/proc.ts";

Deno.test("credhub audit log: one line per read and write (actor, name, operation, result: success/denied/not_found/invalid), no value in any log line", async () => {
  const f = await prepareTestCredhub();
  const server = new SigilProcess(["credhub", "--config", f.configPath]);
  try {
    const url = String((await server.waitForEvent("credhub-listening")).url);
    const ca = f.pki.rootPem;
    const brokerToken = await f.token("credhub.write credhub.read");
    const weakToken = await f.token("openid");
    const appA = crypto.randomUUID(), appB = crypto.randomUUID();
    const a = await f.pki.issueInstance({
      instanceId: crypto.randomUUID(),
      app: appA,
    });
    const b = await f.pki.issueInstance({
      instanceId: crypto.randomUUID(),
      app: appB,
    });
    const leaf = await f.pki.issueClient({ commonName: "svc.example" });
    // Plain random strings: nothing in the logger's redaction would catch them.
    const secret = () => `secret-${crypto.randomUUID().replaceAll("-", "")}`;
    const s = {
      json: secret(),
      value: secret(),
      password: secret(),
      userPassword: secret(),
      username: `user-${crypto.randomUUID()}`,
      metadata: secret(),
    };
    const base = `/c/broker/svc/${crypto.randomUUID()}`;
    const broker = { token: brokerToken, ca };
    const asA = { cert: a.certPem, key: a.keyPem, ca };
    const asB = { cert: b.certPem, key: b.keyPem, ca };
    const expected: Array<[string, string, string, string, string]> = [];
    const expect = (
      actor: string,
      operation: string,
      action: string,
      name: string,
      result: string,
    ) => expected.push([actor, operation, action, name, result]);
    const brokerActor = "uaa-client:broker";
    const actorA = `mtls-app:${appA}`, actorB = `mtls-app:${appB}`;
    const call = async (
      method: string,
      path: string,
      o: { token?: string; cert?: string; key?: string; ca: string },
      status: number,
      body?: unknown,
    ) => {
      const r = await credhubCall(url, method, path, { ...o, body });
      assert.equal(
        r.status,
        status,
        `${method} ${path}: ${JSON.stringify(r.body)}`,
      );
      return r.body;
    };

    const set = await call("PUT", "/api/v1/data", broker, 200, {
      name: `${base}/creds`,
      type: "json",
      value: { password: s.json },
      metadata: { note: s.metadata },
    });
    expect(brokerActor, "credential_update", "SET", `${base}/creds`, "success");
    for (
      const [type, value] of [
        ["value", s.value],
        ["password", s.password],
        ["user", { username: s.username, password: s.userPassword }],
        ["certificate", {
          certificate: leaf.certPem,
          private_key: leaf.keyPem,
        }],
      ] as const
    ) {
      await call("PUT", "/api/v1/data", broker, 200, {
        name: `${base}/${type}`,
        type,
        value,
      });
      expect(
        brokerActor,
        "credential_update",
        "SET",
        `${base}/${type}`,
        "success",
      );
    }
    for (const n of ["creds", "user", "value", "password"]) {
      await call("POST", "/api/v2/permissions", broker, 201, {
        actor: actorA,
        path: `${base}/${n}`,
        operations: ["read"],
      });
      expect(
        brokerActor,
        "acl_update",
        "ADD_PERMISSIONS",
        `${base}/${n}`,
        "success",
      );
    }
    const q = (n: string) => `/api/v1/data?name=${encodeURIComponent(n)}`;
    await call("GET", q(`${base}/creds`) + "&current=true", asA, 200);
    expect(actorA, "credential_access", "GET", `${base}/creds`, "success");
    await call("GET", q(`${base}/user`), asA, 200);
    expect(actorA, "credential_access", "GET", `${base}/user`, "success");
    await call("GET", q(`${base}/creds`), asB, 404);
    expect(actorB, "credential_access", "GET", `${base}/creds`, "denied");
    await call("GET", q(`${base}/nothing`), asA, 404);
    expect(actorA, "credential_access", "GET", `${base}/nothing`, "not_found");
    await call("GET", `/api/v1/data/${set.id}`, asA, 200);
    expect(actorA, "credential_access", "GET", `${base}/creds`, "success");
    await call("PUT", "/api/v1/data", asA, 403, {
      name: `${base}/creds`,
      type: "json",
      value: { x: s.value },
    });
    expect(actorA, "credential_update", "SET", `${base}/creds`, "denied");
    const vcap = {
      svc: [
        { credentials: { "credhub-ref": `((${base}/creds))` } },
        { credentials: { "credhub-ref": `((${base}/value))` } },
      ],
    };
    await call("POST", "/api/v1/interpolate", asA, 400, vcap);
    expect(
      actorA,
      "credential_access",
      "INTERPOLATE",
      `${base}/creds`,
      "success",
    );
    expect(
      actorA,
      "credential_access",
      "INTERPOLATE",
      `${base}/value`,
      "invalid",
    );
    await call("POST", "/api/v1/interpolate", asB, 404, vcap);
    expect(
      actorB,
      "credential_access",
      "INTERPOLATE",
      `${base}/creds`,
      "denied",
    );
    await call("GET", q(`${base}/creds`), { token: weakToken, ca }, 403);
    expect(brokerActor, "credential_access", "GET", `${base}/creds`, "denied");
    await call("PUT", "/api/v1/data", broker, 400, {
      name: `${base}/creds`,
      type: "value",
      value: s.value,
    });
    expect(brokerActor, "credential_update", "SET", `${base}/creds`, "invalid");
    await call("GET", `/api/v1/data?path=${base}`, broker, 200);
    expect(brokerActor, "credential_find", "FIND", base, "success");
    const perm = await call(
      "GET",
      `/api/v2/permissions?path=${
        encodeURIComponent(`${base}/user`)
      }&actor=${actorA}`,
      broker,
      200,
    );
    expect(
      brokerActor,
      "acl_access",
      "GET_PERMISSIONS",
      `${base}/user`,
      "success",
    );
    await call("DELETE", `/api/v2/permissions/${perm.uuid}`, broker, 200);
    expect(
      brokerActor,
      "acl_delete",
      "DELETE_PERMISSIONS",
      `${base}/user`,
      "success",
    );
    await call("DELETE", q(`${base}/password`), asA, 404);
    expect(actorA, "credential_delete", "DELETE", `${base}/password`, "denied");
    await call("DELETE", q(`${base}/password`), broker, 204);
    expect(
      brokerActor,
      "credential_delete",
      "DELETE",
      `${base}/password`,
      "success",
    );
    await call("DELETE", q(`${base}/password`), broker, 404);
    expect(
      brokerActor,
      "credential_delete",
      "DELETE",
      `${base}/password`,
      "not_found",
    );
    // Not audited: no credential or permission is touched.
    await call("GET", "/info", { ca }, 200);

    // The lines are written before each response goes out.
    await server.waitFor((l) =>
      l.event === "credential-audit" && l.result === "not_found" &&
      l.device_action === "DELETE"
    );
    const audit = server.lines.map((l) => JSON.parse(l)).filter((l) =>
      l.event === "credential-audit"
    );
    assert.deepEqual(
      audit.map((
        l,
      ) => [l.actor, l.operation, l.device_action, l.name, l.result]),
      expected,
    );
    for (const l of audit) {
      assert.equal(
        l.auth_method,
        l.actor.startsWith("mtls-app:") ? "mutual_tls" : "uaa",
      );
    }
    assert.equal(audit[0].version_id, set.id);
    // The lines the middleware writes (no handler audit): with the status.
    assert.deepEqual(
      audit.filter((l) => l.status).map((
        l,
      ) => [l.device_action, l.result, l.status]),
      [["GET", "denied", 403], ["SET", "invalid", 400]],
    );

    const { stdout } = await server.stop();
    const everything = server.lines.join("\n") + stdout;
    assert.ok(everything.includes(`${base}/creds`));
    const keyBody = leaf.keyPem.split("\n").filter((l) =>
      l && !l.startsWith("-----")
    );
    for (const v of [...Object.values(s), ...keyBody, brokerToken, weakToken]) {
      assert.ok(
        !everything.includes(v),
        `the log holds a secret (${v.slice(0, 12)}…)`,
      );
    }
  } finally {
    await server.stop();
    await Deno.remove(f.dir, { recursive: true });
  }
});
