/** The `rotator` section. Owned by the rotator work; placeholder until it lands. @module */
import { z } from "zod";

/** Settings of `sigil rotator`. */
export const RotatorSection = z.strictObject({});
/** Resolved `rotator` section. */
export type RotatorSection = z.output<typeof RotatorSection>;
