/**
 * One attempt to forward a request to one endpoint with `node:http(s)` over
 * the endpoint's keep-alive agent, and the conversion of the backend's
 * response into the client's `Response` (streamed, or read whole when small).
 * @module
 */
import http from "node:http";
import type { Socket } from "node:net";
import type { Endpoint } from "./_pool.ts";
import type {
  Attempter,
  AttemptFailure,
  AttemptOutcome,
  Exchange,
  Recorder,
} from "./_record.ts";
import type { Transports } from "./_transport.ts";
import { codedError, phaseOf } from "./_transport.ts";
import { HOP_RESPONSE } from "./_headers.ts";
import { stickyCookie } from "./_sticky.ts";

/** Responses up to this size (with a Content-Length) are sent as bytes. */
const SMALL_BODY = 64 * 1024;

/** Options of {@linkcode HttpAttempts}. */
export interface HttpAttemptOptions {
  transports: Transports;
  recorder: Recorder;
  /** Cookie names that make a response sticky (`__VCAP_ID__`). */
  stickyNames: string[];
  /** `secure_cookies`: `__VCAP_ID__` is always Secure. */
  secureCookies?: boolean;
  /** `sticky_sessions_for_auth_negotiate`. */
  stickyAuthNegotiate?: boolean;
}

/**
 * Runs HTTP attempts and keeps the ones in flight, so the request timeout
 * can abort them ({@linkcode HttpAttempts.sweep}).
 */
export class HttpAttempts implements Attempter {
  readonly transports: Transports;
  readonly recorder: Recorder;
  readonly stickyNames: string[];
  readonly secureCookies: boolean;
  readonly stickyAuthNegotiate: boolean;
  /** Attempts waiting on or streaming from a backend. */
  readonly live = new Set<Attempt>();

  /** @param options Transports, recorder and sticky cookie names. */
  constructor(options: HttpAttemptOptions) {
    this.transports = options.transports;
    this.recorder = options.recorder;
    this.stickyNames = options.stickyNames;
    this.secureCookies = options.secureCookies ?? false;
    this.stickyAuthNegotiate = options.stickyAuthNegotiate ?? false;
  }

  /**
   * Forwards the request to `ep`: resolves with the client's Response once
   * the backend's response head arrived (or, for small bodies, the whole
   * response), or with the failure when no response came back.
   */
  attempt(x: Exchange, ep: Endpoint): Promise<AttemptOutcome> {
    return new Promise((resolve) => new Attempt(this, x, ep, resolve).run());
  }

  /** Aborts attempts of requests that arrived more than `timeoutMs` before `now`. */
  sweep(now: number, timeoutMs: number): void {
    for (const a of this.live) {
      if (now - a.x.startMs > timeoutMs) {
        this.live.delete(a);
        a.abort(codedError("ERR_ROUTER_REQUEST_TIMEOUT", "Request timed out"));
      }
    }
  }

  /** Attempts in flight. */
  get size(): number {
    return this.live.size;
  }
}

/** Property of a ClientRequest / IncomingMessage naming its attempt. */
const ATTEMPT: unique symbol = Symbol("sigil.attempt");
type Tagged = { [ATTEMPT]: Attempt };

/*
 * Listeners shared by every attempt (no closures per request): the emitter
 * carries its attempt in the ATTEMPT property.
 */
function onCreqResponse(this: Tagged, res: http.IncomingMessage): void {
  const a = this[ATTEMPT];
  try {
    a.onResponse(res);
  } catch (err) {
    // Never let a backend's odd answer escape a socket callback.
    res.destroy();
    a.onError(err as Error);
  }
}
function onErrorEvent(this: Tagged, err: Error): void {
  this[ATTEMPT].onError(err);
}
function onResEnd(this: Tagged): void {
  const a = this[ATTEMPT];
  try {
    a.onEnd();
  } catch (err) {
    a.onError(err as Error);
  }
}
function onResSmallData(this: Tagged, chunk: Uint8Array): void {
  this[ATTEMPT].onSmallData(chunk);
}
function onResStreamData(this: Tagged, chunk: Uint8Array): void {
  this[ATTEMPT].onStreamData(chunk);
}

/**
 * One attempt against one endpoint of an exchange. Resolves its outcome once:
 * the client's Response, or the failure (no byte of the client's response
 * was produced). The endpoint counts the attempt as in flight until the
 * response ends or the attempt fails.
 */
