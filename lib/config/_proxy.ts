/** The `proxy` section. Owned by the proxy work; placeholder until it lands. @module */
import { z } from "zod";

/** Settings of `sigil proxy`. */
export const ProxySection = z.strictObject({});
/** Resolved `proxy` section. */
export type ProxySection = z.output<typeof ProxySection>;
