/**
 * Backend connections: one keep-alive `node:https.Agent` per TLS endpoint
 * (`node:http.Agent` for plain ones). The agent's `servername` and
 * `checkServerIdentity` are bound to the endpoint's `server_cert_domain_san`
 * (the instance id), it trusts only the backend CA and, in mTLS mode, presents
 * the router's client certificate. `fetch` cannot verify a SAN other than the
 * dialed address and `Deno.startTls` cannot present a client certificate,
 * hence `node:https` (see `deno-notes.md`, Q3).
 *
 * Every new socket is tagged with how far it got ({@linkcode Phase}) and gets
 * the dial and TLS handshake timeouts; the retry logic reads the tag to know
 * whether any request byte could have reached the backend.
 * @module
 */
import http from "node:http";
import https from "node:https";
import net from "node:net";
import tls from "node:tls";
import type { Clock, TimerId } from "../common/mod.ts";
import { systemClock } from "../common/mod.ts";
import type { Endpoint } from "./_pool.ts";

/** How far a backend connection got when a request on it failed. */
export type Phase = "dial" | "handshake" | "sent";

/** Socket property holding its {@linkcode Phase}. */
export const PHASE: unique symbol = Symbol("sigil.phase");

/** A backend socket tagged with its phase. */
export type TaggedSocket = net.Socket & { [PHASE]?: Phase };

/** PEM material for backend TLS. */
export interface BackendTls {
  /** Trusted roots for backend certificates. Absent: the system store. */
  ca?: string;
  /** Client certificate chain (mTLS). */
  cert?: string;
  /** Client private key (mTLS). */
  key?: string;
}

/** Options for opening one backend connection. */
export type DialOptions = tls.ConnectionOptions & net.TcpNetConnectOpts;

/**
 * Opens a backend connection: TLS when `secure` (the options then carry the
 * identity check), plain TCP otherwise.
 */
export type BackendDialer = (
  options: DialOptions,
  secure: boolean,
) => net.Socket;

/** The real dialer: `node:tls` / `node:net`. */
export const dialBackend: BackendDialer = (options, secure) =>
  secure ? tls.connect(options) : net.connect(options);

/** Options of {@linkcode Transports}. */
export interface TransportOptions {
  tls: BackendTls;
  /** Opens backend connections. @default {dialBackend} */
  dial?: BackendDialer;
  /** Times the dial and handshake timeouts and idle sweeps. @default {systemClock} */
  clock?: Clock;
  /** Concurrent connections per endpoint (`max_conns`). @default {500} */
  maxConns?: number;
  /** Idle keep-alive connections kept per endpoint; 0 disables keep-alive. @default {100} */
  maxIdle?: number;
  /** Idle connection timeout in ms. @default {90000} */
  idleTimeoutMs?: number;
  /** TCP connect timeout in ms. @default {5000} */
  dialTimeoutMs?: number;
  /** TLS handshake timeout in ms. @default {10000} */
  handshakeTimeoutMs?: number;
  /**
   * Longest life of a backend connection in ms (0: no limit). A TLS
   * connection also ends when the certificate that authenticated it expires.
   * @default {0}
   */
  maxConnAgeMs?: number;
  /** True when the CA's CRL lists this backend serial (backends.crl). */
  isRevoked?: (serial: string) => boolean;
}

/** An error carrying a stable `code`, for the failure classifiers. */
export function codedError(code: string, message: string): Error {
  const err = new Error(message) as Error & { code: string };
  err.code = code;
  return err;
}

/**
 * The identity check, the one place a backend certificate is judged after its
 * chain verified: it must name `san` as a DNS SAN, whatever address was
 * dialed. Node falls back to the subject CN when a certificate has no DNS SAN
 * (even beside an IP SAN); Go's crypto/tls, and so gorouter, never does, and
 * neither do we: such a certificate fails like a mismatch (prune + retry).
 */
