/**
 * The access log: one JSON line per request with gorouter's fields. Lines are
 * buffered and written at most every 100 ms (or at 64 KiB) so logging costs no
 * syscall per request.
 * @module
 */

import type { Exchange } from "./_record.ts";
import { describeError } from "../common/mod.ts";
import { RouterError } from "./errors.ts";

// Anything outside printable ASCII, a quote or a backslash goes through
// JSON.stringify (escapes, and lone surrogates in non-ASCII text).
const NEEDS_ESCAPE = /[^ !#-[\]-~]/;

function str(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

let lastMs = -1;
let lastIso = "";
function isoTime(ms: number): string {
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}

/**
 * One JSON line (without newline) for a finished exchange. Built by hand:
 * no intermediate record object, the timestamp string reused within a
 * millisecond.
 */
export function formatAccessLine(
  x: Exchange,
  status: number,
  seconds: number,
): string {
  const ep = x.ep;
  return `{"time":"${isoTime(x.startMs)}","host":${str(x.host)},"method":${
    str(x.method)
  },"path":${
    str(x.path)
  },"protocol":"HTTP/1.1","status":${status},"bytes_in":${x.bytesIn},"bytes_out":${x.bytesOut},"remote":${
    str(x.remote)
  },"backend":${
    ep === undefined ? '""' : str(ep.key)
  },"request_id":"${x.requestId}","response_time":${seconds},"app_id":${
    ep === undefined ? '""' : str(ep.app)
  },"app_index":${ep === undefined ? '""' : str(ep.index)},"instance_id":${
    ep === undefined ? '""' : str(ep.instanceId)
  },"failed_attempts":${x.failed},"router_error":${
    str(x.routerError)
  },"user_agent":${str(x.userAgent)},"referer":${
    str(x.referer)
  },"x_forwarded_for":${str(x.forwardedFor)},"x_forwarded_proto":${
    str(x.forwardedProto)
  }}`;
}

/** Where access-log lines go. */
export interface AccessLog {
  /** Logs one finished exchange. */
  write(x: Exchange, status: number, seconds: number): void;
  /** Writes buffered lines and stops the timer. */
  close(): Promise<void>;
}

const encoder = new TextEncoder();
const BUFFER_BYTES = 64 * 1024;

/** Options of {@linkcode createAccessLog}. */
export interface AccessLogOptions {
  /** Append to this file; stdout when absent. */
  file?: string;
  /** Receives each line instead (tests). */
  sink?: (line: string) => void;
}

/** Opens the access log file; errors name the setting and the path. */
async function openLogFile(file: string): Promise<Deno.FsFile> {
  try {
    return await Deno.open(file, {
      append: true,
      create: true,
      write: true,
      // Client addresses and request paths: not for every local user.
      mode: 0o640,
    });
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound
      ? "its directory does not exist"
      : err instanceof Deno.errors.PermissionDenied
      ? "permission denied (check that this user may write there)"
      : describeError(err);
    throw new RouterError(
      "ERR_ROUTER_ACCESS_LOG",
      `Cannot open the access log "${file}" (router.access_log.file): ${why}`,
      { cause: err },
    );
  }
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
      write: (x, status, seconds) => sink(formatAccessLine(x, status, seconds)),
      close: () => Promise.resolve(),
    };
  }
  const out: { writeSync(b: Uint8Array): number; close?(): void } = options.file
    ? await openLogFile(options.file)
    : Deno.stdout;
  // Lines are encoded straight into one reusable buffer (no big string to
  // flatten, no per-flush allocation) and written when it fills or 100 ms
  // after the first unwritten line.
  const buf = new Uint8Array(BUFFER_BYTES);
  let used = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    let off = 0;
    try {
      while (off < used) off += out.writeSync(buf.subarray(off, used));
    } catch {
      // Output closed: drop the lines rather than fail requests.
    }
    used = 0;
  };
  const append = (line: string) => {
    // UTF-8 needs at most 3 bytes per UTF-16 code unit.
    if (used + line.length * 3 > BUFFER_BYTES) {
      flush();
      if (line.length * 3 > BUFFER_BYTES) {
        const bytes = encoder.encode(line);
        try {
          for (let off = 0; off < bytes.length;) {
            off += out.writeSync(bytes.subarray(off));
          }
        } catch {
          // As above.
        }
        return;
      }
    }
    used += encoder.encodeInto(line, buf.subarray(used)).written;
    if (timer === undefined) timer = setTimeout(flush, 100);
  };
  return {
    write(x, status, seconds) {
      append(formatAccessLine(x, status, seconds) + "\n");
    },
    close() {
      flush();
      if (options.file) out.close?.();
      return Promise.resolve();
    },
  };
}
