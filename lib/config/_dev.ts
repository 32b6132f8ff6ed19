/** The `dev` section: `sigil dev`. @module */
import { z } from "zod";
import { Duration } from "./_common.ts";

/** Settings of `sigil dev` (flags override them). */
export const DevSection = z.strictObject({
  /** Router HTTP port on 127.0.0.1. */
  port: z.number().int().min(0).max(65535).default(8080),
  /** Keep state here instead of a temp dir removed on exit. */
  dir: z.string().optional(),
  /** Instance certificate validity (rotation follows it). */
  validity: Duration.prefault("24h"),
});
/** Resolved `dev` section. */
export type DevSection = z.output<typeof DevSection>;
