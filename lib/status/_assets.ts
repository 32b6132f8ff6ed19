/**
 * The stylesheet and the page script, shipped in the code (no CDN, no build
 * step): served as `/status/style.css` and `/status/page.js`, so the pages
 * can forbid inline scripts and styles in their Content-Security-Policy.
 * @module
 */
import { formatSpan } from "./_format.ts";

/** Light and dark (prefers-color-scheme), one column on a phone. */
export const STATUS_CSS = `
:root { color-scheme: light dark; --bg: #fff; --fg: #1b1f24; --muted: #59636e;
  --line: #d1d9e0; --head: #f6f8fa; --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --accent: #0969da; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1; --line: #30363d; --head: #161b22;
    --ok: #3fb950; --warn: #d29922; --bad: #f85149; --accent: #4493f8; }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; }
header { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: baseline;
  padding: .75rem 1rem; border-bottom: 1px solid var(--line); background: var(--head); }
header h1 { font-size: 1.1rem; margin: 0; }
header .meta { color: var(--muted); font-size: .85rem; }
main { padding: .5rem 1rem 2rem; max-width: 1400px; }
h2 { font-size: 1rem; margin: 1.5rem 0 .5rem; }
h3 { font-size: .95rem; margin: 1rem 0 .25rem; font-family: ui-monospace, monospace; word-break: break-all; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; width: 100%; font-size: .85rem; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--head); font-weight: 600; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .85em; word-break: break-all; }
.muted { color: var(--muted); }
.empty { color: var(--muted); font-style: italic; }
.state { display: inline-block; padding: 0 .45rem; border-radius: 1rem; border: 1px solid currentColor; white-space: nowrap; }
.state-healthy, .state-registered, .state-connected, .state-issued { color: var(--ok); }
.state-cooling-down, .state-probing, .state-stale, .state-pending, .soon { color: var(--warn); }
.state-pruned, .state-failing, .state-disconnected, .state-refused, .expired { color: var(--bad); }
form.filter { display: flex; gap: .5rem; flex-wrap: wrap; margin: .75rem 0; }
form.filter input { font: inherit; padding: .3rem .5rem; min-width: 14rem; color: var(--fg);
  background: var(--bg); border: 1px solid var(--line); border-radius: 4px; }
form.filter button, form.filter a { font: inherit; padding: .3rem .75rem; border-radius: 4px;
  border: 1px solid var(--line); background: var(--head); color: var(--fg); text-decoration: none; }
a { color: var(--accent); }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: .25rem 0; }
dl.kv dt { color: var(--muted); }
dl.kv dd { margin: 0; }
@media (max-width: 640px) {
  main { padding: .25rem .5rem 1.5rem; }
  table.cards thead { display: none; }
  table.cards, table.cards tbody, table.cards tr, table.cards td { display: block; width: 100%; }
  table.cards tr { border: 1px solid var(--line); border-radius: 6px; margin: .5rem 0; padding: .25rem 0; }
  table.cards td { border: 0; padding: .15rem .6rem; text-align: left; }
  table.cards td::before { content: attr(data-label) ": "; color: var(--muted); }
  form.filter input { min-width: 0; flex: 1; }
}
`;

/**
 * Ticks every `[data-until]` (countdown) and `[data-since]` (age) once a
 * second and re-fetches the page every 5 s, swapping in its `<main>`
 * (parsed by DOMParser, which runs no scripts).
 */
export const STATUS_JS = `"use strict";
(() => {
  const formatSpan = ${formatSpan.toString()};
  const tick = () => {
    const now = Date.now();
    for (const el of document.querySelectorAll("[data-until]")) {
      const left = Date.parse(el.dataset.until) - now;
      el.textContent = left < 0 ? "expired " + formatSpan(-left) + " ago" : formatSpan(left);
      el.classList.toggle("expired", left < 0);
      el.classList.toggle("soon", left >= 0 && left < Number(el.dataset.soon || 3600000));
    }
    for (const el of document.querySelectorAll("[data-since]")) {
      el.textContent = formatSpan(now - Date.parse(el.dataset.since)) + " ago";
    }
  };
  const status = (text) => {
    const el = document.getElementById("refresh-state");
    if (el) el.textContent = text;
  };
  const refresh = async () => {
    if (document.hidden) return;
    try {
      const res = await fetch(location.href, { cache: "no-store", credentials: "same-origin" });
      if (!res.ok) return status("refresh failed: HTTP " + res.status);
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      const next = doc.querySelector("main");
      const cur = document.querySelector("main");
      if (next && cur) cur.replaceWith(document.adoptNode(next));
      tick();
      status("updated " + new Date().toLocaleTimeString());
    } catch (err) {
      status("refresh failed: " + err.message);
    }
  };
  tick();
  setInterval(tick, 1000);
  setInterval(refresh, 5000);
})();
`;
