/**
 * `--cpu-prof`: the top self-time functions of a router's `.cpuprofile`, and
 * the callers of the hottest one, as a table for the report.
 * @module
 */
import { fmt } from "./report.ts";
import type { Report } from "./report.ts";

/**
 * Adds the profile in `dir` to `report` as `### Router #1 CPU profile (<what>;
 * self time, % of busy samples)`.
 */
export async function summarizeProfile(
  dir: string,
  what: string,
  report: Report,
): Promise<void> {
  interface Node {
    id: number;
    hitCount?: number;
    children?: number[];
    callFrame: { functionName: string; url: string; lineNumber: number };
  }
  let file: string | undefined;
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.name.endsWith(".cpuprofile")) file = `${dir}/${e.name}`;
    }
  } catch {
    // no profile
  }
  if (!file) {
    report.notes.push("- --cpu-prof: no profile was written.");
    return;
  }
  const prof = JSON.parse(await Deno.readTextFile(file)) as {
    nodes: Node[];
  };
  const self = new Map<string, number>();
  let total = 0;
  for (const n of prof.nodes) {
    const hits = n.hitCount ?? 0;
    const f = n.callFrame;
    if (f.functionName === "(idle)") continue;
    total += hits;
    const where = f.url.replace(/^.*\/(?=[^/]+$)/, "");
    const key = `${f.functionName || "(anonymous)"} ${where}:${
      f.lineNumber + 1
    }`;
    self.set(key, (self.get(key) ?? 0) + hits);
  }
  const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 20);
  // Who calls the hottest function (eight frames up), weighted by its self time.
  const parent = new Map<number, Node>();
  for (const n of prof.nodes) {
    for (const c of n.children ?? []) parent.set(c, n);
  }
  const name = (n: Node | undefined) =>
    n
      ? `${n.callFrame.functionName || "(anonymous)"} ${
        n.callFrame.url.replace(/^.*\/(?=[^/]+$)/, "")
      }`
      : "-";
  const hottest = top[0]?.[0].split(" ")[0];
  const callers = new Map<string, number>();
  for (const n of prof.nodes) {
    if (n.callFrame.functionName !== hottest || !n.hitCount) continue;
    const chain: string[] = [];
    let p = parent.get(n.id);
    while (p && chain.length < 8) {
      chain.push(name(p));
      p = parent.get(p.id);
    }
    const key = chain.join(" ← ");
    callers.set(key, (callers.get(key) ?? 0) + n.hitCount);
  }
  report.results.push(
    `### Router #1 CPU profile (${what}; self time, % of busy samples)`,
    "",
    "| Function | self % |",
    "|---|---|",
    ...top.map(([k, v]) => `| \`${k}\` | ${fmt((v / total) * 100, 1)} |`),
    "",
    `Callers of \`${hottest}\`:`,
    "",
    ...[...callers.entries()].sort((a, b) => b[1] - a[1]).slice(0, 5).map((
      [k, v],
    ) => `- ${fmt((v / total) * 100, 1)}%: \`${k}\``),
    "",
  );
}