export function identityChecker(
  san: string,
): (host: string, cert: tls.PeerCertificate) => Error | undefined {
  // An endpoint registered without server_cert_domain_san is checked against
  // the address it was dialed at, as Go does when ServerName is "": an IP
  // must be an IP SAN (never the CN).
  if (net.isIP(san) !== 0) {
    return (_host, cert) => tls.checkServerIdentity(san, cert);
  }
  return (_host, cert) => {
    const names = (cert.subjectaltname ?? "").split(", ");
    if (!names.some((n) => n.startsWith("DNS:"))) {
      const err = new Error(
        `Backend certificate does not name "${san}": it has no DNS SAN (a subject CN is not an identity)`,
      ) as Error & { code: string };
      err.code = "ERR_TLS_CERT_ALTNAME_INVALID";
      return err;
    }
    return tls.checkServerIdentity(san, cert);
  };
}

/** The phase a request on this socket failed in (no socket: dial). */
export function phaseOf(socket: net.Socket | null | undefined): Phase {
  if (socket === null || socket === undefined) return "dial";
  return (socket as TaggedSocket)[PHASE] ?? "sent";
}

/** How connections are opened and timed. */
interface Dialing {
  dial: BackendDialer;
  clock: Clock;
  dialMs: number;
  handshakeMs: number;
  /** `max_conn_age` in ms; 0: none. */
  maxAgeMs: number;
}

/**
 * Socket property: when it may carry no further request (ms), the earlier of
 * the backend certificate's notAfter and `max_conn_age` after it connected.
 * Route integrity is a handshake property: a keep-alive connection must not
 * outlive the certificate that proved the backend's identity (with 1-minute
 * certificates an idle timeout of 90 s would).
 */
const RETIRE_AT: unique symbol = Symbol("sigil.retireAt");
type AgedSocket = net.Socket & { [RETIRE_AT]?: number };

/** True when `socket` must carry no further request at `now`. */
function pastRetirement(socket: net.Socket, now: number): boolean {
  const at = (socket as AgedSocket)[RETIRE_AT];
  return at !== undefined && now >= at;
}

/**
 * Opens a backend socket (TLS when `secure`) with the dial and handshake
 * timeouts, tagging it with its phase as it progresses.
 */
function connectBackend(
  options: DialOptions,
  secure: boolean,
  d: Dialing,
): TaggedSocket {
  const { clock, dialMs, handshakeMs } = d;
  const socket: TaggedSocket = d.dial(options, secure);
  socket[PHASE] = "dial";
  socket.setNoDelay(true);
  let timer: TimerId | undefined = clock.setTimeout(() => {
    timer = undefined;
    socket.destroy(
      socket[PHASE] === "dial"
        ? codedError("ERR_ROUTER_DIAL_TIMEOUT", "Dial timed out")
        : codedError("ERR_ROUTER_HANDSHAKE_TIMEOUT", "TLS handshake timed out"),
    );
  }, dialMs);
  const stop = () => {
    if (timer !== undefined) clock.clearTimeout(timer);
    timer = undefined;
  };
  socket.once("connect", () => {
    if (d.maxAgeMs > 0) {
      (socket as AgedSocket)[RETIRE_AT] = clock.now() + d.maxAgeMs;
    }
    if (!secure) {
      stop();
      socket[PHASE] = "sent";
      return;
    }
    socket[PHASE] = "handshake";
    stop();
    timer = clock.setTimeout(() => {
      timer = undefined;
      socket.destroy(
        codedError("ERR_ROUTER_HANDSHAKE_TIMEOUT", "TLS handshake timed out"),
      );
    }, handshakeMs);
  });
  if (secure) {
    // Emitted only once the chain and the identity check passed.
    socket.once("secureConnect", () => {
      stop();
      socket[PHASE] = "sent";
      const notAfter = Date.parse(
        (socket as tls.TLSSocket).getPeerCertificate?.()?.valid_to ?? "",
      );
      const s = socket as AgedSocket;
      if (
        !Number.isNaN(notAfter) && !(notAfter >= (s[RETIRE_AT] ?? Infinity))
      ) {
        s[RETIRE_AT] = notAfter;
      }
    });
  }
  socket.once("close", stop);
  return socket;
}

/** The pool key: each agent serves one endpoint. */
const NAME = "ep";

/**
 * Socket property: when it last went idle, as the time of the last idle
 * sweep (a coarse clock, so going idle costs no clock read per request).
 */
const IDLE_SINCE: unique symbol = Symbol("sigil.idleSince");
type IdleSocket = net.Socket & { [IDLE_SINCE]?: number };

/** A clock advanced by each idle sweep. */
interface CoarseClock {
  now: number;
}

