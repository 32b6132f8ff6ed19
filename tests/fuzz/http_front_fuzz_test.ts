/**
 * Property tests of the router's HTTP front over real sockets: requests with
 * random header names, values and sizes (valid tokens, control bytes, CR/LF
 * inside values, obs-fold, 64 KiB values, many headers) sent as raw bytes to
 * a running router. Each gets a status line within 10 s (or a close), never
 * a 5xx, and the router keeps serving a normal request after it. Headers
 * that are valid HTTP reach the backend unchanged. RFC 9110 §5.1 (field
 * names are tokens) and §5.5 (values), as gorouter's Go net/http enforces.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { startTestRouter } from "../router/_helpers.ts";
import { params } from "./_fuzz.ts";

const HOST = "fuzz-front.example.com";
const TCHAR =
  "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/** A header field name: usually a token, sometimes not. */
const name = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.string({
      unit: fc.constantFrom(...TCHAR),
      minLength: 1,
      maxLength: 40,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.string({ unit: "binary-ascii", minLength: 0, maxLength: 20 }),
  },
);
/** A header value: usually visible ASCII, sometimes control bytes or huge. */
const value = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.string({
      unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) =>
        String.fromCharCode(c)
      ),
      maxLength: 80,
    }),
  },
  { weight: 1, arbitrary: fc.string({ unit: "binary-ascii", maxLength: 40 }) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 1, max: 64 }).map((k) => "v".repeat(k * 1024)),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "a\r\n folded",
      "x\ry",
      "x\ny",
      "\u0000",
      " lead",
      "trail ",
      "é",
    ),
  },
);
const headers = fc.array(fc.tuple(name, value), { maxLength: 30 });

/** Whether a header line is valid HTTP/1.1 (token name, visible value). */
function valid([n, v]: [string, string]): boolean {
  return /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(n) &&
    /^[\x21-\x7e]*$/.test(v);
}

/** Sends raw bytes; resolves with the status code, or 0 when closed without one. */
async function send(port: number, raw: Uint8Array): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const timer = setTimeout(() => conn.close(), 10_000);
  let timedOut = true;
  try {
    await conn.write(raw).catch(() => {});
    const buf = new Uint8Array(256);
    let head = "";
    while (!head.includes("\r\n")) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) {
        timedOut = false;
        return 0;
      }
      head += new TextDecoder().decode(buf.subarray(0, n));
    }
    timedOut = false;
    return Number(/^HTTP\/1\.[01] (\d{3}) /.exec(head)?.[1] ?? -1);
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // closed by the timer
    }
    assert.ok(!timedOut, "no answer and no close within 10 s");
  }
}

/** A router with one route to a backend that remembers the last request's headers. */
async function routerWithBackend(overrides: { max_header_kb?: number } = {}) {
  const t = await startTestRouter(overrides);
  const seen: { headers?: Headers } = {};
  const backend = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) => {
      seen.headers = req.headers;
      return new Response("ok\n");
    },
  );
  t.router.apply("register", {
    host: "127.0.0.1",
    port: backend.addr.port,
    uris: [HOST],
  });
  return {
    port: t.router.port,
    /** Headers of the last request the backend got, then forgets them. */
    takeHeaders(): Headers | undefined {
      const h = seen.headers;
      seen.headers = undefined;
      return h;
    },
    async close() {
      await backend.shutdown();
      await t.close();
    },
  };
}

Deno.test("fuzz router front: random header names, values and sizes get an answer (never 5xx), valid headers reach the backend unchanged, and the router keeps serving", async () => {
  const r = await routerWithBackend();
  try {
    await fc.assert(
      fc.asyncProperty(headers, async (hs) => {
        r.takeHeaders();
        const lines = hs.map(([n, v]) => `${n}: ${v}\r\n`).join("");
        const raw = new TextEncoder().encode(
          `GET / HTTP/1.1\r\nHost: ${HOST}\r\n${lines}Connection: close\r\n\r\n`,
        );
        const status = await send(r.port, raw);
        assert.ok(
          status === 0 || (status >= 200 && status < 500),
          `status ${status}`,
        );
        if (hs.every(valid) && raw.length < 60_000) {
          assert.equal(status, 200, "a valid request is routed");
        }
        const saw = r.takeHeaders();
        if (status === 200 && hs.every(valid)) {
          for (const [n, v] of hs.filter(valid)) {
            const lower = n.toLowerCase();
            if (
              /^(connection|keep-alive|te|trailer|transfer-encoding|upgrade|proxy-.*|x-forwarded-.*|x-request-start|x-vcap-request-id|x-cf-.*|b3|x-b3-.*|traceparent|tracestate|host|content-length|expect|forwarded|x-real-ip)$/
                .test(lower)
            ) continue;
            assert.ok(
              saw?.get(n)?.split(", ").includes(v),
              `backend saw ${n}: ${v}`,
            );
          }
        }
        const ok = await send(
          r.port,
          new TextEncoder().encode(
            `GET / HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`,
          ),
        );
        assert.equal(ok, 200, "the router still serves");
      }),
      params(),
    );
  } finally {
    await r.close();
  }
});

Deno.test("fuzz router front: header blocks around max_header_kb are routed below the limit and refused with 4xx above it, never 5xx", async () => {
  const r = await routerWithBackend({ max_header_kb: 8 });
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 6000 }), {
          minLength: 1,
          maxLength: 6,
        }),
        async (sizes) => {
          const lines = sizes.map((n, i) => `x-big-${i}: ${"b".repeat(n)}\r\n`)
            .join("");
          const head =
            `GET / HTTP/1.1\r\nHost: ${HOST}\r\n${lines}Connection: close\r\n\r\n`;
          const status = await send(
            r.port,
            new TextEncoder().encode(head),
          );
          if (head.length < 6 * 1024) assert.equal(status, 200);
          if (head.length > 10 * 1024) {
            assert.ok([0, 400, 431].includes(status), `status ${status}`);
          }
          assert.ok(status < 500, `status ${status}`);
        },
      ),
      params(0.5),
    );
  } finally {
    await r.close();
  }
});
