// The retry/answer table of lib/router/_decide.ts, row by row, in the manner
// of gorouter's proxy/fails/classifier_group_test.go (which failures are
// retriable, which prunable) and the retry checks of
// proxy/round_tripper/proxy_round_tripper.go (idempotent requests without a
// body may be retried after a reset; anything else only before a request
// byte could reach the backend).
import assert from "node:assert/strict";
import { decide } from "../../lib/router/_decide.ts";
import type { FailureFacts, RequestFacts } from "../../lib/router/_decide.ts";

const GET: RequestFacts = {
  method: "GET",
  hasBody: false,
  idempotencyKey: false,
  websocket: false,
  maxAttempts: 3,
  shuttingDown: false,
};
const POST: RequestFacts = { ...GET, method: "POST", hasBody: true };
const PUT_BODY: RequestFacts = { ...GET, method: "PUT", hasBody: true };
const DELETE: RequestFacts = { ...GET, method: "DELETE" };
const POST_EMPTY: RequestFacts = { ...GET, method: "POST" };
const POST_KEYED: RequestFacts = { ...POST_EMPTY, idempotencyKey: true };
const POST_KEYED_BODY: RequestFacts = { ...POST, idempotencyKey: true };
const WS: RequestFacts = { ...GET, websocket: true };
const STOPPING: RequestFacts = { ...GET, shuttingDown: true };

type Row = [
  name: string,
  failure: FailureFacts,
  attempt: number,
  request: RequestFacts,
  next: "retry" | "answer",
  endpoint: "prune" | "cooldown" | "keep",
  status: number,
];

const TABLE: Row[] = [
  // Before any request byte: always safe to retry; TLS endpoints pruned.
  [
    "dial, TLS",
    { kind: "dial", phase: "dial", tls: true },
    0,
    POST,
    "retry",
    "prune",
    502,
  ],
  [
    "dial, plain",
    { kind: "dial", phase: "dial", tls: false },
    0,
    POST,
    "retry",
    "cooldown",
    502,
  ],
  [
    "identity mismatch",
    { kind: "identity", phase: "handshake", tls: true },
    0,
    POST,
    "retry",
    "prune",
    503,
  ],
  [
    "untrusted certificate",
    { kind: "untrusted", phase: "handshake", tls: true },
    1,
    POST,
    "retry",
    "prune",
    526,
  ],
  [
    "handshake failure",
    { kind: "handshake", phase: "handshake", tls: true },
    0,
    WS,
    "retry",
    "prune",
    525,
  ],
  [
    "reset during the handshake",
    { kind: "handshake", phase: "handshake", tls: true },
    0,
    GET,
    "retry",
    "prune",
    525,
  ],
  // Out of attempts: answer with the last failure's status.
  [
    "last attempt, dial",
    { kind: "dial", phase: "dial", tls: true },
    2,
    GET,
    "answer",
    "prune",
    502,
  ],
  [
    "last attempt, identity",
    { kind: "identity", phase: "handshake", tls: true },
    2,
    POST,
    "answer",
    "prune",
    503,
  ],
  [
    "one attempt allowed",
    { kind: "dial", phase: "dial", tls: false },
    0,
    { ...GET, maxAttempts: 1 },
    "answer",
    "cooldown",
    502,
  ],
  // After the request was sent: only idempotent, bodiless HTTP requests
  // that got a reset or no answer are retried.
  [
    "GET reset after send",
    { kind: "reset", phase: "sent", tls: true },
    0,
    GET,
    "retry",
    "cooldown",
    502,
  ],
  // proxy_round_tripper.go isIdempotent (Go's isReplayable): not DELETE/PUT.
  [
    "DELETE closed after send",
    { kind: "other", phase: "sent", tls: true },
    0,
    DELETE,
    "answer",
    "cooldown",
    502,
  ],
  // proxy_round_tripper_test.go "Idempotency-Key header: attempts retry".
  [
    "bodiless POST with Idempotency-Key reset after send",
    { kind: "reset", phase: "sent", tls: true },
    0,
    POST_KEYED,
    "retry",
    "cooldown",
    502,
  ],
  [
    "POST with a body and Idempotency-Key reset after send",
    { kind: "reset", phase: "sent", tls: true },
    0,
    POST_KEYED_BODY,
    "answer",
    "cooldown",
    502,
  ],
  [
    "POST reset after send",
    { kind: "reset", phase: "sent", tls: true },
    0,
    POST,
    "answer",
    "cooldown",
    502,
  ],
  [
    "bodiless POST reset after send",
    { kind: "reset", phase: "sent", tls: false },
    0,
    POST_EMPTY,
    "answer",
    "cooldown",
    502,
  ],
  [
    "PUT with a body reset after send",
    { kind: "reset", phase: "sent", tls: true },
    0,
    PUT_BODY,
    "answer",
    "cooldown",
    502,
  ],
  [
    "GET timed out after send",
    { kind: "timeout", phase: "sent", tls: true },
    0,
    GET,
    "answer",
    "cooldown",
    504,
  ],
  [
    "WebSocket refused mid-answer",
    { kind: "reset", phase: "sent", tls: true },
    0,
    WS,
    "answer",
    "cooldown",
    502,
  ],
  // A body that broke off after the response head: 502, never a retry, no blame.
  [
    "body broke off",
    { kind: "reset", phase: "response", tls: true },
    0,
    GET,
    "answer",
    "keep",
    502,
  ],
  // The router's own shutdown cut it: not the endpoint's fault.
  [
    "shutdown cut the dial",
    { kind: "dial", phase: "dial", tls: true },
    0,
    STOPPING,
    "answer",
    "keep",
    502,
  ],
  [
    "shutdown cut the response",
    { kind: "reset", phase: "sent", tls: true },
    0,
    STOPPING,
    "answer",
    "keep",
    502,
  ],
];

for (const [name, failure, attempt, request, next, endpoint, status] of TABLE) {
  Deno.test(`decide(): ${name} → ${next}, endpoint ${endpoint}, ${status}`, () => {
    assert.deepEqual(decide(failure, attempt, request), {
      next,
      endpoint,
      status,
    });
  });
}

Deno.test("decide(): every failure kind before the request was sent is retried while attempts remain", () => {
  const kinds = [
    "dial",
    "identity",
    "untrusted",
    "handshake",
    "reset",
    "timeout",
    "other",
  ] as const;
  for (const kind of kinds) {
    for (const phase of ["dial", "handshake"] as const) {
      for (let attempt = 0; attempt < 3; attempt++) {
        const d = decide({ kind, phase, tls: true }, attempt, POST);
        assert.equal(
          d.next,
          attempt < 2 ? "retry" : "answer",
          `${kind} in ${phase}, attempt ${attempt}`,
        );
      }
    }
  }
});
