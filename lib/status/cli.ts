/**
 * `sigil routes` (the router's route table, like `cfdot` or `kubectl get`)
 * and `sigil status` (one role's status endpoint, summarised).
 * @module
 */
import type { Command, FlagValues } from "../common/mod.ts";
import {
  describeError,
  readTokenFile,
  redactUrl,
  stringFlag,
  UsageError,
} from "../common/mod.ts";
import { StatusReadError } from "./errors.ts";
import { filterRoutes, routesTable, statusText } from "./_text.ts";
import type { RoutesJson } from "./_text.ts";
import type { RoleStatus, RouterStatus } from "./_types.ts";

/** Where `sigil routes` looks by default: the router API's default listen. */
export const DEFAULT_ROUTER_URL = "http://127.0.0.1:8082";

interface Endpoint {
  base: URL;
  headers: Headers;
  client?: Deno.HttpClient;
}

/** Base URL, auth header and TLS trust from the flags. */
async function endpoint(
  flags: FlagValues,
  flag: string,
  fallback: string,
): Promise<Endpoint> {
  const raw = stringFlag(flags, flag) ?? fallback;
  let base: URL;
  try {
    base = new URL(raw.includes("://") ? raw : `http://${raw}`);
  } catch {
    throw new UsageError(
      `Invalid --${flag} "${redactUrl(raw)}": use a URL like ${fallback}`,
    );
  }
  if (base.protocol !== "http:" && base.protocol !== "https:") {
    throw new UsageError(
      `Invalid --${flag} "${redactUrl(raw)}": use http:// or https://`,
    );
  }
  base.pathname = base.pathname.replace(/\/(status(\.json)?|routes)?\/?$/, "");
  const headers = new Headers({ accept: "application/json" });
  const tokenFile = stringFlag(flags, "token-file");
  if (tokenFile !== undefined) {
    headers.set("authorization", `Bearer ${await readTokenFile(tokenFile)}`);
  } else if (base.username !== "") {
    // gorouter's status port takes basic auth: http://user:pass@host:8082.
    const user = decodeURIComponent(base.username);
    const pass = decodeURIComponent(base.password);
    headers.set("authorization", `Basic ${btoa(`${user}:${pass}`)}`);
  }
  base.username = "";
  base.password = "";
  const cacert = stringFlag(flags, "cacert");
  let client: Deno.HttpClient | undefined;
  if (cacert !== undefined) {
    let pem: string;
    try {
      pem = await Deno.readTextFile(cacert);
    } catch (err) {
      throw new UsageError(
        `Cannot read --cacert "${cacert}": ${describeError(err)}`,
        { cause: err },
      );
    }
    client = Deno.createHttpClient({ caCerts: [pem] });
  }
  return { base, headers, client };
}

