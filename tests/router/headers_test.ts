import assert from "node:assert/strict";
import { traceparent } from "../../lib/router/_headers.ts";

Deno.test("traceparent() continues a valid trace and restarts on a malformed one", () => {
  const id = "620f303b-25f7-4abf-8d38-9f05b1f43438";
  const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  assert.match(
    traceparent(valid, id),
    /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/,
  );
  // Right length and dashes, but not hex: a new trace from the request id.
  const bogus = "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01";
  assert.match(
    traceparent(bogus, id),
    /^00-620f303b25f74abf8d389f05b1f43438-[0-9a-f]{16}-01$/,
  );
  assert.match(
    traceparent("00-" + "\r\n".repeat(16) + "-00f067aa0ba902b7-01", id),
    /^00-620f303b/,
  );
});
