/**
 * WebSocket pass-through. `Deno.serve` cannot hand over the raw client
 * socket, so the router first opens the backend WebSocket with the `ws`
 * package (same TLS identity check as any request: `servername` and
 * `checkServerIdentity` bound to the instance id, the backend CA, the client
 * certificate in mTLS mode), then accepts the client's upgrade with
 * `Deno.upgradeWebSocket` and relays messages both ways. Either side closing
 * closes the other; a backend that fails its identity check is pruned and
 * never sent anything.
 * @module
 */
import type http from "node:http";
import { Buffer } from "node:buffer";
import WebSocketImpl from "ws";
import { describeError } from "../common/mod.ts";
import type { Logger } from "../observe/mod.ts";
import type { Endpoint } from "./_pool.ts";
import type {
  Attempter,
  AttemptOutcome,
  Exchange,
  Recorder,
} from "./_record.ts";
import type { RouterStats } from "./_stats.ts";
import { phaseOf } from "./_transport.ts";
import type { TaggedSocket, Transports } from "./_transport.ts";

/** Largest refusal body (a backend's non-101 answer) passed to the client. */
const REFUSAL_BODY_MAX = 64 * 1024;

/** The part of the `ws` client the relay uses. */
interface BackendSocket {
  readonly readyState: number;
  readonly protocol: string;
  on(event: "open", fn: () => void): this;
  on(event: "message", fn: (data: Buffer, isBinary: boolean) => void): this;
  on(event: "close", fn: (code: number, reason: Buffer) => void): this;
  on(event: "error", fn: (err: Error) => void): this;
  on(
    event: "unexpected-response",
    fn: (req: http.ClientRequest, res: http.IncomingMessage) => void,
  ): this;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
}

const BackendWebSocket = WebSocketImpl as unknown as new (
  url: string,
  protocols: string[],
  options: Record<string, unknown>,
) => BackendSocket;

const WS_OPEN = 1;

/** Options of {@linkcode WebSocketAttempts}. */
export interface WebSocketAttemptOptions {
  transports: Transports;
  recorder: Recorder;
  stats: RouterStats;
  logger: Logger;
}

/** An open relay, closed at shutdown. */
interface Relay {
  close(): void;
}

/**
 * Runs WebSocket attempts (the request's `x.upgrade`) and keeps the relays
 * they open, so shutdown can close them.
 */
export class WebSocketAttempts implements Attempter {
  readonly #o: WebSocketAttemptOptions;
  readonly #relays = new Set<Relay>();

  /** @param options Transports, recorder, metrics and logger. */
  constructor(options: WebSocketAttemptOptions) {
    this.#o = options;
  }

