/**
 * Status pages for the router, the proxy and the CA: server-side rendered
 * HTML (hono JSX, escaped), a stylesheet and a small script shipped in the
 * code, and the JSON each page is made from. Also the text helpers of
 * `sigil routes` and `sigil status`.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { mountStatus } from "./mod.ts";
 * const app = new Hono();
 * mountStatus(app, () => ({
 *   role: "ca", time: new Date().toISOString(), trust_domain: "sigil.test",
 *   issuers: [], issuances: [], refusals: [], revocations: null,
 * }));
 * const html = await (await app.request("/status")).text();
 * console.assert(html.includes("sigil.test"));
 * ```
 * @module
 */
export { mountStatus, renderStatus, STATUS_CSP } from "./_serve.tsx";
export type { MountStatusOptions } from "./_serve.tsx";
export { certSummary } from "./_cert.ts";
export { formatBytes, formatSpan, formatTable, printable } from "./_format.ts";
export type {
  CaStatus,
  CertSummary,
  EndpointState,
  EndpointStatus,
  InstanceStatus,
  IssuanceStatus,
  ListenerStatus,
  ProxyStatus,
  RegistrationStatus,
  RevocationStatus,
  RoleStatus,
  RouteEventStatus,
  RouterStatus,
  RouteStatus,
} from "./_types.ts";
