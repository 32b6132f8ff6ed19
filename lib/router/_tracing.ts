/**
 * Trace headers, off unless configured, as routing-release's gorouter:
 * `tracing.enable_w3c` (`handlers/w3c.go`: `traceparent` continued with a new
 * parent id or started, `tracestate` with the router's entry first) and
 * `tracing.enable_zipkin` (`handlers/zipkin.go`: B3 headers kept, completed
 * with the single `b3` header, or started). Off, the client's trace headers
 * pass through untouched.
 * @module
 */
import { traceparent } from "./_headers.ts";

/** `router.tracing` resolved. */
export interface TracingSettings {
  w3c: boolean;
  zipkin: boolean;
  /** `w3c_tenant_id`: the tracestate key is `<tenant>@gorouter`. */
  w3cTenantId: string;
}

/** The trace headers a client sent (lowercased names). */
export interface IncomingTrace {
  traceparent?: string;
  tracestate?: string;
  b3?: string;
  b3TraceId?: string;
  b3SpanId?: string;
  b3ParentSpanId?: string;
  b3Sampled?: string;
  b3Flags?: string;
}

/** The tracestate vendor key gorouter writes (so a mixed fleet agrees). */
const VENDOR = "gorouter";
const HEX16 = /^[0-9a-f]{16}$/;
const HEX16_32 = /^(?:[0-9a-f]{16}|[0-9a-f]{32})$/;
/** B3 single header: trace-span[-sampled[-parent]] (openzipkin b3). */
const B3_SINGLE =
  /^(?:[0-9a-f]{16}|[0-9a-f]{32})-[0-9a-f]{16}(?:-(?:[01d])(?:-[0-9a-f]{16})?)?$|^[01d]$/;

/**
 * Appends the trace headers for the backend to `headers` (flat name/value
 * list). The client's own trace headers were left out of `headers` by the
 * caller when the matching tracing is on, and copied as they came otherwise.
 *
 * @param requestId The request's X-Vcap-Request-Id (a new trace's id).
 */
export function addTraceHeaders(
  headers: string[],
  t: TracingSettings,
  incoming: IncomingTrace,
  requestId: string,
): void {
  if (t.w3c) {
    const tp = traceparent(incoming.traceparent, requestId);
    const parent = tp.slice(36, 52);
    const key = t.w3cTenantId === "" ? VENDOR : `${t.w3cTenantId}@${VENDOR}`;
    const rest = incoming.traceparent !== undefined &&
        tp.slice(3, 35) === incoming.traceparent.slice(3, 35) &&
        incoming.tracestate !== undefined && incoming.tracestate.length <= 2048
      ? incoming.tracestate.split(",").map((e) => e.trim()).filter((e) =>
        e.includes("=") && e.slice(0, e.indexOf("=")) !== key
      )
      : [];
    headers.push(
      "traceparent",
      tp,
      "tracestate",
      [`${key}=${parent}`, ...rest].join(","),
    );
  }
  if (t.zipkin) {
    const b3 = incoming.b3?.toLowerCase();
    if (b3 !== undefined && B3_SINGLE.test(b3)) {
      pushB3Multi(headers, incoming);
      headers.push("b3", incoming.b3!);
      return;
    }
    const trace = incoming.b3TraceId?.toLowerCase();
    const span = incoming.b3SpanId?.toLowerCase();
    if (
      trace !== undefined && span !== undefined && HEX16_32.test(trace) &&
      HEX16.test(span)
    ) {
      pushB3Multi(headers, incoming);
      let single = `${trace}-${span}`;
      const sampled = incoming.b3Flags === "1"
        ? "d"
        : incoming.b3Sampled === "1" || incoming.b3Sampled === "true"
        ? "1"
        : incoming.b3Sampled === "0" || incoming.b3Sampled === "false"
        ? "0"
        : "";
      if (sampled !== "") single += `-${sampled}`;
      const parent = incoming.b3ParentSpanId?.toLowerCase();
      if (sampled !== "" && parent !== undefined && HEX16.test(parent)) {
        single += `-${parent}`;
      }
      headers.push("b3", single);
      return;
    }
    const newTrace = requestId.replaceAll("-", "");
    const newSpan = newTrace.slice(16);
    headers.push(
      "x-b3-traceid",
      newTrace,
      "x-b3-spanid",
      newSpan,
      "b3",
      `${newTrace}-${newSpan}`,
    );
  }
}

/** The client's B3 multi headers, forwarded as they came. */
function pushB3Multi(headers: string[], i: IncomingTrace): void {
  const pairs: Array<[string, string | undefined]> = [
    ["x-b3-traceid", i.b3TraceId],
    ["x-b3-spanid", i.b3SpanId],
    ["x-b3-parentspanid", i.b3ParentSpanId],
    ["x-b3-sampled", i.b3Sampled],
    ["x-b3-flags", i.b3Flags],
  ];
  for (const [name, value] of pairs) {
    if (value !== undefined) headers.push(name, value);
  }
}
