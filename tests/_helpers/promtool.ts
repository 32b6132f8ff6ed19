/** Runs the `promtool` binary (Debian package `prometheus`). @module */
import { runTool } from "./proc.ts";

/** Runs `promtool ARGS` with `stdin`; resolves to its exit code and output. */
export async function promtool(
  args: string[],
  stdin?: string,
): Promise<{ code: number; output: string }> {
  const r = await runTool("promtool", args, stdin);
  return { code: r.code, output: r.stdout + r.stderr };
}