interface AgentSettings {
  clock: CoarseClock;
  /** Options for `tls.connect`; undefined for plain endpoints. */
  tls: tls.ConnectionOptions | undefined;
  dialing: Dialing;
}

/*
 * The agents are plain keep-alive agents. Deliberately small agent options:
 * `addRequest` copies them into a new object on every request, so the TLS
 * material (servername, checkServerIdentity, ca, cert, key) is applied in
 * `createConnection`, once per connection. `getName` is constant because
 * each agent serves one endpoint (the default builds a key from the PEM
 * material on every request). Idle sockets are closed by
 * `Transports.sweepIdle` rather than the agent's `timeout` option, which
 * re-arms a socket timer on every request.
 */
function agentOptions(maxConns: number, maxIdle: number): http.AgentOptions {
  return {
    keepAlive: maxIdle > 0,
    maxSockets: maxConns,
    maxFreeSockets: Math.max(1, maxIdle),
    // Set, so addRequest never derives a servername from the Host header.
    servername: "",
  } as http.AgentOptions;
}

/** The agent internals the reuse fast path touches (documented `Agent` fields). */
interface AgentInternals {
  freeSockets: Record<string, net.Socket[] | undefined>;
  sockets: Record<string, net.Socket[] | undefined>;
  reuseSocket(socket: net.Socket, req: http.ClientRequest): void;
}

/**
 * Hands a request an idle keep-alive socket, as node's `addRequest` would,
 * without its per-request copy of the request and agent options (about 2 µs
 * per request under Deno). Returns false when there is no usable idle socket:
 * the caller then runs node's own `addRequest` (new connection or queueing).
 */
function reuseIdle(
  agent: AgentInternals,
  req: http.ClientRequest,
  clock: Clock,
): boolean {
  const free = agent.freeSockets[NAME];
  if (free === undefined) return false;
  let socket = free.pop();
  while (socket !== undefined && socket.destroyed) socket = free.pop();
  if (free.length === 0) delete agent.freeSockets[NAME];
  if (socket === undefined) return false;
  if (
    !socket.writable ||
    ((socket as AgedSocket)[RETIRE_AT] !== undefined &&
      pastRetirement(socket, clock.now()))
  ) {
    // Node's addRequest then dials (and verifies) a new connection.
    socket.destroy();
    return false;
  }
  agent.reuseSocket(socket, req);
  (req as unknown as { onSocket(s: net.Socket): void }).onSocket(socket);
  (agent.sockets[NAME] ??= []).push(socket);
  return true;
}

/** What the per-endpoint agents add to node's agents. */
interface EndpointAgentExtras {
  readonly settings: AgentSettings;
  retired: boolean;
}

// deno-lint-ignore no-explicit-any
type AgentClass = new (...args: any[]) => http.Agent;

/**
 * Adds the endpoint behaviour (idle-socket reuse, one pool name, retirement,
 * the verified dial) to node's `http.Agent` or `https.Agent`: the two agent
 * classes differ only in their base.
 */
function endpointAgent<B extends AgentClass>(Base: B, tlsAlways: boolean) {
  return class extends Base implements EndpointAgentExtras {
    settings!: AgentSettings;
    retired = false;
    addRequest(req: http.ClientRequest, options: unknown): void {
      const internals = this as unknown as AgentInternals;
      if (reuseIdle(internals, req, this.settings.dialing.clock)) return;
      // Node's own addRequest would hand out an idle socket too: drop the
      // ones past their retirement first.
      this.#dropRetired(internals);
      (http.Agent.prototype as unknown as {
        addRequest(req: http.ClientRequest, options: unknown): void;
      }).addRequest.call(this, req, options);
    }
    #dropRetired(internals: AgentInternals): void {
      const free = internals.freeSockets[NAME];
      if (free === undefined) return;
      const now = this.settings.dialing.clock.now();
      for (const sock of [...free]) {
        if (pastRetirement(sock, now)) sock.destroy();
      }
    }
    override getName(): string {
      return NAME;
    }
    override keepSocketAlive(socket: net.Socket): boolean {
      if (this.retired) return false;
      if (
        (socket as AgedSocket)[RETIRE_AT] !== undefined &&
        pastRetirement(socket, this.settings.dialing.clock.now())
      ) return false;
      (socket as IdleSocket)[IDLE_SINCE] = this.settings.clock.now;
      // node's implementation returns a boolean; its typings say void.
      return super.keepSocketAlive(socket) as unknown as boolean;
    }
    override createConnection(options: net.TcpNetConnectOpts): net.Socket {
      const s = this.settings;
      return connectBackend(
        { host: options.host, port: options.port, ...s.tls },
        tlsAlways || s.tls !== undefined,
        s.dialing,
      );
    }
  };
}

