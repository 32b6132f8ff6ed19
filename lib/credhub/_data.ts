/**
 * `/api/v1/data` and `/api/v1/interpolate` (CredHub `CredentialsController`,
 * `InterpolationController` / `DefaultInterpolationHandler`). A read that is
 * denied answers 404 like a missing credential, never 403.
 * @module
 */
import type { Hono } from "hono";
import { CredhubError } from "./errors.ts";
import { MSG, OPERATIONS } from "./_messages.ts";
import type { CredentialStore } from "./_store.ts";
import { hasPermission } from "./_permissions.ts";
import { credentialView, credhubTime } from "./_views.ts";
import { checkCertificateValue, checkUserValue } from "./_shapes.ts";
import { type CredhubEnv, jsonBody, requireScope } from "./_api.ts";
import type { Audit } from "./_audit.ts";

const TYPES = ["value", "json", "password", "user", "certificate"];
const READ = ["credhub.read", "credhub.write"];
const NAME = /^[A-Za-z0-9_\-/.:()\[\]]+$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const notFound = () =>
  new CredhubError("ERR_CREDHUB_NOT_FOUND", 404, MSG.INVALID_ACCESS);
const bad = (m: string) => new CredhubError("ERR_CREDHUB_BAD_REQUEST", 400, m);

/** `"a/b"` → `"/a/b"`. */
export function withSlash(name: string): string {
  return name.startsWith("/") ? name : "/" + name;
}

