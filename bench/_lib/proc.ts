/**
 * Child processes of a benchmark: a {@linkcode ProcGroup} spawns them (stdout
 * lines kept, the last stderr lines kept for error messages) and stops them
 * all at the end; {@linkcode until} waits for a condition while watching one
 * of them; {@linkcode output} runs a command to completion.
 * @module
 */

/** The repository root (benchmarks run `main.ts` and their probes from it). */
export const ROOT = new URL("../..", import.meta.url).pathname;
/** The Deno binary running this benchmark. */
export const DENO = Deno.execPath();

/** One spawned process. */
export interface Proc {
  name: string;
  child: Deno.ChildProcess;
  /** Its stdout lines so far (empty when spawned `quiet`). */
  lines: string[];
  exited: boolean;
  /** Its last stderr line(s) with an error, short enough for a table cell. */
  stderrTail: () => string;
  /** Every stderr line matching {@linkcode SpawnOptions.keepStderr}. */
  kept: string[];
}

/** Options of {@linkcode ProcGroup.spawn}. */
export interface SpawnOptions {
  /** @default {ROOT} */
  cwd?: string;
  env?: Record<string, string>;
  /** Send stdout and stderr to /dev/null instead of reading them. */
  quiet?: boolean;
  /** Keep every stderr line matching this in `kept` (not just the last 200). */
  keepStderr?: RegExp;
}

/** The processes one benchmark started; `stopAll()` ends them, last first. */
export class ProcGroup {
  #procs: Proc[] = [];

  /** Starts `cmd argv` (NO_COLOR set, stdin closed). */
  spawn(
    name: string,
    cmd: string,
    argv: string[],
    opts: SpawnOptions = {},
  ): Proc {
    const io = opts.quiet ? "null" : "piped";
    const child = new Deno.Command(cmd, {
      args: argv,
      cwd: opts.cwd ?? ROOT,
      env: { NO_COLOR: "1", ...opts.env },
      stdin: "null",
      stdout: io,
      stderr: io,
    }).spawn();
    const err: string[] = [];
    const p: Proc = {
      name,
      child,
      lines: [],
      exited: false,
      kept: [],
      stderrTail: () => {
        const clean = err.map((l) => l.trim()).filter(Boolean);
        const errs = clean.filter((l) => /error/i.test(l));
        return (errs.length ? errs.slice(-2) : clean.slice(-3)).join(" / ")
          .slice(0, 300);
      },
    };
    void child.status.then(() => (p.exited = true));
    if (!opts.quiet) {
      void readLines(child.stdout, (l) => p.lines.push(l));
      void readLines(child.stderr, (l) => {
        if (opts.keepStderr?.test(l)) p.kept.push(l);
        err.push(l);
        if (err.length > 200) err.shift();
      });
    }
    this.#procs.push(p);
    return p;
  }

  /** SIGTERM, SIGKILL after 5 s; resolves once it has exited. */
  async stop(p: Proc): Promise<void> {
    if (!p.exited) {
      try {
        p.child.kill("SIGTERM");
      } catch {
        // gone
      }
      const t = setTimeout(() => {
        try {
          p.child.kill("SIGKILL");
        } catch {
          // gone
        }
      }, 5000);
      await p.child.status;
      clearTimeout(t);
    }
    const i = this.#procs.indexOf(p);
    if (i >= 0) this.#procs.splice(i, 1);
  }

  /** Stops every process still running, the last started first. */
  async stopAll(): Promise<void> {
    for (const p of [...this.#procs].reverse()) await this.stop(p);
  }
}

async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (l: string) => void,
): Promise<void> {
  let buf = "";
  try {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        onLine(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    }
  } catch {
    // process gone
  }
  if (buf) onLine(buf);
}

/**
 * Polls `pred` every 25 ms until true; fails after `timeoutMs`, or as soon as
 * `proc` exits (with its last error line).
 */
export async function until(
  what: string,
  pred: () => boolean | Promise<boolean>,
  timeoutMs: number,
  proc?: Proc,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await pred()) return;
    if (proc?.exited) {
      throw new Error(`${proc.name} exited: ${proc.stderrTail()}`);
    }
    if (Date.now() > deadline) {
      throw new Error(
        `Timed out waiting for ${what}${proc ? `: ${proc.stderrTail()}` : ""}`,
      );
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Whether 127.0.0.1:`port` accepts a TCP connection now. */
export async function accepts(port: number): Promise<boolean> {
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    c.close();
    return true;
  } catch {
    return false;
  }
}

/** Waits up to `timeoutMs` for 127.0.0.1:`port` to accept connections. */
export function waitPort(port: number, timeoutMs = 30_000): Promise<void> {
  return until(`port ${port}`, () => accepts(port), timeoutMs);
}

/** Runs `cmd args` to completion; returns its stdout followed by its stderr. */
export async function output(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout) +
    new TextDecoder().decode(out.stderr);
}