const EndpointHttpAgent = endpointAgent(http.Agent, false);
const EndpointHttpsAgent = endpointAgent(https.Agent, true);

function newAgent(
  tls: boolean,
  options: https.AgentOptions,
  settings: AgentSettings,
): EndpointAgent {
  const agent = tls
    ? new EndpointHttpsAgent(options)
    : new EndpointHttpAgent(options);
  agent.settings = settings;
  return agent;
}

/** The per-endpoint agent. */
export type EndpointAgent = http.Agent & EndpointAgentExtras;

/** Creates, hands out and retires the per-endpoint agents. */
export class Transports {
  #tls: BackendTls;
  #maxConns: number;
  #maxIdle: number;
  #idleMs: number;
  #dialing: Dialing;
  #agents = new Set<EndpointAgent>();
  #coarse: CoarseClock;
  /** Retired agents that may still carry a request. */
  #retired = new Set<EndpointAgent>();
  #closed = false;
  #isRevoked: ((serial: string) => boolean) | undefined;

  constructor(options: TransportOptions) {
    this.#tls = options.tls;
    this.#isRevoked = options.isRevoked;
    this.#maxConns = options.maxConns ?? 500;
    this.#maxIdle = options.maxIdle ?? 100;
    this.#idleMs = options.idleTimeoutMs ?? 90_000;
    const clock = options.clock ?? systemClock;
    this.#dialing = {
      dial: options.dial ?? dialBackend,
      clock,
      dialMs: options.dialTimeoutMs ?? 5_000,
      handshakeMs: options.handshakeTimeoutMs ?? 10_000,
      maxAgeMs: options.maxConnAgeMs ?? 0,
    };
    this.#coarse = { now: clock.now() };
  }

  /** TCP connect timeout in ms. */
  get dialTimeoutMs(): number {
    return this.#dialing.dialMs;
  }

  /** TLS handshake timeout in ms. */
  get handshakeTimeoutMs(): number {
    return this.#dialing.handshakeMs;
  }

  /**
   * Opens a backend socket with the dial and handshake timeouts, tagged with
   * its {@linkcode Phase}. The agents, the WebSocket client (its
   * `createConnection` option) and the prune probe all dial through here.
   */
  connect(options: DialOptions, secure: boolean): TaggedSocket {
    return connectBackend(options, secure, this.#dialing);
  }

  /**
   * Why a backend's chain was refused, when Deno's node:tls says only
   * `UNABLE_TO_VERIFY_LEAF_SIGNATURE` (it reports an expired or not yet valid
   * leaf that way). One more handshake, without chain verification and
   * without sending a byte of the request, reads the leaf's validity against
   * the router's clock: `CERT_HAS_EXPIRED` / `CERT_NOT_YET_VALID` with the
   * date, else the original error. The endpoint is refused either way.
   */
  explainUntrusted(ep: Endpoint, err: unknown): Promise<unknown> {
    if (
      (err as { code?: unknown })?.code !== "UNABLE_TO_VERIFY_LEAF_SIGNATURE"
    ) {
      return Promise.resolve(err);
    }
    return new Promise((resolve) => {
      const socket = this.connect({
        host: ep.host,
        port: ep.port,
        ...this.tlsOptions(ep.san),
        rejectUnauthorized: false,
        checkServerIdentity: () => undefined,
      }, true) as tls.TLSSocket;
      socket.once("error", () => resolve(err));
      socket.once("secureConnect", () => {
        const cert = socket.getPeerCertificate();
        socket.destroy();
        const now = this.#dialing.clock.now();
        const notAfter = Date.parse(cert?.valid_to ?? "");
        const notBefore = Date.parse(cert?.valid_from ?? "");
        const serial = cert?.serialNumber?.toLowerCase();
        if (notAfter < now) {
          resolve(codedError(
            "CERT_HAS_EXPIRED",
            `Backend certificate ${serial} expired at ${
              new Date(notAfter).toISOString()
            }`,
          ));
        } else if (notBefore > now) {
          resolve(codedError(
            "CERT_NOT_YET_VALID",
            `Backend certificate ${serial} is not valid before ${
              new Date(notBefore).toISOString()
            }`,
          ));
        } else resolve(err);
      });
    });
  }

  /** The endpoint's agent, created on first use. */
  agentFor(ep: Endpoint): EndpointAgent {
    const existing = ep.transport as EndpointAgent | undefined;
    if (existing !== undefined) return existing;
    const options = agentOptions(this.#maxConns, this.#maxIdle);
    const settings: AgentSettings = {
      clock: this.#coarse,
      tls: ep.tls ? this.tlsOptions(ep.san) : undefined,
      dialing: this.#dialing,
    };
    const agent = newAgent(ep.tls, options, settings);
    this.#agents.add(agent);
    ep.transport = agent;
    return agent;
  }

  /** TLS client options for a backend that must prove it is `san`. */
  tlsOptions(san: string): tls.ConnectionOptions {
    const t = this.#tls;
    const identity = identityChecker(san);
    const revoked = this.#isRevoked;
    return {
      // No SNI for an IP address (RFC 6066).
      servername: net.isIP(san) === 0 ? san : "",
      // Deno 2.9's node:tls ignores the `crl` option, so the CRL is read
      // here, where the handshake can still be failed (before any request
      // byte is sent): a revoked certificate is untrusted, whatever it names.
      checkServerIdentity: revoked === undefined
        ? identity
        : (host, cert) =>
          revoked(cert.serialNumber)
            ? codedError(
              "CERT_REVOKED",
              `Backend certificate ${cert.serialNumber.toLowerCase()} is revoked (listed in the CA's CRL)`,
            )
            : identity(host, cert),
      ca: t.ca,
      cert: t.cert,
      key: t.key,
      rejectUnauthorized: true,
      minVersion: "TLSv1.2",
    };
  }

  /** Replaces the TLS material (used by agents created from now on). */
  setTls(material: BackendTls): void {
    this.#tls = material;
  }

  /**
   * Retires the endpoint's agent: idle connections close now, busy ones
   * after their request. The next request creates a fresh agent.
   */
  release(ep: Endpoint): void {
    const agent = ep.transport as EndpointAgent | undefined;
    if (agent === undefined) return;
    ep.transport = undefined;
    this.#agents.delete(agent);
    agent.retired = true;
    for (const list of Object.values(agent.freeSockets)) {
      for (const s of list ?? []) s.destroy();
    }
    for (const old of this.#retired) {
      if (Object.keys(old.sockets).length === 0) this.#retired.delete(old);
    }
    if (Object.keys(agent.sockets).length > 0) this.#retired.add(agent);
  }

  /**
   * Closes keep-alive connections idle for longer than the idle timeout.
   * Idle times are stamped with the previous sweep's time, so a connection
   * closes between one and about two sweep intervals past the timeout.
   */
  sweepIdle(now: number): void {
    const limit = this.#coarse.now - this.#idleMs;
    this.#coarse.now = now;
    for (const agent of this.#agents) {
      for (const list of Object.values(agent.freeSockets)) {
        if (list === undefined) continue;
        for (const s of [...list]) {
          if (
            ((s as IdleSocket)[IDLE_SINCE] ?? now) < limit ||
            pastRetirement(s, now)
          ) s.destroy();
        }
      }
    }
  }

  /** How often {@linkcode Transports.sweepIdle} should run, in ms. */
  get sweepIntervalMs(): number {
    return Math.max(100, Math.min(this.#idleMs / 3, 30_000));
  }

  /** Number of live agents (for tests and metrics). */
  get size(): number {
    return this.#agents.size;
  }

  /** True once {@linkcode Transports.closeAll} ran (the router is stopping). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Destroys every agent and connection. */
  closeAll(): void {
    this.#closed = true;
    for (const agent of this.#agents) agent.destroy();
    for (const agent of this.#retired) agent.destroy();
    this.#agents.clear();
    this.#retired.clear();
  }
}
