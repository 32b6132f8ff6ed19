/** The `router` section. Owned by the router work; placeholder until it lands. @module */
import { z } from "zod";

/** Settings of `sigil router`. */
export const RouterSection = z.strictObject({});
/** Resolved `router` section. */
export type RouterSection = z.output<typeof RouterSection>;
