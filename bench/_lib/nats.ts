/**
 * Route registrations for the NATS benchmarks: distinct route-emitter style
 * messages, published as fast as one client allows.
 * @module
 */
import { connect as natsConnect } from "@nats-io/transport-node";
import { registration } from "../router_registry.ts";

/** `n` distinct messages (one route and endpoint each). */
export function registrations(n: number): Uint8Array[] {
  const enc = new TextEncoder();
  return Array.from({ length: n }, (_, i) => enc.encode(registration(i)));
}

/** Publishes `msgs` on `router.register`; returns the wall-clock start (ms). */
export async function publishAll(
  natsUrl: string,
  msgs: Uint8Array[],
): Promise<number> {
  const nc = await natsConnect({ servers: [natsUrl] });
  try {
    const start = performance.timeOrigin + performance.now();
    for (let i = 0; i < msgs.length; i++) {
      nc.publish("router.register", msgs[i]!);
      if (i % 2000 === 1999) await nc.flush();
    }
    await nc.flush();
    return start;
  } finally {
    await nc.close();
  }
}

/** Wall-clock now in ms, comparable with {@linkcode publishAll}'s start. */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}
