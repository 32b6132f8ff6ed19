/**
 * cgroup v1 CPU quotas, to hold a process to a fraction of a core (the
 * router's scale-out bench). Needs root and the cpu controller at
 * /sys/fs/cgroup/cpu.
 * @module
 */

/** The cgroup v1 cpu controller. */
export const CG_ROOT = "/sys/fs/cgroup/cpu";
/** The CFS period of the quota, in µs. */
export const CG_PERIOD_US = 100_000;

/** A cgroup v1 `cpu` group with a CFS quota. */
export interface Cgroup {
  dir: string;
  /** Moves a process (all its threads) into the group. */
  add(pid: number): void;
  /** CFS periods so far and how many of them were throttled. */
  stat(): { periods: number; throttled: number };
}

/** Why `cores`-core quotas cannot be used here, or "" when they can. */
export function cgroupUnavailable(cores: number): string {
  try {
    Deno.statSync(`${CG_ROOT}/cpu.cfs_quota_us`);
  } catch {
    return `no cgroup v1 cpu controller at ${CG_ROOT} (cpu.cfs_quota_us missing)`;
  }
  const probe = `${CG_ROOT}/sigil-bench-${Deno.pid}-probe`;
  try {
    Deno.mkdirSync(probe);
    Deno.removeSync(probe);
  } catch (err) {
    return `cannot create a cgroup under ${CG_ROOT} (${
      err instanceof Error ? err.name : err
    }; needs root, uid ${Deno.uid()})`;
  }
  if (!(cores > 0 && cores < navigator.hardwareConcurrency)) {
    return `--cpu-cap=${cores} is not between 0 and ${navigator.hardwareConcurrency} cores`;
  }
  return "";
}

/** Creates group `name` with a quota of `cores` cores. */
export function createCgroup(name: string, cores: number): Cgroup {
  const dir = `${CG_ROOT}/${name}`;
  Deno.mkdirSync(dir);
  Deno.writeTextFileSync(`${dir}/cpu.cfs_period_us`, String(CG_PERIOD_US));
  Deno.writeTextFileSync(
    `${dir}/cpu.cfs_quota_us`,
    String(Math.round(cores * CG_PERIOD_US)),
  );
  return {
    dir,
    add: (pid) => Deno.writeTextFileSync(`${dir}/cgroup.procs`, String(pid)),
    stat: () => {
      const t = Deno.readTextFileSync(`${dir}/cpu.stat`);
      const get = (k: string) =>
        Number(t.match(new RegExp(`^${k} (\\d+)$`, "m"))?.[1] ?? NaN);
      return { periods: get("nr_periods"), throttled: get("nr_throttled") };
    },
  };
}