/** GETs `path` as JSON; `undefined` on 404 when `optional`. */
async function getJson(
  ep: Endpoint,
  path: string,
  options: { optional?: boolean; query?: Record<string, string> } = {},
): Promise<unknown> {
  const url = new URL(ep.base);
  url.pathname = ep.base.pathname.replace(/\/$/, "") + path;
  url.search = new URLSearchParams(options.query ?? {}).toString();
  const shown = url.toString();
  let res: Response;
  try {
    res = await fetch(url, {
      headers: ep.headers,
      client: ep.client,
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    const why = err instanceof DOMException && err.name === "TimeoutError"
      ? "no answer within 30 s"
      : fetchFailure(err);
    throw new StatusReadError(`Cannot read "${shown}": ${why}`, {
      cause: err,
    });
  }
  if (res.status === 404 && options.optional) {
    await res.body?.cancel();
    return undefined;
  }
  if (!res.ok) {
    await res.body?.cancel();
    const hint = res.status === 401 || res.status === 403
      ? ep.headers.has("authorization")
        ? "; the token was refused (does it carry the routes.read scope?)"
        : "; send a token with --token-file FILE"
      : "";
    throw new StatusReadError(
      `Cannot read "${shown}": HTTP ${res.status}${hint}`,
    );
  }
  try {
    return await res.json();
  } catch (err) {
    throw new StatusReadError(`Cannot read "${shown}": the body is not JSON`, {
      cause: err,
    });
  }
}

/** Why fetch failed, in words an operator can act on. */
function fetchFailure(err: unknown): string {
  const detail = describeError((err as Error).cause ?? err);
  if (/UnknownIssuer|certificate/i.test(detail)) {
    return `the server's certificate is not trusted (${
      detail.replace(/^.*\): /, "")
    }); pass its CA bundle with --cacert FILE`;
  }
  if (/Connection refused/i.test(detail)) {
    return "connection refused (is it running, and is this its address?)";
  }
  return detail.replace(/^error sending request for url \([^)]*\): /, "");
}

function isRoutes(v: unknown): v is RoutesJson {
  return typeof v === "object" && v !== null && !Array.isArray(v) &&
    Object.values(v).every((eps) =>
      Array.isArray(eps) &&
      eps.every((e) => typeof e?.address === "string")
    );
}

function isStatus(v: unknown): v is RoleStatus {
  const role = (v as { role?: unknown } | null)?.role;
  return role === "router" || role === "proxy" || role === "ca";
}

const COMMON_FLAGS: Command["flags"] = {
  "token-file": {
    type: "string",
    arg: "FILE",
    description:
      "Send 'Authorization: Bearer' with the token in FILE (mode 0600)",
  },
  cacert: {
    type: "string",
    arg: "FILE",
    description: "Trust the CA certificates in FILE for an https:// URL",
  },
  json: { type: "boolean", description: "Print the endpoint's JSON instead" },
};

/** `sigil routes` and `sigil status`. */
export const STATUS_COMMANDS: Command[] = [{
  name: "routes",
  summary:
    "Print a router's route table: host, endpoint, instance, app, state, heartbeat age",
  flags: {
    router: {
      type: "string",
      arg: "URL",
      description: `The router's API (default ${DEFAULT_ROUTER_URL})`,
    },
    host: {
      type: "string",
      arg: "H",
      description: "Only routes whose name contains H",
    },
    ...COMMON_FLAGS,
  },
  async run(flags) {
    const ep = await endpoint(flags, "router", DEFAULT_ROUTER_URL);
    try {
      const routes = await getJson(ep, "/routes");
      if (!isRoutes(routes)) {
        throw new StatusReadError(
          `Cannot read "${ep.base}routes": not a route table (is --router the router's API listener?)`,
        );
      }
      const host = stringFlag(flags, "host") ?? "";
      const shown = filterRoutes(routes, host);
      if (flags.json) {
        console.log(JSON.stringify(shown, null, 2));
        return 0;
      }
      // A router without /status.json (gorouter) still gets a table.
      const status = await getJson(ep, "/status.json", {
        optional: true,
        query: host ? { host } : {},
      });
      console.log(
        routesTable(
          shown,
          isStatus(status) && status.role === "router"
            ? status as RouterStatus
            : undefined,
        ),
      );
      return 0;
    } finally {
      ep.client?.close();
    }
  },
}, {
  name: "status",
  summary:
    "Summarise a router, proxy (admin) or CA status endpoint as terminal tables",
  flags: {
    url: {
      type: "string",
      arg: "URL",
      description:
        `A router API, proxy admin or CA URL (default ${DEFAULT_ROUTER_URL})`,
    },
    ...COMMON_FLAGS,
  },
  async run(flags) {
    const ep = await endpoint(flags, "url", DEFAULT_ROUTER_URL);
    try {
      const s = await getJson(ep, "/status.json");
      if (!isStatus(s)) {
        throw new StatusReadError(
          `Cannot read "${ep.base}status.json": not a Sigil status (no role router, proxy or ca)`,
        );
      }
      console.log(flags.json ? JSON.stringify(s, null, 2) : statusText(s));
      return 0;
    } finally {
      ep.client?.close();
    }
  },
}];