  /**
   * Opens the backend WebSocket on `ep`, then accepts the client's upgrade:
   * resolves with the 101 response (relay running), the backend's refusal,
   * a 400 for an upgrade Deno refuses, or the failure.
   */
  attempt(x: Exchange, ep: Endpoint): Promise<AttemptOutcome> {
    return attempt(x.upgrade!, x, ep, this.#o, this.#relays);
  }

  /** Open relays. */
  get size(): number {
    return this.#relays.size;
  }

  /** Closes every open relay (shutdown). */
  closeAll(): void {
    for (const r of [...this.#relays]) r.close();
  }
}

/** Backend request headers: the forwarded ones minus the WebSocket handshake's. */
function backendHeaders(x: Exchange, ep: Endpoint): Record<string, string> {
  const out: Record<string, string> = {};
  const flat = x.headers;
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i]!;
    if (name.startsWith("sec-websocket-")) continue;
    out[name] = flat[i + 1]!;
  }
  out["x-cf-applicationid"] = ep.app;
  out["x-cf-instanceid"] = ep.instanceId || ep.key; // as the HTTP attempt
  out["x-cf-instanceindex"] = ep.index;
  return out;
}

function attempt(
  req: Request,
  x: Exchange,
  ep: Endpoint,
  o: WebSocketAttemptOptions,
  relays: Set<Relay>,
): Promise<AttemptOutcome> {
  const t = o.transports;
  const protocols = (req.headers.get("sec-websocket-protocol") ?? "")
    .split(",").map((p) => p.trim()).filter((p) => p !== "");
  const host = ep.host.includes(":") ? `[${ep.host}]` : ep.host;
  let socket: TaggedSocket | undefined;
  return new Promise<AttemptOutcome>((resolve) => {
    let settled = false;
    const settle = (out: AttemptOutcome) => {
      if (settled) return;
      settled = true;
      resolve(out);
    };
    let backend: BackendSocket;
    try {
      backend = new BackendWebSocket(
        `${ep.tls ? "wss" : "ws"}://${host}:${ep.port}${x.path}`,
        protocols,
        {
          ...(ep.tls ? t.tlsOptions(ep.san) : {}),
          headers: backendHeaders(x, ep),
          perMessageDeflate: false,
          followRedirects: false,
          handshakeTimeout: t.dialTimeoutMs + t.handshakeTimeoutMs,
          createConnection: (opts: Parameters<Transports["connect"]>[0]) =>
            socket = t.connect(opts, ep.tls),
        },
      );
    } catch (err) {
      settle({ err, phase: "dial" });
      return;
    }
    backend.on("error", (err) => {
      if (!settled) {
        settle({ err, phase: phaseOf(socket) });
        backend.terminate();
      }
    });
    backend.on("unexpected-response", (creq, res) => {
      // The backend refused the upgrade: pass its answer on (at most
      // REFUSAL_BODY_MAX bytes of it).
      const chunks: Uint8Array[] = [];
      let size = 0;
      res.on("data", (c: Uint8Array) => {
        size += c.length;
        if (size <= REFUSAL_BODY_MAX) chunks.push(c);
        else {
          res.destroy();
          creq.destroy();
        }
      });
      // A reset mid-answer: fail the attempt rather than wait for "end".
      const broken = (err?: Error) => {
        if (settled) return;
        settle({
          err: err ?? new Error("backend closed during its refusal"),
          phase: "sent",
        });
        creq.destroy();
      };
      res.on("error", broken);
      res.on("close", () => broken());
      res.on("end", () => {
        const got = res.statusCode ?? 502;
        // fetch's Response only takes 200-599; anything else is a bad gateway.
        const status = got >= 200 && got <= 599 ? got : 502;
        const out: [string, string][] = [];
        const raw = res.rawHeaders;
        for (let i = 0; i < raw.length; i += 2) {
          const n = raw[i]!.toLowerCase();
          if (n === "connection" || n === "transfer-encoding") continue;
          out.push([raw[i]!, raw[i + 1]!]);
        }
        out.push(["x-vcap-request-id", x.requestId]);
        const body = status === 204 || status === 304
          ? null
          : Buffer.concat(chunks);
        x.bytesOut += body?.length ?? 0;
        o.recorder.finish(x, status);
        settle(new Response(body, { status, headers: out }));
        creq.destroy();
      });
    });
    backend.on("open", () => {
      let upgraded: { socket: WebSocket; response: Response };
      try {
        upgraded = Deno.upgradeWebSocket(req, {
          protocol: backend.protocol || undefined,
          idleTimeout: 0,
        });
      } catch (err) {
        backend.terminate();
        o.stats.websocketFailures++;
        o.logger.warn("websocket-upgrade-failed", {
          error: describeError(err),
        });
        settle(
          o.recorder.errorResponse(
            x,
            400,
            "",
            "400 Bad Request: invalid upgrade",
          ),
        );
        return;
      }
      o.stats.websocketUpgrades++;
      relay(upgraded.socket, backend, x, ep, { recorder: o.recorder, relays });
      settle(upgraded.response);
    });
  });
}

/** Relays messages between the client's WebSocket and the backend's. */
function relay(
  ws: WebSocket,
  backend: BackendSocket,
  x: Exchange,
  ep: Endpoint,
  h: { recorder: Recorder; relays: Set<Relay> },
): void {
  ws.binaryType = "arraybuffer";
  ep.inflight++;
  ep.requests++;
  let finished = false;
  const handle = {
    close: () => {
      closeClient(ws, 1001, "router shutting down");
      backend.terminate();
    },
  };
  h.relays.add(handle);
  const finish = () => {
    if (finished) return;
    finished = true;
    h.relays.delete(handle);
    ep.inflight--;
    h.recorder.finish(x, 101);
  };
  const pending: Array<string | Uint8Array> = [];
  ws.onopen = () => {
    for (const m of pending) ws.send(m);
    pending.length = 0;
  };
  ws.onmessage = (e: MessageEvent) => {
    if (backend.readyState !== WS_OPEN) return;
    if (typeof e.data === "string") {
      x.bytesIn += Buffer.byteLength(e.data);
      backend.send(e.data);
    } else {
      const data = new Uint8Array(e.data as ArrayBuffer);
      x.bytesIn += data.length;
      backend.send(data);
    }
  };
  ws.onclose = (e: CloseEvent) => {
    if (backend.readyState === WS_OPEN) {
      const valid = (e.code >= 1000 && e.code <= 1014 && e.code !== 1004 &&
        e.code !== 1005 && e.code !== 1006) ||
        (e.code >= 3000 && e.code < 5000);
      backend.close(valid ? e.code : 1000, e.reason);
    } else backend.terminate();
    finish();
  };
  ws.onerror = () => {};
  backend.on("message", (data, isBinary) => {
    x.bytesOut += data.length;
    const m = isBinary ? data : data.toString("utf8");
    if (ws.readyState === WebSocket.OPEN) ws.send(m);
    else if (ws.readyState === WebSocket.CONNECTING) pending.push(m);
  });
  backend.on("close", (code, reason) => {
    closeClient(ws, code, reason.toString("utf8"));
    finish();
  });
  backend.on("error", () => closeClient(ws, 1011, "backend error"));
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
