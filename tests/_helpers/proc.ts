/**
 * Helpers for tests that run `sigil` as a real subprocess.
 * @module
 */

/** Absolute path of the repository's main.ts. */
export const MAIN = new URL("../../main.ts", import.meta.url).pathname;
/** Repository root. */
export const ROOT = new URL("../../", import.meta.url).pathname;

/** Result of a finished `sigil` run. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs any program to completion with piped output.
 *
 * @example
 * ```ts ignore
 * const r = await runCommand("openssl", ["version"]);
 * ```
 */
export async function runCommand(
  cmd: string,
  args: string[],
  options: { cwd?: string; stdin?: string; env?: Record<string, string> } = {},
): Promise<RunResult> {
  const p = new Deno.Command(cmd, {
    args,
    env: options.env,
    cwd: options.cwd ?? ROOT,
    stdin: options.stdin !== undefined ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const w = p.stdin.getWriter();
    await w.write(new TextEncoder().encode(options.stdin));
    await w.close();
  }
  const out = await p.output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

/**
 * Runs `sigil ARGS` to completion.
 *
 * @example
 * ```ts ignore
 * const r = await sigil(["version"]);
 * ```
 */
export async function sigil(
  args: string[],
  options: { cwd?: string; stdin?: string; env?: Record<string, string> } = {},
): Promise<RunResult> {
  return await runCommand(
    Deno.execPath(),
    ["run", "-A", "--quiet", MAIN, ...args],
    options,
  );
}

/** A long-running `sigil` subprocess whose stderr JSON log lines are collected. */
export class SigilProcess {
  readonly child: Deno.ChildProcess;
  readonly lines: string[] = [];
  #waiters: Array<
    {
      pred: (l: Record<string, unknown>) => boolean;
      resolve: (l: Record<string, unknown>) => void;
    }
  > = [];
  readonly #done: Promise<void>;
  #stdout: Promise<string>;

  /**
   * `options.prefix` runs sigil through another program, e.g.
   * `["setpriv", "--bounding-set=-dac_override", "--"]`.
   */
  constructor(
    args: string[],
    options: { cwd?: string; env?: Record<string, string>; prefix?: string[] } =
      {},
  ) {
    const argv = ["run", "-A", "--quiet", MAIN, ...args];
    const [cmd, ...pre] = [...(options.prefix ?? []), Deno.execPath()];
    this.child = new Deno.Command(cmd!, {
      args: [...pre, ...argv],
      cwd: options.cwd ?? ROOT,
      env: options.env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stdout = new Response(this.child.stdout).text();
    this.#done = this.#pump();
  }

  async #pump() {
    const dec = new TextDecoderStream();
    let buf = "";
    for await (const chunk of this.child.stderr.pipeThrough(dec)) {
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        this.lines.push(line);
        let rec: Record<string, unknown> | undefined;
        try {
          rec = JSON.parse(line);
        } catch {
          rec = undefined;
        }
        if (!rec) continue;
        this.#waiters = this.#waiters.filter((w) => {
          if (w.pred(rec!)) {
            w.resolve(rec!);
            return false;
          }
          return true;
        });
      }
    }
    if (buf) this.lines.push(buf);
  }

  /** Resolves with the first (past or future) JSON log line matching `pred`. */
  waitFor(
    pred: (l: Record<string, unknown>) => boolean,
    timeoutMs = 20_000,
  ): Promise<Record<string, unknown>> {
    for (const line of this.lines) {
      try {
        const rec = JSON.parse(line);
        if (pred(rec)) return Promise.resolve(rec);
      } catch {
        // not JSON
      }
    }
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        reject(
          new Error(
            `Timed out waiting for a log line; got:\n${
              this.lines.slice(-20).join("\n")
            }`,
          ),
        );
      }, timeoutMs);
      this.#waiters.push({
        pred,
        resolve: (l) => {
          clearTimeout(t);
          resolve(l);
        },
      });
    });
  }

  /** Waits for a log line whose `event` equals `event`. */
  waitForEvent(
    event: string,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>> {
    return this.waitFor((l) => l.event === event, timeoutMs);
  }

  /** Sends a signal and waits for exit. */
  async stop(
    signal: Deno.Signal = "SIGTERM",
  ): Promise<{ code: number; stdout: string }> {
    try {
      this.child.kill(signal);
    } catch {
      // already gone
    }
    const status = await this.child.status;
    await this.#done;
    return { code: status.code, stdout: await this.#stdout };
  }
}

/** Runs `openssl ARGS`. */
export function openssl(args: string[], stdin?: string): Promise<RunResult> {
  return runTool("openssl", args, stdin);
}

/** Runs `NAME ARGS` with `stdin` (or none) and collects its output. */
export async function runTool(
  name: string,
  args: string[],
  stdin?: string,
): Promise<RunResult> {
  const p = new Deno.Command(name, {
    args,
    stdin: stdin !== undefined ? "piped" : "null",
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
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}
