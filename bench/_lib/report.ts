/**
 * A benchmark's printed report: header lines, markdown tables, notes, and the
 * one `SUMMARY [[component, measure, value, ratio, target], ...]` line that
 * `bench/run.ts` collects.
 * @module
 */

/** `12,345` (or with `digits` decimals); `–` for a missing number. */
export function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return "–";
  return n.toLocaleString("en-US", {
    maximumFractionDigits: digits,
    minimumFractionDigits: digits,
  });
}

/** The two header lines of a markdown table. */
export function tableHead(columns: string[]): string[] {
  return [
    `| ${columns.join(" | ")} |`,
    `|${columns.map(() => "---").join("|")}|`,
  ];
}

/** What one benchmark prints, collected while it runs. */
export class Report {
  /** Lines above the tables (date, machine, load settings). */
  readonly header: string[] = [];
  /** Tables and the text between them. */
  readonly results: string[] = [];
  /** `- ...` lines about what could not run or was skipped. */
  readonly notes: string[] = [];
  /** Rows for `bench/run.ts`: [component, measure, value, ratio, target]. */
  readonly summary: string[][] = [];

  /** Adds a note naming `what` failed and the first line of `err`. */
  failed(what: string, err: unknown): void {
    this.notes.push(
      `- ${what} (${err instanceof Error ? err.message.split("\n")[0] : err}).`,
    );
  }

  /** Prints everything, then the SUMMARY line. */
  print(): void {
    console.log(
      ["", ...this.header, "", ...this.results, "", ...this.notes].join("\n"),
    );
    console.log(`SUMMARY ${JSON.stringify(this.summary)}`);
  }
}
