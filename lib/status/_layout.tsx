/**
 * The frame every status page shares, and small components (countdown,
 * age, state badge, certificate table). Text goes through JSX, which escapes
 * it: route names, tags and app ids are attacker-supplied.
 * @module
 */
import type { Child } from "hono/jsx";
import { formatSpan } from "./_format.ts";
import type { CertSummary } from "./_types.ts";

/** Props of {@linkcode Page}. */
export interface PageProps {
  title: string;
  /** ISO time the data was taken. */
  time: string;
  children?: Child;
}

/** The whole document: header, `<main>` (swapped on refresh), script. */
export function Page(props: PageProps) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="color-scheme" content="light dark" />
        <title>{props.title}</title>
        <link rel="stylesheet" href="/status/style.css" />
      </head>
      <body>
        <header>
          <h1>{props.title}</h1>
          <span class="meta">
            as of <time datetime={props.time}>{props.time}</time>
          </span>
          <span class="meta" id="refresh-state">refreshes every 5 s</span>
          <span class="meta">
            <a href="/status.json">JSON</a>
          </span>
        </header>
        <main>{props.children}</main>
        <script src="/status/page.js" defer></script>
      </body>
    </html>
  );
}

/** Time left until `until` (ISO), ticking in the browser. */
export function Countdown(
  props: { until: string; now: string; soonMs?: number },
) {
  const left = Date.parse(props.until) - Date.parse(props.now);
  const soon = props.soonMs ?? 3_600_000;
  return (
    <span
      class={left < 0
        ? "countdown expired"
        : left < soon
        ? "countdown soon"
        : "countdown"}
      data-until={props.until}
      data-soon={String(soon)}
      title={props.until}
    >
      {left < 0 ? `expired ${formatSpan(-left)} ago` : formatSpan(left)}
    </span>
  );
}

/** Age of `since` (ISO), ticking in the browser. */
export function Since(props: { since: string; now: string }) {
  if (props.since === "") return <span class="muted">never</span>;
  const age = Date.parse(props.now) - Date.parse(props.since);
  return (
    <span class="since" data-since={props.since} title={props.since}>
      {formatSpan(age)} ago
    </span>
  );
}

/** A coloured state word. */
export function State(props: { state: string }) {
  return (
    <span class={`state state-${props.state.replaceAll(" ", "-")}`}>
      {props.state}
    </span>
  );
}

/** A table cell labelled for the one-column phone layout. */
export function Td(props: { label: string; num?: boolean; children?: Child }) {
  return (
    <td data-label={props.label} class={props.num ? "num" : undefined}>
      {props.children}
    </td>
  );
}

/** A section with a "nothing here" line when `empty`. */
export function Section(
  props: { title: string; empty: boolean; none: string; children?: Child },
) {
  return (
    <section>
      <h2>{props.title}</h2>
      {props.empty ? <p class="empty">{props.none}</p> : props.children}
    </section>
  );
}

/** Certificates with serial, identity and a countdown to not-after. */
export function CertTable(props: { certs: CertSummary[]; now: string }) {
  return (
    <div class="scroll">
      <table class="cards certs">
        <thead>
          <tr>
            <th>For</th>
            <th>Identity</th>
            <th>Serial</th>
            <th>Not after</th>
            <th>Time left</th>
          </tr>
        </thead>
        <tbody>
          {props.certs.map((c) => (
            <tr data-serial={c.serial}>
              <Td label="For">{c.role}</Td>
              <Td label="Identity">
                <code>{c.identity || c.subject}</code>
              </Td>
              <Td label="Serial">
                <code>{c.serial}</code>
              </Td>
              <Td label="Not after">{c.not_after}</Td>
              <Td label="Time left">
                <Countdown until={c.not_after} now={props.now} />
              </Td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
