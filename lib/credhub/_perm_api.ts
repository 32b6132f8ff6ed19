/**
 * `/api/v2/permissions` (CredHub `PermissionsV2Controller`,
 * `DefaultPermissionService`): managing an entry needs `write_acl` on its
 * path, reading it `read_acl`; nobody edits their own entries.
 * @module
 */
import type { Hono } from "hono";
import { CredhubError } from "./errors.ts";
import { MSG, OPERATIONS } from "./_messages.ts";
import type { CredentialStore, Permission } from "./_store.ts";
import { hasPermission } from "./_permissions.ts";
import { permissionView } from "./_views.ts";
import { type CredhubEnv, jsonBody, requireScope } from "./_api.ts";
import type { Audit, DeviceAction } from "./_audit.ts";
import type { Context } from "hono";
import { withSlash } from "./_data.ts";

const err = (status: number, m: string) =>
  new CredhubError("ERR_CREDHUB_PERMISSION", status, m);

function parseRequest(
  body: unknown,
  needAll: boolean,
): { actor?: string; path?: string; operations: string[] } {
  const b = (typeof body === "object" && body !== null ? body : {}) as Record<
    string,
    unknown
  >;
  if (needAll && (typeof b.path !== "string" || b.path === "")) {
    throw err(400, MSG.MISSING_PATH);
  }
  if (needAll && (typeof b.actor !== "string" || b.actor === "")) {
    throw err(400, MSG.MISSING_ACTOR);
  }
  if (!Array.isArray(b.operations) || b.operations.length === 0) {
    throw err(400, MSG.MISSING_OPERATIONS);
  }
  for (const op of b.operations) {
    if (!(OPERATIONS as readonly unknown[]).includes(op)) {
      throw err(400, MSG.INVALID_OPERATION);
    }
  }
  const ops = OPERATIONS.filter((o) => (b.operations as unknown[]).includes(o));
  return {
    actor: b.actor as string | undefined,
    path: typeof b.path === "string" ? withSlash(b.path) : undefined,
    operations: ops,
  };
}

/** Registers the permission routes. */
export function registerPermissions(
  app: Hono<CredhubEnv>,
  store: CredentialStore,
  audit: Audit,
): void {
  const managed = async (
    c: Context<CredhubEnv>,
    action: DeviceAction,
    uuid: string,
  ): Promise<Permission> => {
    const actor = c.get("principal").actor;
    const found = /^[0-9a-f-]{36}$/i.test(uuid)
      ? await store.permission(uuid)
      : undefined;
    if (
      !found || !await hasPermission(store, actor, found.path, "write_acl")
    ) {
      audit(c, {
        action,
        name: found?.path ?? "",
        result: found ? "denied" : "not_found",
      });
      throw err(404, MSG.PERMISSION_DOES_NOT_EXIST);
    }
    c.set("auditName", found.path);
    if (found.actor === actor) throw err(400, MSG.INVALID_UPDATE_OPERATION);
    return found;
  };

  app.post("/api/v2/permissions", async (c) => {
    const p = c.get("principal");
    requireScope(p, "credhub.write");
    const r = parseRequest(await jsonBody(c), true);
    c.set("auditName", r.path!);
    if (!await hasPermission(store, p.actor, r.path!, "write_acl")) {
      audit(c, { action: "ADD_PERMISSIONS", name: r.path!, result: "denied" });
      throw err(404, MSG.INVALID_ACCESS);
    }
    if (r.actor === p.actor) throw err(400, MSG.INVALID_UPDATE_OPERATION);
    if (
      (await store.permissions()).some((x) =>
        x.actor === r.actor && x.path === r.path
      )
    ) {
      throw err(409, MSG.PERMISSION_ALREADY_EXISTS);
    }
    const saved = await store.savePermission({
      uuid: crypto.randomUUID(),
      actor: r.actor!,
      path: r.path!,
      operations: r.operations,
    });
    audit(c, { action: "ADD_PERMISSIONS", name: r.path!, result: "success" });
    return c.json(permissionView(saved), 201);
  });

  app.get("/api/v2/permissions/:uuid", async (c) => {
    const p = c.get("principal");
    requireScope(p, "credhub.read", "credhub.write");
    const found = await store.permission(c.req.param("uuid"));
    if (
      !found || !await hasPermission(store, p.actor, found.path, "read_acl")
    ) {
      audit(c, {
        action: "GET_PERMISSIONS",
        name: found?.path ?? "",
        result: found ? "denied" : "not_found",
      });
      throw err(404, MSG.INVALID_ACCESS);
    }
    audit(c, {
      action: "GET_PERMISSIONS",
      name: found.path,
      result: "success",
    });
    return c.json(permissionView(found));
  });

  app.get("/api/v2/permissions", async (c) => {
    const p = c.get("principal");
    requireScope(p, "credhub.read", "credhub.write");
    const path = c.req.query("path"), actor = c.req.query("actor");
    if (!path) throw err(400, MSG.missingQuery("path"));
    if (!actor) throw err(400, MSG.missingQuery("actor"));
    const name = withSlash(path);
    if (!await hasPermission(store, p.actor, name, "read_acl")) {
      audit(c, { action: "GET_PERMISSIONS", name, result: "denied" });
      throw err(404, MSG.PERMISSION_INVALID_ACCESS);
    }
    const found = (await store.permissions()).find((x) =>
      x.actor === actor && x.path === name
    );
    audit(c, {
      action: "GET_PERMISSIONS",
      name,
      result: found ? "success" : "not_found",
    });
    if (!found) throw err(404, MSG.PERMISSION_INVALID_ACCESS);
    return c.json(permissionView(found));
  });

  app.put("/api/v2/permissions/:uuid", async (c) => {
    const p = c.get("principal");
    requireScope(p, "credhub.write");
    const found = await managed(c, "PUT_PERMISSIONS", c.req.param("uuid"));
    const r = parseRequest(await jsonBody(c), true);
    if (r.actor !== found.actor || r.path !== found.path) {
      throw err(
        400,
        "The permission guid does not match the provided actor and path.",
      );
    }
    audit(c, {
      action: "PUT_PERMISSIONS",
      name: found.path,
      result: "success",
    });
    return c.json(
      permissionView(
        await store.savePermission({ ...found, operations: r.operations }),
      ),
    );
  });

  app.patch("/api/v2/permissions/:uuid", async (c) => {
    const p = c.get("principal");
    requireScope(p, "credhub.write");
    const found = await managed(c, "PATCH_PERMISSIONS", c.req.param("uuid"));
    const r = parseRequest(await jsonBody(c), false);
    audit(c, {
      action: "PATCH_PERMISSIONS",
      name: found.path,
      result: "success",
    });
    return c.json(
      permissionView(
        await store.savePermission({ ...found, operations: r.operations }),
      ),
    );
  });

  app.delete("/api/v2/permissions/:uuid", async (c) => {
    const p = c.get("principal");
    requireScope(p, "credhub.write");
    const found = await managed(c, "DELETE_PERMISSIONS", c.req.param("uuid"));
    await store.deletePermission(found.uuid);
    audit(c, {
      action: "DELETE_PERMISSIONS",
      name: found.path,
      result: "success",
    });
    return c.json(permissionView(found));
  });
}
