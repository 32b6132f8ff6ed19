/**
 * The on-disk credential store of one instance. The key and certificate change
 * together in one atomic step, so a reader never sees a torn pair:
 *
 * ```
 * <dir>/versions/<n>/instance.key   (key_mode, 0600)
 * <dir>/versions/<n>/instance.crt   (cert_mode, 0644)
 * <dir>/current       -> versions/<n>          (repointed by rename(2))
 * <dir>/instance.key  -> current/instance.key  (stable path)
 * <dir>/instance.crt  -> current/instance.crt  (stable path)
 * ```
 *
 * A new version is written under `versions/.tmp-*`, files and directory are
 * fsynced, the directory is renamed to its number, then a temporary symlink is
 * renamed over `current` and the directory fsynced. Everything not yet
 * reachable from `current` at a crash is removed by {@linkcode CredentialStore.recover}.
 * The previous version is kept, so a reader that resolved `current` just
 * before a swap can still read both of its files.
 * @module
 */
import { join } from "node:path";
import { writeSecretFile } from "../common/mod.ts";
import { certificateMatchesKey } from "../pki/mod.ts";
import { RotatorError } from "./errors.ts";

/** File names of the pair. */
export const CERT_FILE = "instance.crt";
/** File names of the pair. */
export const KEY_FILE = "instance.key";
const VERSIONS = "versions";
const CURRENT = "current";

/** Modes of what the store creates. */
export interface StoreOptions {
  /** @default {0o700} */
  dirMode?: number;
  /** @default {0o600} */
  keyMode?: number;
  /** @default {0o644} */
  certMode?: number;
  /** fsync files and directories (off only in benchmarks). @default {true} */
  sync?: boolean;
}

/** A key/certificate pair read from the store. */
export interface StoredPair {
  certPem: string;
  keyPem: string;
  /** Version number the pair came from (0 for files not managed by a store). */
  version: number;
}

/** What {@linkcode CredentialStore.recover} cleaned up. */
export interface RecoveryReport {
  /** Entries removed: partial, uncommitted or superseded versions, stale temp links. */
  removed: string[];
  /** True when plain (non-symlink) instance files were imported as a version. */
  imported: boolean;
  /** Files of the kept versions whose mode was wrong and was set back. */
  repaired: RepairedMode[];
}

/** A file {@linkcode CredentialStore.recover} chmod-ed back to its mode. */
export interface RepairedMode {
  /** Path relative to the credentials directory (`versions/3/instance.key`). */
  file: string;
  /** The mode it had (`0o644`). */
  was: number;
  /** The mode it has now (`key_mode` or `cert_mode`). */
  mode: number;
}

/**
 * Reads the current pair of a credentials directory the way a reader should:
 * resolve `current` once, then read both files from that version. Falls back
 * to plain `instance.crt`/`instance.key` files when there is no `current`.
 *
 * @param dir The credentials directory.
 * @returns The pair, or `undefined` when there is none.
 * @example
 * ```ts ignore
 * import { readCredentials } from "./_store.ts";
 * const pair = await readCredentials("/var/vcap/data/sigil/i-1");
 * ```
 */