class Attempt {
  readonly group: HttpAttempts;
  readonly x: Exchange;
  readonly ep: Endpoint;
  creq: http.ClientRequest | undefined;
  res: http.IncomingMessage | undefined;
  readonly resolve: (o: AttemptOutcome) => void;
  status = 0;
  headers: [string, string][] | undefined;
  settled = false;
  // Small-body mode.
  small = false;
  first: Uint8Array | undefined;
  more: Uint8Array[] | undefined;
  // Stream mode.
  controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  done = false;

  constructor(
    group: HttpAttempts,
    x: Exchange,
    ep: Endpoint,
    resolve: (o: AttemptOutcome) => void,
  ) {
    this.group = group;
    this.x = x;
    this.ep = ep;
    this.resolve = resolve;
  }

  /** Sends the request (an earlier attempt of the exchange used `x.headers`). */
  run(): void {
    const x = this.x;
    const ep = this.ep;
    ep.inflight++;
    ep.requests++;
    const headers = (x.attempt ?? 0) > 0 ? x.headers.slice(0, -6) : x.headers;
    headers.push(
      "x-cf-applicationid",
      ep.app,
      "x-cf-instanceid",
      // gorouter's setRequestXCfInstanceId: the address when no id.
      ep.instanceId || ep.key,
      "x-cf-instanceindex",
      ep.index,
    );
    let creq: http.ClientRequest;
    try {
      // ClientRequest directly: https.request() only copies the options
      // once more to reach it.
      creq = new http.ClientRequest({
        protocol: ep.tls ? "https:" : "http:",
        host: ep.host,
        port: ep.port,
        method: x.method,
        path: x.path,
        headers,
        setHost: false,
        agent: this.group.transports.agentFor(ep),
      });
    } catch (err) {
      this.fail({ err, phase: "dial" });
      return;
    }
    this.creq = creq;
    this.group.live.add(this);
    (creq as unknown as Tagged)[ATTEMPT] = this;
    creq.on("response", onCreqResponse);
    creq.on("error", onErrorEvent);
    const body = x.body ?? null;
    if (body === null) creq.end();
    else {
      // Read the client's body only once the backend proved its identity,
      // so a failed dial or handshake leaves it intact for the next attempt.
      creq.once("socket", (socket: Socket) => {
        if (phaseOf(socket) === "sent") pumpBody(body, creq, x);
        else {
          socket.once(
            ep.tls ? "secureConnect" : "connect",
            () => pumpBody(body, creq, x),
          );
        }
      });
    }
  }

