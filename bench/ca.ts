/**
 * CA issuance benchmark (not a test). Prints a table:
 * - certificates/s through `POST /v1/sign` on a real `sigil ca serve` process
 *   (P-256 CSRs, keep-alive, concurrency 16);
 * - this runtime's in-process ceiling: one CSR verify + one P-256 certificate
 *   signature per issuance (WebCrypto);
 * - `openssl speed ecdsap256` for context.
 *
 * Run: `deno run -A bench/ca.ts [--seconds 10]`
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import {
  createCsr,
  generateKeyPair,
  issueInstanceCertificate,
  verifyCsr,
} from "../lib/pki/mod.ts";
import { initCa, mintToken } from "../lib/ca/mod.ts";
import { signRequestBody } from "../lib/rotator/mod.ts";
import { SigilProcess } from "../tests/_helpers/proc.ts";
import { runWrk } from "./_lib/wrk.ts";
import {
  postgresUnavailable,
  startPostgres,
} from "../tests/_helpers/postgres.ts";
import type { PostgresCluster } from "../tests/_helpers/postgres.ts";

const { values } = parseArgs({
  options: { seconds: { type: "string", default: "10" } },
});
const seconds = Number(values.seconds);
const CONCURRENCY = 16;

async function rawCeiling(ms: number) {
  // The runtime's ceiling: one CSR signature verify plus one P-256 sign, raw WebCrypto.
  const keys = await generateKeyPair();
  const alg = { name: "ECDSA", hash: "SHA-256" };
  const tbs = crypto.getRandomValues(new Uint8Array(400));
  const sig = await crypto.subtle.sign(alg, keys.privateKey, tbs);
  let n = 0;
  const end = performance.now() + ms;
  while (performance.now() < end) {
    await crypto.subtle.verify(alg, keys.publicKey, sig, tbs);
    await crypto.subtle.sign(alg, keys.privateKey, tbs);
    n++;
  }
  return n / (ms / 1000);
}

async function pipelineRate(ms: number, concurrency: number) {
  // What the CA's code does per certificate, in process: parse + verify the CSR, build + sign.
  const dir = await Deno.makeTempDir();
  const store = await initCa(join(dir, "ca"));
  const csr = await createCsr(await generateKeyPair());
  const id = {
    instanceId: "bench-i",
    app: "a",
    space: "s",
    org: "o",
    ips: ["10.0.0.1"],
  };
  let n = 0;
  const end = performance.now() + ms;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      const v = await verifyCsr(csr);
      await issueInstanceCertificate(v.publicKey, id, store.issuer, {
        trustDomain: "t",
        validityMs: 86_400_000,
      });
      n++;
    }
  }));
  await Deno.remove(dir, { recursive: true });
  return n / (ms / 1000);
}

/**
 * POST /v1/sign through `replicas` CA processes sharing `pg` (or one on
 * SQLite), CONCURRENCY connections in all, split between the replicas.
 */
async function apiRate(
  seconds: number,
  options: { pg?: PostgresCluster; replicas?: number } = {},
) {
  const replicas = options.replicas ?? 1;
  const dir = await Deno.makeTempDir();
  const caDir = join(dir, "ca");
  const store = await initCa(caDir);
  const token = await mintToken(store, {
    subject: "bench",
    scopes: ["cert.issue"],
    apps: ["*"],
    spaces: ["*"],
    orgs: ["*"],
    cidrs: ["10.0.0.0/8"],
  });
  const storeYaml = options.pg
    ? `  store:\n    url: ${options.pg.url}\n    password_file: ${options.pg.passwordFile}\n`
    : "";
  await Deno.writeTextFile(
    join(dir, "sigil.yaml"),
    `ca:\n  dir: ${caDir}\n  listen: "127.0.0.1:0"\n  rate_limit:\n    per_second: 1000000\n    burst: 1000000\n${storeYaml}`,
  );
  const cas: SigilProcess[] = [];
  const addresses: string[] = [];
  for (let i = 0; i < replicas; i++) {
    const ca = new SigilProcess([
      "ca",
      "serve",
      "--config",
      join(dir, "sigil.yaml"),
    ]);
    cas.push(ca);
    addresses.push(String((await ca.waitForEvent("ca-listening")).address));
  }
  const body = JSON.stringify(signRequestBody({
    csr: await createCsr(await generateKeyPair()),
    instanceId: "bench-1",
    app: "a",
    space: "s",
    org: "o",
    ips: ["10.0.0.1"],
  }));
  const lua = join(dir, "post.lua");
  await Deno.writeTextFile(
    lua,
    `wrk.method = "POST"\nwrk.body = ${JSON.stringify(body)}\n` +
      `wrk.headers["Content-Type"] = "application/json"\nwrk.headers["Authorization"] = "Bearer ${token}"\n`,
  );
  const wrk = (address: string, duration: string) =>
    runWrk(`https://${address}/v1/sign`, {
      duration,
      connections: CONCURRENCY / replicas,
      latency: true,
      script: lua,
    });
  // One second of warm-up (JIT, connection set-up) is not counted, as the
  // in-process rows above run in an already warm process.
  await Promise.all(addresses.map((a) => wrk(a, "1s")));
  const results = await Promise.all(
    addresses.map((a) => wrk(a, `${seconds}s`)),
  );
  for (const ca of cas) await ca.stop();
  await Deno.remove(dir, { recursive: true });
  const failed = results.find((r) => r.non2xx > 0);
  if (failed) {
    throw new Error(`${failed.non2xx} requests failed:\n${failed.text}`);
  }
  const rate = results.reduce((sum, r) => sum + r.rps, 0);
  // Latency of the first replica's share (each wrk reports its own).
  return { rate, p50: results[0]!.p50, p99: results[0]!.p99 };
}

