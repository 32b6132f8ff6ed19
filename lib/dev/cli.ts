/** `sigil dev`. @module */
import type { Command } from "../common/mod.ts";
import {
  describeError,
  formatDuration,
  parseDuration,
  stringFlag,
  UsageError,
  watchSignals,
} from "../common/mod.ts";
import { loadConfig } from "../config/mod.ts";
import type { LogLevel } from "../observe/mod.ts";
import { startDev } from "./_dev.ts";
import type { DevJson } from "./_dev.ts";
import { demonstrateMisroute } from "./_misroute.ts";

function summary(info: DevJson, validity: string, temp: boolean): string {
  const hello = info.instances.filter((i) => i.app === "hello");
  const other = info.instances.find((i) => i.app === "other")!;
  const first = info.instances[0]!;
  return [
    `sigil dev is running: CA, rotator, ${info.instances.length} strict-mTLS proxies, router, CredHub.`,
    ``,
    `  Try:      curl -H 'Host: hello.localhost' http://${info.router.http}/`,
    `            curl -H 'Host: other.localhost' http://${info.router.http}/json`,
    `  CredHub:  curl -H 'Host: hello.localhost' http://${info.router.http}/credentials   (hello's binding, interpolated as sigil launch does)`,
    `            curl -H 'Host: other.localhost' http://${info.router.http}/credentials   (404: other may not read it)`,
    `            ${info.credhub.url}  (broker token ${info.credhub.token_file}, CA bundle ${info.ca.bundle})`,
    `  Routes:   curl ${info.router.routes_url}`,
    `            deno task sigil routes --router http://${info.router.api}`,
    `  Status pages (open in a browser; they refresh themselves):`,
    `            http://${info.router.api}/status   (router: routes, endpoint states, prunes, certificates)`,
    ...info.instances.map((i) =>
      `            http://${i.admin}/status   (proxy of ${i.app}/${i.index})`
    ),
    `            ${info.ca.url}/status   (CA: issuers, issuances, refusals; dev CA certificate, not trusted by browsers)`,
    `            deno task sigil status --url http://${first.admin}   (the same as tables)`,
    `  Proxies:  curl http://${first.admin}/stats   (also /certs /ready /metrics /config_dump)`,
    ...info.instances.map((i) =>
      `            ${i.instance_id} (${i.app}/${i.index}): admin http://${i.admin}`
    ),
    `  CA:       ${info.ca.url}  (trust bundle ${info.ca.bundle})`,
    `  Certs:    ${info.instances.length} instances under ${info.dir}/instances/<id>/, ${validity} validity`,
    `  Inspect:  deno task sigil inspect ${first.dir}/instance.crt`,
    `  Apps:     hello (${hello.length} instances, app ${
      hello[0]!.app_guid
    }), other (app ${other.app_guid})`,
    `  State:    ${info.dir}/dev.json${
      temp ? " (removed on exit; use --dir to keep it)" : ""
    }`,
    `  Access log: ${info.router.access_log}`,
    ``,
    `Press Ctrl-C to stop.`,
  ].join("\n");
}

/** Commands of `sigil dev`. */
export const DEV_COMMANDS: Command[] = [{
  name: "dev",
  summary:
    "Run CA, rotator, demo app, proxies and router in one process on 127.0.0.1",
  flags: {
    port: {
      type: "string",
      arg: "PORT",
      description:
        "Router HTTP port; the API uses PORT+1, CredHub PORT+2 (default 8080; 0 = any)",
    },
    dir: {
      type: "string",
      arg: "DIR",
      description: "Keep state in DIR (default: a temp dir removed on exit)",
    },
    validity: {
      type: "string",
      arg: "DUR",
      description:
        'Instance certificate validity (default "24h"; "2m" shows rotation)',
    },
    misroute: {
      type: "boolean",
      description:
        "Register a stale endpoint and show the router refusing and pruning it",
    },
    config: {
      type: "string",
      arg: "FILE",
      description: "Read defaults from the dev section of FILE",
    },
    verbose: {
      type: "boolean",
      short: "v",
      description: "Log every component's info events to stderr",
    },
  },
  async run(flags) {
    const file = stringFlag(flags, "config");
    const section = file ? (await loadConfig(file)).dev : undefined;
    const portText = stringFlag(flags, "port");
    const port = portText !== undefined
      ? Number(portText)
      : section?.port ?? 8080;
    if (!Number.isInteger(port) || port < 0 || port > 65533) {
      throw new UsageError(
        `Invalid port "${portText ?? port}" (--port or dev.port): use 0-65533`,
      );
    }
    const validityText = stringFlag(flags, "validity");
    let validityMs = section?.validity ?? 86_400_000;
    if (validityText !== undefined) {
      try {
        validityMs = parseDuration(validityText);
      } catch {
        throw new UsageError(
          `Invalid value for "--validity": "${validityText}" is not a duration like "24h"`,
        );
      }
    }
    if (validityMs < 60_000) {
      throw new UsageError(`Invalid value for "--validity": use at least "1m"`);
    }
    const dir = stringFlag(flags, "dir") ?? section?.dir;
    const logLevel: LogLevel = flags.verbose ? "info" : "warn";
    let dev;
    try {
      dev = await startDev({ port, dir, validityMs, logLevel });
    } catch (err) {
      if (err instanceof Deno.errors.AddrInUse) {
        throw new UsageError(
          `Cannot start sigil dev: port ${port}, ${port + 1} or ${
            port + 2
          } is in use; pick another with --port`,
        );
      }
      throw err;
    }
    console.log(
      summary(dev.info, validityText ?? formatDuration(validityMs), !dir),
    );
    // Ctrl-C, SIGTERM, or SIGHUP (the terminal went away) stop it cleanly.
    const signals = watchSignals();
    const hangup = Promise.withResolvers<void>();
    signals.onReload(() => hangup.resolve());
    const stopped = Promise.race([signals.stopped, hangup.promise]).then(() => {
      console.log(
        `\nStopping: unregistering routes, draining${
          dir ? "" : ", removing temporary state"
        }...`,
      );
      return dev.close().catch(() => {});
    });
    if (flags.misroute) {
      try {
        const r = await demonstrateMisroute(dev);
        console.log(
          [
            ``,
            `Route integrity demo (--misroute):`,
            `  Registered a stale endpoint ${r.stale.address} for hello.localhost that claims to be`,
            `  ${r.stale.claims} but is really ${r.stale.actually}.`,
            `  Sent ${r.requests} requests to hello.localhost:`,
            ...Object.entries(r.answeredBy).map(([k, n]) => `    ${n} x ${k}`),
            `  Requests that reached app "other": ${r.reachedOther}`,
            `  Router refused the stale endpoint's certificate ${r.invalidIdCount} time(s) (backend_invalid_id)`,
            `  Stale endpoint pruned from the route table: ${
              r.pruned ? "yes" : "no"
            }`,
          ].join("\n"),
        );
      } catch (err) {
        console.error(`sigil dev: misroute demo failed: ${describeError(err)}`);
      }
    }
    await stopped;
    signals.release();
    console.log("Stopped.");
    return 0;
  },
}];
