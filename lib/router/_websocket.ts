/**
 * WebSocket pass-through. `Deno.serve` cannot hand over the raw client socket,
 * so the router upgrades the backend connection first (same TLS identity
 * check as any request), then accepts the client's upgrade with
 * `Deno.upgradeWebSocket` and relays messages both ways: frames from the
 * backend are decoded, messages from the client are sent as masked frames.
 * The connection stays open until either side closes it.
 * @module
 */
import http from "node:http";
import https from "node:https";
import type { Duplex } from "node:stream";
import type { Endpoint, PickMiss, Pool } from "./_pool.ts";
import type { ProxyContext } from "./_proxy.ts";
import { concat, encodeFrame, FrameParser } from "./_ws_frames.ts";
import {
  classifyFailure,
  failureReason,
  failureStatus,
  isPrunable,
} from "./_fails.ts";

interface ExchangeLike {
  method: string;
  path: string;
  headers: Record<string, string>;
  ep: Endpoint | undefined;
  failed: number;
  bytesIn: number;
  bytesOut: number;
}

/** Helpers the data path lends to the WebSocket relay. */
export interface WebSocketHelpers<X extends ExchangeLike> {
  ctx: ProxyContext;
  pick(): Endpoint | PickMiss;
  finish(x: X, status: number): void;
  errorResponse(
    x: X,
    status: number,
    routerError: string,
    body: string,
  ): Response;
  /** Open relays; the router closes them on shutdown. */
  relays: Set<{ close(): void }>;
}

/**
 * Proxies one WebSocket upgrade request.
 *
 * @returns The 101 response (relay running), or the backend's refusal, or an
 *   error response.
 */
export function proxyWebSocket<X extends ExchangeLike>(
  req: Request,
  x: X,
  pool: Pool,
  h: WebSocketHelpers<X>,
): Promise<Response> {
  const { ctx } = h;
  const picked = h.pick();
  if (typeof picked === "string") {
    return Promise.resolve(
      h.errorResponse(
        x,
        503,
        "no_endpoints",
        "503 Service Unavailable: no endpoints",
      ),
    );
  }
  const ep = picked;
  x.ep = ep;
  const headers = { ...x.headers };
  delete headers["sec-websocket-extensions"];
  headers["connection"] = "Upgrade";
  headers["upgrade"] = "websocket";
  headers["x-cf-applicationid"] = ep.app;
  headers["x-cf-instanceid"] = ep.instanceId;
  headers["x-cf-instanceindex"] = ep.index;
  const options = {
    host: ep.host,
    port: ep.port,
    method: "GET",
    path: x.path,
    headers,
    agent: false as const,
    timeout: ctx.settings.dialTimeoutMs + ctx.settings.handshakeTimeoutMs,
  };
  return new Promise<Response>((resolve) => {
    const creq = ep.tls
      ? https.request({ ...options, ...ctx.transports.tlsOptions(ep.san) })
      : http.request(options);
    creq.on("timeout", () => {
      const err = new Error("WebSocket upgrade timed out") as Error & {
        code: string;
      };
      err.code = "ERR_ROUTER_DIAL_TIMEOUT";
      creq.destroy(err);
    });
    creq.on("upgrade", (res, socket, head) => {
      socket.setTimeout(0);
      let upgraded;
      try {
        const protocol = res.headers["sec-websocket-protocol"];
        upgraded = Deno.upgradeWebSocket(req, {
          protocol: typeof protocol === "string" ? protocol : undefined,
          idleTimeout: 0,
        });
      } catch (err) {
        socket.destroy();
        ctx.stats.websocketFailures++;
        ctx.logger.warn("websocket-upgrade-failed", { error: err });
        resolve(
          h.errorResponse(x, 400, "", "400 Bad Request: invalid upgrade"),
        );
        return;
      }
      ctx.stats.websocketUpgrades++;
      ep.inflight++;
      const ws = upgraded.socket;
      const handle = {
        close: () => {
          closeClient(ws, 1001, "router shutting down");
          socket.destroy();
        },
      };
      h.relays.add(handle);
      relay(ws, socket, head, x, () => {
        h.relays.delete(handle);
        ep.inflight--;
        h.finish(x, 101);
      });
      resolve(upgraded.response);
    });
    creq.on("response", (res) => {
      // The backend refused the upgrade: pass its answer on.
      const chunks: Uint8Array[] = [];
      res.on("data", (c: Uint8Array) => chunks.push(c));
      res.on("end", () => {
        const status = res.statusCode ?? 502;
        h.finish(x, status);
        const out: [string, string][] = [];
        for (let i = 0; i < res.rawHeaders.length; i += 2) {
          const n = res.rawHeaders[i]!.toLowerCase();
          if (n === "connection" || n === "transfer-encoding") continue;
          out.push([res.rawHeaders[i]!, res.rawHeaders[i + 1]!]);
        }
        const body = status === 204 || status === 304 ? null : concat(chunks);
        resolve(new Response(body, { status, headers: out }));
      });
    });
    creq.on("error", (err) => {
      const kind = classifyFailure(err, "dial");
      x.failed++;
      ctx.stats.websocketFailures++;
      if (kind === "identity") ctx.stats.backendInvalidId++;
      const prune = ep.tls && isPrunable(kind);
      if (prune && ctx.registry.prune(pool, ep)) {
        ctx.stats.routesPruned.inc({ reason: kind });
      }
      ctx.logger.warn("backend-failed", {
        backend: ep.key,
        instance: ep.instanceId,
        route: pool.uri,
        kind,
        code: failureReason(err, kind),
        websocket: true,
        pruned: prune,
      });
      const status = failureStatus(kind);
      resolve(
        h.errorResponse(
          x,
          status,
          `endpoint_failure (${failureReason(err, kind)})`,
          `${status} endpoint failure`,
        ),
      );
    });
    creq.end();
  });
}

