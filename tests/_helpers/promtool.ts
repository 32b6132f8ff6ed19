/** Runs the `promtool` binary (Debian package `prometheus`). @module */

/** Runs `promtool ARGS` with `stdin`; resolves to its exit code and output. */
export async function promtool(
  args: string[],
  stdin?: string,
): Promise<{ code: number; output: string }> {
  const p = new Deno.Command("promtool", {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = p.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await p.output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    output: dec.decode(out.stdout) + dec.decode(out.stderr),
  };
}
