/**
 * The audit log: one `credential-audit` line per credential or permission
 * operation, naming the actor, the credential (or permission path), the
 * operation and its result, never a value. Operation names are CredHub's:
 * `operation` is its `AuditingOperationCode` (`credential_access`,
 * `credential_update`, ...), `device_action` its CEF `OperationDeviceAction`
 * (`GET`, `SET`, `INTERPOLATE`, ...; `components/audit/.../CEFAuditRecord.kt`).
 * @module
 */
import type { Context } from "hono";
import type { Counter, Logger } from "../observe/mod.ts";

/** CredHub's CEF `deviceAction` values Sigil produces. */
export type DeviceAction =
  | "GET"
  | "FIND"
  | "SET"
  | "DELETE"
  | "INTERPOLATE"
  | "GET_PERMISSIONS"
  | "ADD_PERMISSIONS"
  | "PUT_PERMISSIONS"
  | "PATCH_PERMISSIONS"
  | "DELETE_PERMISSIONS";

/**
 * What happened: `denied` when the caller may not (even where the answer is
 * CredHub's 404), `not_found` when there is nothing, `invalid` for a 400.
 */
export type AuditResult =
  | "success"
  | "denied"
  | "not_found"
  | "invalid"
  | "error";

/** The results counted in `requests_total`. */
export const AUDIT_RESULTS: AuditResult[] = [
  "success",
  "denied",
  "not_found",
  "invalid",
  "error",
];

/** The `operation` label of `requests_total`. */
export const METRIC_OPERATIONS = [
  "read",
  "write",
  "delete",
  "interpolate",
  "permission",
];

const OPERATION: Record<DeviceAction, [string, string]> = {
  GET: ["credential_access", "read"],
  FIND: ["credential_find", "read"],
  SET: ["credential_update", "write"],
  DELETE: ["credential_delete", "delete"],
  INTERPOLATE: ["credential_access", "interpolate"],
  GET_PERMISSIONS: ["acl_access", "permission"],
  ADD_PERMISSIONS: ["acl_update", "permission"],
  PUT_PERMISSIONS: ["acl_update", "permission"],
  PATCH_PERMISSIONS: ["acl_update", "permission"],
  DELETE_PERMISSIONS: ["acl_delete", "permission"],
};

/** One audited operation. */
export interface AuditEntry {
  action: DeviceAction;
  /** Credential name or permission path (CredHub's `resourceName`). */
  name: string;
  result: AuditResult;
  /** The version concerned, when there is exactly one. */
  versionId?: string;
}

/** Context variables of the audit middleware. */
export type AuditVariables = {
  principal: { actor: string; scopes?: string[] };
  /** Set by a handler once it knows the name, for the fallback line. */
  auditName: string;
  audited: boolean;
};

/** Records an audit line for the request of `c`. */
export type Audit = (
  c: Context<{ Variables: AuditVariables }>,
  entry: AuditEntry,
) => void;

/**
 * Builds the audit hook and the middleware that writes a line for every
 * authenticated `/api` request that the handler did not audit itself (a
 * missing scope, a bad request).
 *
 * @example
 * ```ts ignore
 * const { audit, middleware } = createAudit(logger, counter);
 * app.use("/api/*", middleware);
 * ```
 */
export function createAudit(logger: Logger, requests: Counter): {
  audit: Audit;
  middleware: (
    c: Context<{ Variables: AuditVariables }>,
    next: () => Promise<void>,
  ) => Promise<void>;
} {
  const write = (
    c: Context<{ Variables: AuditVariables }>,
    e: AuditEntry,
    status?: number,
  ) => {
    c.set("audited", true);
    const p = c.get("principal");
    const [operation, metric] = OPERATION[e.action];
    requests.inc({ operation: metric, result: e.result });
    logger.info("credential-audit", {
      actor: p.actor,
      auth_method: p.scopes ? "uaa" : "mutual_tls",
      operation,
      device_action: e.action,
      name: e.name,
      ...(e.versionId ? { version_id: e.versionId } : {}),
      result: e.result,
      ...(status ? { status } : {}),
    });
  };
  return {
    audit: (c, e) => write(c, e),
    async middleware(c, next) {
      await next();
      if (c.get("audited") || !c.get("principal")) return;
      const q = c.req.query();
      const action = actionOf(c.req.method, c.req.path, q);
      if (!action) return;
      const status = c.res.status;
      write(c, {
        action,
        name: c.get("auditName") ?? q.name ?? q.path ?? q["name-like"] ?? "",
        result: status === 403
          ? "denied"
          : status === 404
          ? "not_found"
          : status >= 500
          ? "error"
          : status >= 400
          ? "invalid"
          : "success",
      }, status);
    },
  };
}

function actionOf(
  method: string,
  path: string,
  q: Record<string, string>,
): DeviceAction | undefined {
  if (path.startsWith("/api/v1/data")) {
    if (method === "GET") {
      return q.path !== undefined || q["name-like"] !== undefined
        ? "FIND"
        : "GET";
    }
    if (method === "PUT") return "SET";
    if (method === "DELETE") return "DELETE";
  }
  if (path === "/api/v1/interpolate") return "INTERPOLATE";
  if (path.startsWith("/api/v2/permissions")) {
    return ({
      GET: "GET_PERMISSIONS",
      POST: "ADD_PERMISSIONS",
      PUT: "PUT_PERMISSIONS",
      PATCH: "PATCH_PERMISSIONS",
      DELETE: "DELETE_PERMISSIONS",
    } as Record<string, DeviceAction>)[method];
  }
  return undefined;
}