/** Relays messages between the client's WebSocket and the backend socket. */
function relay(
  ws: WebSocket,
  backend: Duplex,
  head: Uint8Array,
  x: ExchangeLike,
  done: () => void,
): void {
  ws.binaryType = "arraybuffer";
  let finished = false;
  const pending: Array<string | Uint8Array> = [];
  const finish = () => {
    if (finished) return;
    finished = true;
    done();
  };
  const toClient = (m: string | Uint8Array) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(m);
    else if (ws.readyState === WebSocket.CONNECTING) pending.push(m);
  };
  ws.onopen = () => {
    for (const m of pending) ws.send(m);
    pending.length = 0;
  };
  ws.onmessage = (e: MessageEvent) => {
    const data = typeof e.data === "string"
      ? new TextEncoder().encode(e.data)
      : new Uint8Array(e.data as ArrayBuffer);
    x.bytesIn += data.length;
    backend.write(encodeFrame(typeof e.data === "string" ? 1 : 2, data));
  };
  ws.onclose = (e: CloseEvent) => {
    if (!backend.destroyed) {
      const code = e.code >= 1000 && e.code < 5000 && e.code !== 1005 &&
          e.code !== 1006
        ? e.code
        : 1000;
      backend.end(encodeFrame(8, new Uint8Array([code >> 8, code & 255])));
    }
    finish();
  };
  ws.onerror = () => {};
  const parser = new FrameParser((opcode, payload) => {
    if (opcode === 1) {
      x.bytesOut += payload.length;
      toClient(new TextDecoder().decode(payload));
    } else if (opcode === 2) {
      x.bytesOut += payload.length;
      toClient(payload);
    } else if (opcode === 9) {
      backend.write(encodeFrame(10, payload));
    } else if (opcode === 8) {
      const code = payload.length >= 2
        ? (payload[0]! << 8) | payload[1]!
        : 1000;
      const reason = new TextDecoder().decode(payload.subarray(2));
      closeClient(ws, code, reason);
      backend.end();
    }
  });
  backend.on("data", (chunk: Uint8Array) => parser.push(chunk));
  backend.on("error", () => closeClient(ws, 1011, "backend error"));
  backend.on("close", () => {
    closeClient(ws, 1001, "backend closed");
    finish();
  });
  if (head.length > 0) parser.push(head);
}

function closeClient(ws: WebSocket, code: number, reason: string): void {
  if (
    ws.readyState === WebSocket.CLOSING || ws.readyState === WebSocket.CLOSED
  ) {
    return;
  }
  const valid = code === 1000 || (code >= 3000 && code < 5000);
  try {
    ws.close(valid ? code : 1000, reason.slice(0, 120));
  } catch {
    // Not open yet or already closing.
  }
}