async function opensslSpeed(): Promise<number | undefined> {
  const out = await new Deno.Command("openssl", {
    args: ["speed", "-seconds", "3", "ecdsap256"],
    stdout: "piped",
    stderr: "null",
  }).output();
  const m = /256 bits ecdsa \(nistp256\)\s+[\d.]+s\s+[\d.]+s\s+([\d.]+)/.exec(
    new TextDecoder().decode(out.stdout),
  );
  return m ? Number(m[1]) : undefined;
}

// The machine may be shared: the 1-minute load average before and after the
// run says how much other work competed for the CPUs.
const load1 = () => (Deno.loadavg()[0] ?? 0).toFixed(1);
const loadBefore = load1();
const raw = await rawCeiling(3000);
const pipe1 = await pipelineRate(3000, 1);
const pipe4 = await pipelineRate(3000, 4);
const api = await apiRate(seconds);
// The same load with the ledger (and revocations) in PostgreSQL: one
// replica, then two replicas sharing the database (issue 18).
const noPg = postgresUnavailable();
let pg1: Awaited<ReturnType<typeof apiRate>> | undefined;
let pg2: typeof pg1;
if (!noPg) {
  const pg = await startPostgres();
  try {
    pg1 = await apiRate(seconds, { pg });
    pg2 = await apiRate(seconds, { pg, replicas: 2 });
  } finally {
    await pg[Symbol.asyncDispose]();
  }
}
const ossl = await opensslSpeed();
const ratio = (x: number) => `${(x / raw).toFixed(2)}x`;
const rows: Array<[string, string, string]> = [
  [
    `POST /v1/sign through sigil ca serve (P-256, keep-alive, wrk -c${CONCURRENCY})`,
    `${api.rate.toFixed(0)}/s`,
    `${ratio(api.rate)} (target >= 0.50x)`,
  ],
  ["  latency p50 / p99", `${api.p50} / ${api.p99}`, ""],
  ...(pg1 && pg2
    ? [
      [
        "  same, ledger in PostgreSQL, 1 replica",
        `${pg1.rate.toFixed(0)}/s`,
        `${ratio(pg1.rate)} (${(pg1.rate / api.rate).toFixed(2)}x SQLite)`,
      ] as [string, string, string],
      ["    latency p50 / p99", `${pg1.p50} / ${pg1.p99}`, ""] as [
        string,
        string,
        string,
      ],
      [
        `  same, 2 replicas on one PostgreSQL (wrk -c${CONCURRENCY / 2} each)`,
        `${pg2.rate.toFixed(0)}/s`,
        `${ratio(pg2.rate)} (${(pg2.rate / api.rate).toFixed(2)}x SQLite)`,
      ] as [string, string, string],
      ["    latency p50 / p99 (replica 1)", `${pg2.p50} / ${pg2.p99}`, ""] as [
        string,
        string,
        string,
      ],
    ]
    : [[`  PostgreSQL rows skipped: ${noPg}`, "", ""] as [
      string,
      string,
      string,
    ]]),
  [
    "In-process ceiling: 1 CSR verify + 1 P-256 sign, raw WebCrypto",
    `${raw.toFixed(0)}/s`,
    "1.00x",
  ],
  [
    "In-process CA pipeline (parse+verify CSR, build+sign cert), 1 at a time",
    `${pipe1.toFixed(0)}/s`,
    ratio(pipe1),
  ],
  [
    "In-process CA pipeline, 4 concurrent",
    `${pipe4.toFixed(0)}/s`,
    ratio(pipe4),
  ],
  [
    "openssl speed -seconds 3 ecdsap256 (sign/s, context)",
    ossl ? `${ossl.toFixed(0)}/s` : "n/a",
    ossl ? ratio(ossl) : "",
  ],
];
console.log(
  `CA issuance benchmark, ${
    new Date().toISOString().slice(0, 10)
  }, deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} CPUs, load average ${loadBefore} -> ${load1()}`,
);
console.log("| what | rate | vs raw ceiling |\n|---|---|---|");
for (const r of rows) console.log(`| ${r.join(" | ")} |`);
console.log(
  "SUMMARY " + JSON.stringify([
    [
      "ca",
      "POST /v1/sign (P-256, keep-alive, 16 conns)",
      `${api.rate.toFixed(0)}/s`,
      `${ratio(api.rate)} of raw WebCrypto verify+sign`,
      ">= 0.50x",
    ],
    ...(pg1 && pg2
      ? [
        [
          "ca",
          "POST /v1/sign, ledger in PostgreSQL, 1 replica",
          `${pg1.rate.toFixed(0)}/s`,
          `${(pg1.rate / api.rate).toFixed(2)}x SQLite`,
          "",
        ],
        [
          "ca",
          "POST /v1/sign, 2 replicas on one PostgreSQL",
          `${pg2.rate.toFixed(0)}/s`,
          `${(pg2.rate / api.rate).toFixed(2)}x SQLite`,
          "",
        ],
      ]
      : []),
    [
      "ca",
      "in-process CA pipeline, 4 concurrent",
      `${pipe4.toFixed(0)}/s`,
      ratio(pipe4),
      "",
    ],
  ]),
);