/** Registers the data and interpolation routes. */
export function registerData(
  app: Hono<CredhubEnv>,
  store: CredentialStore,
  audit: Audit,
): void {
  const canRead = (actor: string, name: string) =>
    hasPermission(store, actor, name, "read");

  app.get("/api/v1/data/:id", async (c) => {
    const p = c.get("principal");
    requireScope(p, ...READ);
    const v = await store.byId(c.req.param("id"));
    if (!v || !await canRead(p.actor, v.name)) {
      audit(c, {
        action: "GET",
        name: v?.name ?? "",
        // Only a well-formed id is echoed into the log.
        versionId: UUID.test(c.req.param("id")) ? c.req.param("id") : undefined,
        result: v ? "denied" : "not_found",
      });
      throw notFound();
    }
    audit(c, {
      action: "GET",
      name: v.name,
      versionId: v.id,
      result: "success",
    });
    return c.json(credentialView(v));
  });

  app.get("/api/v1/data", async (c) => {
    const p = c.get("principal");
    requireScope(p, ...READ);
    const q = c.req.query();
    if (q.path !== undefined || q["name-like"] !== undefined) {
      const readable = [];
      for (const r of await store.names()) {
        if (await canRead(p.actor, r.name)) readable.push(r);
      }
      const results = readable.filter(({ name }) => {
        if (q.path !== undefined) {
          // Without case, as CredHub's name_lowercase LIKE lower(?).
          const prefix = withSlash(q.path).replace(/\/+$/, "") + "/";
          return name.toLowerCase().startsWith(prefix.toLowerCase());
        }
        return name.toLowerCase().includes(q["name-like"]!.toLowerCase());
      }).map((r) => ({
        version_created_at: credhubTime(r.createdAt),
        name: r.name,
      }));
      audit(c, {
        action: "FIND",
        name: q.path ?? q["name-like"]!,
        result: "success",
      });
      return c.json({ credentials: results });
    }
    if (!q.name) throw bad(MSG.missingQuery("name"));
    const current = q.current === "true";
    if (current && q.versions !== undefined) {
      throw bad(MSG.CANT_USE_VERSIONS_AND_CURRENT);
    }
    const name = withSlash(q.name);
    c.set("auditName", name);
    const n = current
      ? 1
      : q.versions !== undefined
      ? Number(q.versions)
      : undefined;
    if (n !== undefined && (!Number.isInteger(n) || n < 1)) {
      throw bad(`The query parameter versions was not valid for this request.`);
    }
    const versions = await canRead(p.actor, name)
      ? await store.versions(name, n)
      : [];
    if (versions.length === 0) {
      audit(c, {
        action: "GET",
        name,
        result: await store.exists(name) ? "denied" : "not_found",
      });
      throw notFound();
    }
    audit(c, {
      action: "GET",
      name,
      versionId: versions.length === 1 ? versions[0]!.id : undefined,
      result: "success",
    });
    return c.json({ data: versions.map(credentialView) });
  });

  app.put("/api/v1/data", async (c) => {
    const p = c.get("principal");
    requireScope(p, "credhub.write");
    const body = await jsonBody(c) as Record<string, unknown>;
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      throw bad(MSG.BAD_REQUEST);
    }
    for (const k of Object.keys(body)) {
      if (
        !["name", "type", "value", "metadata", "overwrite", "mode"].includes(k)
      ) {
        throw bad(MSG.invalidJsonKey(k));
      }
    }
    if (typeof body.name !== "string" || body.name === "") {
      throw bad(MSG.MISSING_NAME);
    }
    const name = withSlash(body.name);
    c.set("auditName", name);
    if (!NAME.test(name)) {
      throw bad(
        "Credential names may only include alpha, numeric, hyphen, underscore, and forward-slash characters. Please update and retry your request.",
      );
    }
    if (name.endsWith("/") || name.includes("//")) {
      throw bad(
        "A credential name cannot end with a '/' character or contain '//'. Credential names should be in the form of /[path]/[name] or [path]/[name]. Please update and retry your request.",
      );
    }
    const type = typeof body.type === "string" ? body.type.toLowerCase() : "";
    if (!TYPES.includes(type)) throw bad(MSG.INVALID_TYPE_WITH_SET_PROMPT);
    const value = checkValue(type, body.value);
    const existing = (await store.versions(name, 1))[0];
    if (existing) {
      if (!await hasPermission(store, p.actor, name, "write")) {
        audit(c, { action: "SET", name, result: "denied" });
        throw new CredhubError(
          "ERR_CREDHUB_FORBIDDEN",
          403,
          MSG.INVALID_ACCESS,
        );
      }
      if (existing.type !== type) throw bad(MSG.TYPE_MISMATCH);
    } else if (
      !p.scopes && !await hasPermission(store, p.actor, name, "write")
    ) {
      // mTLS callers create only where granted; bearer writers may create anywhere new.
      audit(c, { action: "SET", name, result: "denied" });
      throw new CredhubError("ERR_CREDHUB_FORBIDDEN", 403, MSG.INVALID_ACCESS);
    }
    // The creator gets every operation on what it created.
    const grant = !existing &&
        !(await store.permissions()).some((x) =>
          x.actor === p.actor && x.path === name
        )
      ? {
        uuid: crypto.randomUUID(),
        actor: p.actor,
        path: name,
        operations: [...OPERATIONS],
      }
      : undefined;
    const v = await store.put(name, type, value, body.metadata ?? null, {
      grant,
    });
    audit(c, { action: "SET", name, versionId: v.id, result: "success" });
    return c.json(credentialView(v));
  });

  app.delete("/api/v1/data", async (c) => {
    const p = c.get("principal");
    requireScope(p, "credhub.write");
    const q = c.req.query("name");
    if (!q) throw bad(MSG.missingQuery("name"));
    const name = withSlash(q);
    const allowed = await hasPermission(store, p.actor, name, "delete");
    if (!allowed || !await store.delete(name)) {
      audit(c, {
        action: "DELETE",
        name,
        result: !allowed && await store.exists(name) ? "denied" : "not_found",
      });
      throw notFound();
    }
    audit(c, { action: "DELETE", name, result: "success" });
    return c.body(null, 204);
  });

  app.post("/api/v1/interpolate", async (c) => {
    const p = c.get("principal");
    requireScope(p, ...READ);
    const services = await jsonBody(c);
    if (
      typeof services !== "object" || services === null ||
      Array.isArray(services)
    ) {
      throw bad(MSG.BAD_REQUEST);
    }
    for (const list of Object.values(services as Record<string, unknown>)) {
      if (!Array.isArray(list)) continue;
      for (const binding of list) {
        const creds = binding?.credentials;
        if (typeof creds !== "object" || creds === null) continue;
        const ref = creds["credhub_ref"] ?? creds["credhub-ref"];
        if (typeof ref !== "string") continue;
        const name = ref.replace(/^\(\(/, "").replace(/\)\)$/, "");
        const v = await canRead(p.actor, name)
          ? (await store.versions(name, 1))[0]
          : undefined;
        if (!v) {
          audit(c, {
            action: "INTERPOLATE",
            name,
            result: await store.exists(name) ? "denied" : "not_found",
          });
          throw notFound();
        }
        if (v.type !== "json") {
          audit(c, { action: "INTERPOLATE", name, result: "invalid" });
          throw bad(MSG.interpolationType(name));
        }
        audit(c, {
          action: "INTERPOLATE",
          name,
          versionId: v.id,
          result: "success",
        });
        binding.credentials = v.value;
      }
    }
    return c.json(services);
  });
}

function checkValue(type: string, value: unknown): unknown {
  if (type === "json") {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw bad(MSG.MISSING_VALUE);
    }
    return value;
  }
  if (type === "value" || type === "password") {
    if (typeof value !== "string" || value === "") throw bad(MSG.MISSING_VALUE);
    return value;
  }
  return type === "user" ? checkUserValue(value) : checkCertificateValue(value);
}
