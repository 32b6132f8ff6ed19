/**
 * `deno task bench`: runs every benchmark in bench/ (CA, proxy, router), shows
 * each one's table, then one summary table of the ratios against the peers
 * measured in the same run. Benchmarks are not tests: they print, they do not
 * assert. Each script prints its summary rows as one line
 * `SUMMARY [["component","measure","value","ratio","target"], ...]`.
 *
 * Run: `deno task bench` (all) or `deno task bench ca router` (some).
 * @module
 */
const ALL = ["ca", "proxy", "router"];
const which = Deno.args.length ? Deno.args : ALL;
const summary: string[][] = [];
const here = new URL(".", import.meta.url).pathname;

for (const name of which) {
  console.log(`\n## ${name}\n`);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", `${here}${name}.ts`],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let out = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    out += chunk;
    const lines = out.split("\n");
    out = lines.pop()!;
    for (const line of lines) {
      if (line.startsWith("SUMMARY ")) {
        summary.push(...JSON.parse(line.slice(8)));
      } else console.log(line);
    }
  }
  if (out.startsWith("SUMMARY ")) summary.push(...JSON.parse(out.slice(8)));
  else if (out) console.log(out);
  const status = await child.status;
  if (!status.success) {
    summary.push([name, "benchmark failed", `exit ${status.code}`, "", ""]);
  }
}

console.log(
  `\n## Summary (${
    new Date().toISOString().slice(0, 10)
  }, ${navigator.hardwareConcurrency} CPUs, deno ${Deno.version.deno})\n`,
);
console.log(
  "| component | measure | value | ratio | target |\n|---|---|---|---|---|",
);
for (const row of summary) console.log(`| ${row.join(" | ")} |`);
