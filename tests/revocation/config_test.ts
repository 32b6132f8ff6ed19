import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../../lib/config/mod.ts";

const proxy = (crl: string) =>
  [
    "proxy:",
    crl,
    "  instances:",
    "    - credentials_dir: /tmp/none",
    "      mode: tls",
    "      listeners:",
    "        - listen: 127.0.0.1:61001",
    "          app: 127.0.0.1:8080",
    "",
  ].join("\n");

Deno.test("proxy.crl and router.backends.crl: refresh defaults to 1m; a plain-http remote URL and a refresh under 1s are refused by name", () => {
  const ok = parseConfig(
    proxy("  crl:\n    url: https://ca.internal:8443/v1/crl.pem"),
  );
  assert.equal(ok.proxy?.crl?.refresh, 60_000);
  assert.equal(ok.proxy?.crl?.timeout, 10_000);
  const router = parseConfig(
    "router:\n  api:\n    enabled: false\n  backends:\n    crl:\n      url: http://127.0.0.1:8443/v1/crl.pem\n      refresh: 5s\n",
  );
  assert.equal(router.router?.backends.crl?.refresh, 5_000);
  assert.throws(
    () => parseConfig(proxy("  crl:\n    url: http://ca.internal/v1/crl.pem")),
    (e: unknown) =>
      e instanceof ConfigError &&
      /proxy\.crl\.url: must be an https:\/\/ URL/.test(e.message),
  );
  assert.throws(
    () =>
      parseConfig(
        proxy(
          "  crl:\n    url: https://ca.internal/v1/crl.pem\n    refresh: 10ms",
        ),
      ),
    (e: unknown) =>
      e instanceof ConfigError &&
      /proxy\.crl\.refresh: must be at least 1s/.test(e.message),
  );
});
