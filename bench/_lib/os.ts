/**
 * What a benchmark reads from /proc about its processes and the machine: CPU
 * time (of a process and its descendants, and of the whole machine), resident
 * memory, open fds, established connections, and a one-line machine summary.
 * @module
 */

/** Clock ticks per second of /proc's CPU times (USER_HZ). */
export const HZ = 100;

/** utime + stime of a process and its descendants, in clock ticks. */
export function cpuTicks(pid: number): number {
  let total = 0;
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    total += Number(f[11]) + Number(f[12]);
    for (const tid of Deno.readDirSync(`/proc/${pid}/task`)) {
      const kids = Deno.readTextFileSync(
        `/proc/${pid}/task/${tid.name}/children`,
      ).trim();
      if (kids) {
        for (const k of kids.split(" ")) total += cpuTicks(Number(k));
      }
    }
  } catch {
    // gone
  }
  return total;
}

/** CPU time (user + system) a process and its descendants used, in seconds. */
export function cpuSeconds(pid: number): number {
  return cpuTicks(pid) / HZ;
}

/** Busy and total jiffies of the whole machine. */
function systemTicks(): { busy: number; total: number } {
  const line = Deno.readTextFileSync("/proc/stat").split("\n")[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

/**
 * CPU use (in % of one core) of process groups while `fn` runs, plus
 * `machine`: the whole machine's busy share in % of all its cores.
 */
export async function cpuDuring<T>(
  groups: Record<string, number[]>,
  fn: () => Promise<T>,
): Promise<[T, Record<string, number>]> {
  const snap = () =>
    Object.fromEntries(
      Object.entries(groups).map((
        [k, pids],
      ) => [k, pids.reduce((a, p) => a + cpuTicks(p), 0)]),
    );
  const s0 = systemTicks();
  const a = snap();
  const t0 = performance.now();
  const r = await fn();
  const secs = (performance.now() - t0) / 1000;
  const b = snap();
  const s1 = systemTicks();
  const out: Record<string, number> = {};
  for (const k of Object.keys(groups)) {
    out[k] = Math.round(((b[k]! - a[k]!) / HZ / secs) * 100);
  }
  out.machine = Math.round(
    ((s1.busy - s0.busy) / (s1.total - s0.total)) * 100,
  );
  return [r, out];
}

/** Resident memory of a process in kB (NaN once it is gone). */
export function rssKb(pid: number): number {
  try {
    const s = Deno.readTextFileSync(`/proc/${pid}/status`);
    const m = s.match(/VmRSS:\s+(\d+) kB/);
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** Peak resident memory (VmHWM) of a process in whole MB. */
export function peakRssMb(pid: number): number {
  try {
    const s = Deno.readTextFileSync(`/proc/${pid}/status`);
    return Math.round(Number(s.match(/VmHWM:\s+(\d+) kB/)?.[1]) / 1024);
  } catch {
    return NaN;
  }
}

/** Resident memory of a process in whole MB. */
export function rssMb(pid: number): number {
  return Math.round(rssKb(pid) / 1024);
}

/** Open file descriptors of a process. */
export function fds(pid: number): number {
  return [...Deno.readDirSync(`/proc/${pid}/fd`)].length;
}

/** Established TCP connections on local `port` held by process `pid`. */
export function establishedConns(pid: number, port: number): number {
  try {
    const hexPort = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
    const inodes = new Set<string>();
    for (const line of Deno.readTextFileSync("/proc/net/tcp").split("\n")) {
      const f = line.trim().split(/\s+/);
      // local_address rem_address st ... inode
      if (f[1]?.endsWith(hexPort) && f[3] === "01") inodes.add(f[9]!);
    }
    let n = 0;
    for (const fd of Deno.readDirSync(`/proc/${pid}/fd`)) {
      try {
        const m = Deno.readLinkSync(`/proc/${pid}/fd/${fd.name}`).match(
          /^socket:\[(\d+)\]$/,
        );
        if (m && inodes.has(m[1]!)) n++;
      } catch {
        // fd closed meanwhile
      }
    }
    return n;
  } catch {
    return NaN;
  }
}

/** The CPU model from /proc/cpuinfo. */
export function cpuModel(): string {
  return (Deno.readTextFileSync("/proc/cpuinfo").match(
    /model name\s*:\s*(.*)/,
  )?.[1] ?? "unknown CPU").trim();
}

/** `2 vCPU (AMD EPYC ...)`. */
export function machine(): string {
  return `${navigator.hardwareConcurrency} vCPU (${cpuModel()})`;
}
