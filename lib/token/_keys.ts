/**
 * Where a verifier's keys come from: the CA's JWKS URL (fetched and cached by
 * jose) or a local public key (CryptoKey, JWK, JWKS or PEM SPKI text).
 * @module
 */
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  importJWK,
  importSPKI,
} from "jose";
import type { JWTVerifyGetKey } from "jose";

/** A key, or a key lookup by `kid`, for `jwtVerify`. */
export type VerifyKey = JWTVerifyGetKey | CryptoKey;

/** How the remote key set is fetched. */
export interface RemoteKeysOptions {
  /** PEM bundle trusted when fetching over HTTPS (ignored with `fetch`). */
  caBundle?: string;
  /** Injected fetch. @default {globalThis.fetch} */
  fetch?: typeof fetch;
}

/**
 * A key set fetched from a URL, how to fetch it again now (`reload`, which
 * rejects with the fetch's own error), and how to release its HTTP client.
 * With several URLs (CA replicas serving the same keys) a fetch that fails
 * or answers 5xx moves on to the next, starting with the last that answered.
 */
export function remoteKeys(
  url: string | readonly string[],
  options: RemoteKeysOptions,
): { key: VerifyKey; reload(): Promise<void>; close(): void } {
  const urls = typeof url === "string" ? [url] : [...url];
  let client: Deno.HttpClient | undefined;
  let doFetch = options.fetch;
  if (!doFetch && options.caBundle) {
    const c = client = Deno.createHttpClient({ caCerts: [options.caBundle] });
    doFetch = (input, init) => fetch(input, { ...init, client: c });
  }
  const f = doFetch;
  let answered = 0;
  const failover = async (_u: string, init: RequestInit) => {
    const get = f ?? fetch;
    let lastError: unknown;
    for (let k = 0; k < urls.length; k++) {
      const i = (answered + k) % urls.length;
      const last = k === urls.length - 1;
      try {
        const res = await get(urls[i]!, init);
        if (res.status >= 500 && !last) {
          await res.body?.cancel();
          continue;
        }
        answered = i;
        return res;
      } catch (err) {
        if (last || init.signal?.aborted) throw err;
        lastError = err;
      }
    }
    throw lastError;
  };
  const key = createRemoteJWKSet(new URL(urls[0]!), {
    cooldownDuration: 30_000,
    cacheMaxAge: 600_000,
    [customFetch]: urls.length > 1
      ? failover
      : f
      ? (u: string, init: RequestInit) => f(u, init)
      : undefined,
  });
  return { key, reload: () => key.reload(), close: () => client?.close() };
}

/**
 * Imports a P-256 public key given as a CryptoKey, JWK JSON, JWKS JSON or PEM
 * SPKI text.
 *
 * @throws {SyntaxError | TypeError} What jose or JSON.parse throw for bad text.
 */
export async function localKey(key: string | CryptoKey): Promise<VerifyKey> {
  if (typeof key !== "string") return key;
  const trimmed = key.trim();
  if (trimmed.startsWith("{")) {
    const json = JSON.parse(trimmed);
    if (Array.isArray(json.keys)) return createLocalJWKSet(json);
    return await importJWK(json, "ES256") as CryptoKey;
  }
  return await importSPKI(trimmed, "ES256");
}
