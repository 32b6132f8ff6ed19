/**
 * The access log: one JSON line per request with gorouter's fields. Lines are
 * buffered and written at most every 100 ms (or at 64 KiB) so logging costs no
 * syscall per request.
 * @module
 */

/** One access-log record (gorouter's fields, snake_case). */
export interface AccessRecord {
  time: string;
  host: string;
  method: string;
  path: string;
  protocol: string;
  status: number;
  bytes_in: number;
  bytes_out: number;
  remote: string;
  backend: string;
  request_id: string;
  response_time: number;
  app_id: string;
  app_index: string;
  instance_id: string;
  failed_attempts: number;
  router_error: string;
  user_agent: string;
  referer: string;
  x_forwarded_for: string;
  x_forwarded_proto: string;
}

/** Where access-log lines go. */
export interface AccessLog {
  write(record: AccessRecord): void;
  /** Writes buffered lines and stops the timer. */
  close(): Promise<void>;
}

const encoder = new TextEncoder();

/** Options of {@linkcode createAccessLog}. */
export interface AccessLogOptions {
  /** Append to this file; stdout when absent. */
  file?: string;
  /** Receives each line instead (tests). */
  sink?: (line: string) => void;
}

/**
 * Creates the access log.
 *
 * @example
 * ```ts
 * import { createAccessLog } from "./_access_log.ts";
 * const lines: string[] = [];
 * const log = await createAccessLog({ sink: (l) => lines.push(l) });
 * await log.close();
 * ```
 */
export async function createAccessLog(
  options: AccessLogOptions,
): Promise<AccessLog> {
  if (options.sink) {
    const sink = options.sink;
    return {
      write: (r) => sink(JSON.stringify(r)),
      close: () => Promise.resolve(),
    };
  }
  const out: { writeSync(b: Uint8Array): number; close?(): void } = options.file
    ? await Deno.open(options.file, {
      append: true,
      create: true,
      write: true,
    })
    : Deno.stdout;
  let buf = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = () => {
    timer = undefined;
    if (buf === "") return;
    const bytes = encoder.encode(buf);
    buf = "";
    let off = 0;
    try {
      while (off < bytes.length) off += out.writeSync(bytes.subarray(off));
    } catch {
      // Output closed: drop the lines rather than fail requests.
    }
  };
  return {
    write(r) {
      buf += JSON.stringify(r) + "\n";
      if (buf.length > 65536) flush();
      else if (timer === undefined) timer = setTimeout(flush, 100);
    },
    close() {
      if (timer !== undefined) clearTimeout(timer);
      flush();
      if (options.file) out.close?.();
      return Promise.resolve();
    },
  };
}
