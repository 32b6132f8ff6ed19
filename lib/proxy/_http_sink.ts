/**
 * Route registration over a router's HTTP API: `POST <url>/v1/register` and
 * `/v1/unregister` with the `RegistryMessage` JSON body and a bearer token.
 * @module
 */
import { redactUrl } from "../routes/mod.ts";
import {
  describeError,
  describeFetchError,
  readTokenFile,
} from "../common/mod.ts";
import type { RegistryMessage, RouteSink } from "../routes/mod.ts";
import { RegistrationError } from "./errors.ts";

/** Options for {@linkcode HttpRouteSink}. */
export interface HttpRouteSinkOptions {
  /** Router base URL, `http://127.0.0.1:8081` or `https://router.internal:8443`. */
  url: string;
  /** File holding the bearer token; read on every send (so it can rotate). */
  tokenFile?: string;
  /** PEM bundle trusted for an https URL (system roots when absent). */
  caBundle?: string;
  /** Per-request timeout. @default {5000} */
  timeoutMs?: number;
  /** `fetch` replacement (tests). */
  fetch?: typeof fetch;
  /** Sees each token read from `tokenFile` (expiry watch; never log it). */
  onToken?: (token: string) => void;
}

/**
 * A {@linkcode RouteSink} that posts to a router's registration API.
 *
 * @example
 * ```ts ignore
 * import { HttpRouteSink } from "./_http_sink.ts";
 * const sink = new HttpRouteSink({ url: "http://127.0.0.1:8081", tokenFile: "/etc/sigil/router.token" });
 * await sink.register({ host: "10.0.0.5", tls_port: 61001, uris: ["hello.example.com"], server_cert_domain_san: "a7c" });
 * await sink.close();
 * ```
 */
export class HttpRouteSink implements RouteSink {
  readonly url: string;
  /** The URL as it may appear in messages (no credentials). */
  #shown: string;
  #o: HttpRouteSinkOptions;
  #client: Deno.HttpClient | undefined;
  #clientReady: Promise<void> | undefined;

  constructor(options: HttpRouteSinkOptions) {
    this.#o = options;
    this.url = options.url.replace(/\/+$/, "");
    this.#shown = redactUrl(this.url);
  }

  /** Posts one `router.register` message. */
  register(message: RegistryMessage): Promise<void> {
    return this.#post("register", message);
  }

  /** Posts one `router.unregister` message. */
  unregister(message: RegistryMessage): Promise<void> {
    return this.#post("unregister", message);
  }

  /** Releases the HTTP client. */
  close(): Promise<void> {
    this.#client?.close();
    this.#client = undefined;
    this.#clientReady = undefined;
    return Promise.resolve();
  }

  async #post(action: string, message: RegistryMessage): Promise<void> {
    const target = `${this.url}/v1/${action}`;
    const headers: Record<string, string> = {
      "content-type": "application/json",
    };
    if (this.#o.tokenFile) {
      let token: string;
      try {
        token = await readTokenFile(this.#o.tokenFile);
        this.#o.onToken?.(token);
      } catch (err) {
        throw new RegistrationError(
          `Cannot ${action} routes with "${this.#shown}": ${
            (err as Error).message
          }`,
          { cause: err },
        );
      }
      headers.authorization = `Bearer ${token}`;
    }
    await this.#ensureClient();
    const init: RequestInit & { client?: Deno.HttpClient } = {
      method: "POST",
      headers,
      body: JSON.stringify(message),
      signal: AbortSignal.timeout(this.#o.timeoutMs ?? 5000),
    };
    if (this.#client) init.client = this.#client;
    let res: Response;
    try {
      res = await (this.#o.fetch ?? fetch)(target, init);
    } catch (err) {
      throw new RegistrationError(
        `Cannot ${action} routes with "${this.#shown}": ${
          describeFetchError(err)
        }`,
        { cause: err },
      );
    }
    const body = await res.text().catch(() => "");
    if (!res.ok) {
      throw new RegistrationError(
        `Cannot ${action} routes with "${this.#shown}": HTTP ${res.status}${
          body ? ` ${body.slice(0, 200)}` : ""
        }`,
      );
    }
  }

  #ensureClient(): Promise<void> {
    if (!this.#o.caBundle || this.#o.fetch) return Promise.resolve();
    this.#clientReady ??= (async () => {
      let pem: string;
      try {
        pem = await Deno.readTextFile(this.#o.caBundle!);
      } catch (err) {
        this.#clientReady = undefined;
        throw new RegistrationError(
          `Cannot register routes with "${this.#shown}": cannot read ca_bundle "${this.#o.caBundle}": ${
            describeError(err)
          }`,
          { cause: err },
        );
      }
      this.#client = Deno.createHttpClient({ caCerts: [pem] });
    })();
    return this.#clientReady;
  }
}