export async function readCredentials(
  dir: string,
): Promise<StoredPair | undefined> {
  let target: string | undefined;
  try {
    target = await Deno.readLink(join(dir, CURRENT));
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  const base = target === undefined ? dir : join(dir, target);
  try {
    const [certPem, keyPem] = await Promise.all([
      Deno.readTextFile(join(base, CERT_FILE)),
      Deno.readTextFile(join(base, KEY_FILE)),
    ]);
    return { certPem, keyPem, version: versionOf(target) ?? 0 };
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

function versionOf(target: string | undefined): number | undefined {
  const m = target ? /(?:^|\/)(\d+)\/?$/.exec(target) : null;
  return m ? Number(m[1]) : undefined;
}

/**
 * Writes and reads one instance's credentials atomically.
 *
 * @example
 * ```ts ignore
 * import { CredentialStore } from "./_store.ts";
 * const store = new CredentialStore("/var/vcap/data/sigil/i-1");
 * await store.recover();
 * await store.commit(certPem, keyPem);
 * ```
 */
export class CredentialStore {
  readonly dir: string;
  #dirMode: number;
  #keyMode: number;
  #certMode: number;
  #sync: boolean;

  constructor(dir: string, options: StoreOptions = {}) {
    this.dir = dir;
    this.#dirMode = options.dirMode ?? 0o700;
    this.#keyMode = options.keyMode ?? 0o600;
    this.#certMode = options.certMode ?? 0o644;
    this.#sync = options.sync ?? true;
  }

  /** Path of the stable certificate file. */
  get certPath(): string {
    return join(this.dir, CERT_FILE);
  }

  /** Path of the stable key file. */
  get keyPath(): string {
    return join(this.dir, KEY_FILE);
  }

  /**
   * Brings the directory to a consistent state after a crash: removes partial
   * (`.tmp-*`), half-deleted (`.trash-*`) and uncommitted versions and stale
   * temporary links, keeps `current` and the version before it, imports plain
   * instance files that match, and (re)creates the stable links.
   */
  async recover(): Promise<RecoveryReport> {
    const removed: string[] = [];
    await this.#ensureDir(this.dir);
    await this.#ensureDir(join(this.dir, VERSIONS));
    for await (const e of Deno.readDir(this.dir)) {
      if (e.name.startsWith(".tmp-")) {
        await Deno.remove(join(this.dir, e.name), { recursive: true });
        removed.push(e.name);
      }
    }
    const current = await this.#currentVersion();
    const versionsDir = join(this.dir, VERSIONS);
    const numbered: number[] = [];
    for await (const e of Deno.readDir(versionsDir)) {
      if (/^\d+$/.test(e.name) && e.isDirectory) {
        numbered.push(Number(e.name));
      } else {
        // .tmp-* (partial write), .trash-* (interrupted delete), anything else.
        await Deno.remove(join(versionsDir, e.name), { recursive: true });
        removed.push(`${VERSIONS}/${e.name}`);
      }
    }
    numbered.sort((a, b) => a - b);
    let previous: number | undefined;
    if (current !== undefined) {
      for (const n of numbered) {
        if (n < current && await this.#complete(n)) previous = n;
      }
    }
    for (const n of numbered) {
      if (n === current || n === previous) continue;
      await this.#removeVersion(n);
      removed.push(`${VERSIONS}/${n}`);
    }
    let imported = false;
    if (current === undefined) imported = await this.#importPlainFiles();
    if (removed.length) await this.#syncDir(versionsDir);
    if (current !== undefined || imported) await this.#ensureLinks();
    const repaired = await this.#repairModes(
      [await this.#currentVersion(), previous],
    );
    return { removed, imported, repaired };
  }

  /**
   * Sets the key and certificate files of `versions` back to `key_mode` and
   * `cert_mode` (an operator's `cp` or `chmod`, a restored backup): the proxy
   * refuses a key group or others can read.
   */
  async #repairModes(
    versions: Array<number | undefined>,
  ): Promise<RepairedMode[]> {
    const repaired: RepairedMode[] = [];
    for (const n of versions) {
      if (n === undefined) continue;
      for (
        const [name, mode] of [
          [KEY_FILE, this.#keyMode],
          [CERT_FILE, this.#certMode],
        ] as const
      ) {
        const file = `${VERSIONS}/${n}/${name}`;
        const info = await lstatOrUndefined(join(this.dir, file));
        if (!info?.isFile || info.mode === null) continue;
        const was = info.mode & 0o777;
        if (was === mode) continue;
        await Deno.chmod(join(this.dir, file), mode);
        repaired.push({ file, was, mode });
      }
    }
    return repaired;
  }

  /** The current pair, or `undefined` when none has been written. */
  async read(): Promise<StoredPair | undefined> {
    return await readCredentials(this.dir);
  }

  /**
   * Writes a new version and makes it current in one atomic step. Durable when
   * it resolves. Removes versions older than the previous one.
   *
   * @returns The new version number.
   * @throws {RotatorError} `ERR_ROTATOR_WRITE_FAILED` (the current pair is untouched).
   */
  async commit(certPem: string, keyPem: string): Promise<number> {
    const versionsDir = join(this.dir, VERSIONS);
    try {
      await this.#ensureDir(this.dir);
      await this.#ensureDir(versionsDir);
      const before = await this.#currentVersion();
      const n = (await this.#highestVersion()) + 1;
      const tmp = join(versionsDir, `.tmp-${n}-${randomSuffix()}`);
      await Deno.mkdir(tmp, { mode: this.#dirMode });
      await Deno.chmod(tmp, this.#dirMode);
      await this.#writeFile(join(tmp, KEY_FILE), keyPem, this.#keyMode);
      await this.#writeFile(join(tmp, CERT_FILE), certPem, this.#certMode);
      await this.#syncDir(tmp);
      await Deno.rename(tmp, join(versionsDir, String(n)));
      await this.#syncDir(versionsDir);
      // The stable links exist (dangling on first use) before `current` does,
      // so both paths start resolving in the same instant.
      await this.#ensureLinks();
      await this.#replaceLink(CURRENT, `${VERSIONS}/${n}`);
      // The new pair is live now: a failed clean-up of old versions must not
      // report the write as failed (the next commit prunes them again).
      await this.#prune(n, before).catch(() => {});
      return n;
    } catch (err) {
      if (err instanceof RotatorError) throw err;
      throw new RotatorError(
        "ERR_ROTATOR_WRITE_FAILED",
        `Cannot write credentials in "${this.dir}": ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  async #importPlainFiles(): Promise<boolean> {
    // Plain files from an older layout: import them only as the pair they are.
    const plain = await Promise.all(
      [CERT_FILE, KEY_FILE].map((f) => lstatOrUndefined(join(this.dir, f))),
    );
    if (!plain.every((s) => s?.isFile)) return false;
    const [certPem, keyPem] = await Promise.all([
      Deno.readTextFile(this.certPath),
      Deno.readTextFile(this.keyPath),
    ]);
    let ok = false;
    try {
      ok = await certificateMatchesKey(certPem, keyPem);
    } catch {
      ok = false;
    }
    if (!ok) return false;
    const n = (await this.#highestVersion()) + 1;
    const versionsDir = join(this.dir, VERSIONS);
    const tmp = join(versionsDir, `.tmp-${n}-${randomSuffix()}`);
    await Deno.mkdir(tmp, { mode: this.#dirMode });
    await this.#writeFile(join(tmp, KEY_FILE), keyPem, this.#keyMode);
    await this.#writeFile(join(tmp, CERT_FILE), certPem, this.#certMode);
    await this.#syncDir(tmp);
    await Deno.rename(tmp, join(versionsDir, String(n)));
    await this.#syncDir(versionsDir);
    await this.#replaceLink(CURRENT, `${VERSIONS}/${n}`);
    return true;
  }

  async #currentVersion(): Promise<number | undefined> {
    try {
      return versionOf(await Deno.readLink(join(this.dir, CURRENT)));
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return undefined;
      if (err instanceof Deno.errors.InvalidData) return undefined;
      throw err;
    }
  }

  async #highestVersion(): Promise<number> {
    let max = (await this.#currentVersion()) ?? 0;
    for await (const e of Deno.readDir(join(this.dir, VERSIONS))) {
      const m = /^(?:\.tmp-)?(\d+)/.exec(e.name);
      if (m) max = Math.max(max, Number(m[1]));
    }
    return max;
  }

  async #complete(n: number): Promise<boolean> {
    const base = join(this.dir, VERSIONS, String(n));
    const [c, k] = await Promise.all([
      lstatOrUndefined(join(base, CERT_FILE)),
      lstatOrUndefined(join(base, KEY_FILE)),
    ]);
    return !!(c?.isFile && k?.isFile && c.size > 0 && k.size > 0);
  }

  async #prune(current: number, previous: number | undefined): Promise<void> {
    const versionsDir = join(this.dir, VERSIONS);
    const stale: number[] = [];
    for await (const e of Deno.readDir(versionsDir)) {
      if (!/^\d+$/.test(e.name)) continue;
      const n = Number(e.name);
      if (n !== current && n !== previous) stale.push(n);
    }
    for (const n of stale) await this.#removeVersion(n);
  }

  async #removeVersion(n: number): Promise<void> {
    // Rename first so an interrupted delete never leaves a half version under a number.
    const versionsDir = join(this.dir, VERSIONS);
    const trash = join(versionsDir, `.trash-${n}-${randomSuffix()}`);
    await Deno.rename(join(versionsDir, String(n)), trash);
    await Deno.remove(trash, { recursive: true });
  }

  async #ensureLinks(): Promise<void> {
    // Key first: while the cert link is missing a reader sees no pair, never a torn one.
    for (const file of [KEY_FILE, CERT_FILE]) {
      const want = `${CURRENT}/${file}`;
      let have: string | undefined;
      try {
        have = await Deno.readLink(join(this.dir, file));
      } catch {
        have = undefined;
      }
      if (have !== want) await this.#replaceLink(file, want, false);
    }
    await this.#syncDir(this.dir);
  }

  async #replaceLink(name: string, target: string, sync = true): Promise<void> {
    const tmp = join(this.dir, `.tmp-link-${randomSuffix()}`);
    await Deno.symlink(target, tmp);
    await Deno.rename(tmp, join(this.dir, name));
    if (sync) await this.#syncDir(this.dir);
  }

  async #writeFile(path: string, text: string, mode: number): Promise<void> {
    await writeSecretFile(path, text, {
      mode,
      exclusive: true,
      sync: this.#sync,
    });
  }

  async #syncDir(path: string): Promise<void> {
    if (!this.#sync) return;
    const d = await Deno.open(path, { read: true });
    try {
      await d.sync();
    } finally {
      d.close();
    }
  }

  async #ensureDir(path: string): Promise<void> {
    await Deno.mkdir(path, { recursive: true, mode: this.#dirMode });
    const info = await Deno.stat(path);
    if (((info.mode ?? 0) & 0o777) !== this.#dirMode) {
      await Deno.chmod(path, this.#dirMode);
    }
  }
}

async function lstatOrUndefined(
  path: string,
): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.lstat(path);
  } catch {
    return undefined;
  }
}

function randomSuffix(): string {
  return crypto.randomUUID().slice(0, 8);
}
