/**
 * What the status page tests share: a running `sigil dev` subprocess and a
 * headless chromium (Debian's, driven by puppeteer-core).
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import puppeteer from "puppeteer-core";
import type { Browser, Page } from "puppeteer-core";
import type { DevJson } from "../../lib/dev/mod.ts";
import { MAIN, ROOT } from "../_helpers/proc.ts";

/** The system browser; `CHROMIUM=/path` overrides it. */
export const CHROMIUM = Deno.env.get("CHROMIUM") ?? "/usr/bin/chromium";

/** A `sigil dev` started by {@linkcode startDevProcess}. */
export interface DevProcess {
  /** The test's temp dir (state under `state/`, screenshots beside it). */
  dir: string;
  info: DevJson;
  /** Everything `sigil dev` printed so far. */
  out(): string;
  /** Waits until the output matches (bounded). */
  waitForOutput(re: RegExp, ms?: number): Promise<void>;
  /** Stops the process and removes the temp dir. */
  close(): Promise<void>;
}

async function until<T>(
  what: string,
  ms: number,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} within ${ms} ms`);
}

/**
 * Starts `sigil dev --port 0 --dir TMP/state EXTRA...` and waits for its
 * `dev.json` (up to 90 s: the machine may be busy).
 */
export async function startDevProcess(extra: string[] = []): Promise<
  DevProcess
> {
  const dir = await Deno.makeTempDir({ prefix: "sigil-status-test-" });
  const state = join(dir, "state");
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, "dev", "--port", "0", "--dir", state]
      .concat(extra),
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let out = "";
  const reading = (async () => {
    for await (const c of child.stdout.pipeThrough(new TextDecoderStream())) {
      out += c;
    }
  })();
  const close = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // already gone
    }
    await child.status;
    await reading;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    const info = await until(
      "sigil dev wrote no dev.json",
      90_000,
      async () => {
        // dev.json is written after every instance registered; the banner
        // follows it, so wait for both.
        if (!out.includes("Press Ctrl-C")) return undefined;
        try {
          return JSON.parse(
            await Deno.readTextFile(join(state, "dev.json")),
          ) as DevJson;
        } catch {
          return undefined;
        }
      },
    );
    return {
      dir,
      info,
      out: () => out,
      waitForOutput: (re, ms = 60_000) =>
        until(
          `sigil dev printed nothing matching ${re}`,
          ms,
          () => Promise.resolve(re.test(out) ? true : undefined),
        ).then(() => {}),
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * Launches headless chromium. `insecure`: accept the CA's own certificate,
 * which chains to the throw-away dev root that chromium does not trust.
 */
export function launchBrowser(
  options: { insecure?: boolean } = {},
): Promise<Browser> {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--headless=new", "--disable-gpu"],
    acceptInsecureCerts: options.insecure ?? false,
    protocolTimeout: 120_000,
  });
}

/**
 * Switches the page to phone width in dark mode, checks the dark background
 * and that nothing scrolls sideways, and writes a full-page screenshot.
 */
export async function checkPhoneDark(page: Page, shot: string): Promise<void> {
  await page.emulateMediaFeatures([
    { name: "prefers-color-scheme", value: "dark" },
  ]);
  await page.setViewport({ width: 390, height: 844 });
  assert.equal(
    await page.evaluate("getComputedStyle(document.body).backgroundColor"),
    "rgb(13, 17, 23)",
  );
  const overflow = Number(
    await page.evaluate(
      "document.documentElement.scrollWidth - window.innerWidth",
    ),
  );
  assert.ok(overflow <= 0, `no sideways scrolling on a phone (${overflow}px)`);
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok((await Deno.stat(shot)).size > 1000, "a screenshot was written");
}
