/** Small helpers of the renewal loop. @module */
import { splitCertificates } from "../pki/mod.ts";

/**
 * Leaf first, then the chain's certificates that are not already there.
 *
 * @example
 * ```ts
 * import { joinChain } from "./_util.ts";
 * console.assert(joinChain("", "") === "");
 * ```
 */
export function joinChain(certificatePem: string, chainPem: string): string {
  const blocks = [
    ...splitCertificates(certificatePem),
    ...splitCertificates(chainPem),
  ];
  const seen = new Set<string>();
  const out: string[] = [];
  for (const b of blocks) {
    const k = b.replace(/\s+/g, "");
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(b);
  }
  return out.join("");
}

/** Rejects with the signal's reason as soon as it aborts; `p` is still observed. */
export function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) {
      p.catch(() => {});
      reject(signal.reason);
      return;
    }
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then((v) => {
      signal.removeEventListener("abort", onAbort);
      resolve(v);
    }, (e) => {
      signal.removeEventListener("abort", onAbort);
      reject(e);
    });
  });
}