  onResponse(res: http.IncomingMessage): void {
    this.res = res;
    const x = this.x;
    const ep = this.ep;
    const raw = res.rawHeaders;
    const status = res.statusCode ?? 502;
    if (status < 200 || status > 599) {
      // fetch's Response cannot carry it (and 1xx never reaches here).
      throw new RangeError(`backend answered with status ${status}`);
    }
    const group = this.group;
    const headers: [string, string][] = [];
    let setCookies: string[] | undefined;
    let wwwAuth: string | undefined;
    let length = -1;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      const lower = name.toLowerCase();
      if (HOP_RESPONSE.has(lower)) continue;
      const value = raw[i + 1]!;
      if (lower === "content-length") {
        length = Number(value);
        continue;
      }
      if (lower === "set-cookie") (setCookies ??= []).push(value);
      else if (lower === "www-authenticate") wwwAuth ??= value;
      headers.push([name, value]);
    }
    headers.push(["x-vcap-request-id", x.requestId]);
    const negotiate = group.stickyAuthNegotiate && wwwAuth !== undefined &&
      wwwAuth.slice(0, 9).toLowerCase() === "negotiate";
    // gorouter's setupStickySession; skipped cheaply when nothing applies.
    if (
      ep.instanceId !== "" &&
      (setCookies !== undefined || negotiate ||
        (x.sticky !== undefined && x.sticky !== ep.instanceId))
    ) {
      const vcap = stickyCookie({
        setCookies,
        names: group.stickyNames,
        instanceId: ep.instanceId,
        requested: x.sticky,
        path: x.pool!.path,
        secure: group.secureCookies,
        negotiate,
      });
      if (vcap !== undefined) headers.push(["set-cookie", vcap]);
    }
    this.status = status;
    this.headers = headers;
    (res as unknown as Tagged)[ATTEMPT] = this;
    res.on("error", onErrorEvent);
    res.on("end", onResEnd);
    if (x.method === "HEAD" || status === 204 || status === 304) {
      if (length >= 0 && x.method === "HEAD") {
        headers.push(["content-length", String(length)]);
      }
      this.settle(new Response(null, { status, headers }));
      res.resume();
      return;
    }
    if (length >= 0 && length <= SMALL_BODY) {
      // Read the small body whole and send bytes: cheaper than a stream,
      // and a backend failing mid-body still gets a clean 502.
      this.small = true;
      res.on("data", onResSmallData);
      return;
    }
    if (length >= 0) headers.push(["content-length", String(length)]);
    const stream = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.controller = controller;
      },
      pull: () => {
        res.resume();
      },
      cancel: () => {
        // The client went away: this connection cannot be reused.
        this.creq?.destroy();
        this.end();
      },
    }, { highWaterMark: 4 });
    res.on("data", onResStreamData);
    this.settle(new Response(stream, { status, headers }));
  }

  onSmallData(chunk: Uint8Array): void {
    this.x.bytesOut += chunk.length;
    // A plain Uint8Array view, not node's Buffer: Response copies the body
    // with the view's own constructor, and Buffer's is far slower.
    if (this.first === undefined) {
      this.first = new Uint8Array(
        chunk.buffer,
        chunk.byteOffset,
        chunk.byteLength,
      );
    } else (this.more ??= [this.first]).push(chunk);
  }

  onStreamData(chunk: Uint8Array): void {
    this.x.bytesOut += chunk.length;
    const c = this.controller;
    if (c === undefined || this.done) return;
    c.enqueue(chunk);
    if ((c.desiredSize ?? 1) <= 0) this.res!.pause();
  }

  onEnd(): void {
    if (this.done) return;
    if (this.small) {
      const body = this.more !== undefined
        ? concatBytes(this.more, this.x.bytesOut)
        : this.first ?? null;
      this.settle(
        new Response(body as Uint8Array<ArrayBuffer> | null, {
          status: this.status,
          headers: this.headers,
        }),
      );
    } else {
      try {
        this.controller?.close();
      } catch {
        // Cancelled by the client.
      }
    }
    this.end();
  }

  onError(err: Error): void {
    if (this.done) return;
    if (this.res === undefined) {
      this.done = true;
      this.group.live.delete(this);
      if (!this.settled) this.fail({ err, phase: phaseOf(this.creq?.socket) });
      return;
    }
    if (this.small || !this.settled) {
      // The body broke off before the client got anything: the exchange
      // answers 502 (and records the request).
      this.end(false);
      this.fail({ err, phase: "response" });
      return;
    }
    try {
      this.controller?.error(err);
    } catch {
      // Already closed.
    }
    this.end();
  }

  /** Aborts the exchange (request timeout, shutdown). */
  abort(err: Error): void {
    this.creq?.destroy(err);
  }

  settle(r: Response): void {
    if (this.settled) return;
    this.settled = true;
    this.resolve(r);
  }

  /** Reports the failure; the endpoint no longer counts the attempt. */
  fail(f: AttemptFailure): void {
    if (this.settled) return;
    this.settled = true;
    if (this.res === undefined) this.ep.inflight--;
    this.resolve(f);
  }

  /** The response ended (or was cut): record it unless `record` is false. */
  end(record = true): void {
    if (this.done) return;
    this.done = true;
    this.group.live.delete(this);
    this.ep.inflight--;
    if (record && this.x.status === 0) {
      this.group.recorder.finish(this.x, this.status);
    }
  }
}

function concatBytes(chunks: Uint8Array[], n: number): Uint8Array {
  const out = new Uint8Array(n);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** Writes the client's request body to the backend, with backpressure. */
export async function pumpBody(
  body: ReadableStream<Uint8Array>,
  creq: http.ClientRequest,
  x: Exchange,
): Promise<void> {
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (value.length === 0) continue;
      x.bytesIn += value.length;
      if (!creq.write(value)) {
        await new Promise<void>((r) => {
          const go = () => {
            creq.off("drain", go);
            creq.off("close", go);
            r();
          };
          creq.on("drain", go);
          creq.on("close", go);
        });
      }
      if (creq.destroyed) {
        await reader.cancel().catch(() => {});
        return;
      }
    }
    creq.end();
  } catch (err) {
    creq.destroy(err instanceof Error ? err : new Error(String(err)));
  } finally {
    reader.releaseLock();
  }
}
