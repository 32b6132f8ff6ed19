import assert from "node:assert/strict";
import { parseConfig } from "../../lib/config/mod.ts";

const SECTIONS = {
  ca: "ca:\n  dir: /var/lib/sigil/ca\n",
  rotator:
    "rotator:\n  ca_url: https://ca:8443\n  ca_bundle: /b.pem\n  token_file: /t\n  instances: []\n",
  proxy:
    "proxy:\n  instances:\n    - id: i-1\n      mode: tls\n      credentials_dir: /c\n      listeners: [{ listen: 127.0.0.1:61001, app: 127.0.0.1:8080 }]\n",
  router: "router:\n  api:\n    public_key_file: /k.jwk\n",
  credhub:
    "credhub:\n  database: /d\n  keys_dir: /k\n  tls_cert_file: /c\n  tls_key_file: /k\n  trusted_cas_file: /t\n  public_key_file: /p\n",
} as const;

Deno.test("every role has log_level: default info, debug..error accepted, anything else refused naming the setting", () => {
  for (const [role, yaml] of Object.entries(SECTIONS)) {
    const cfg = parseConfig(yaml, "sigil.yaml") as Record<
      string,
      { log_level?: string }
    >;
    assert.equal(cfg[role]?.log_level, "info", role);
    const warn = parseConfig(
      yaml.replace(`${role}:\n`, `${role}:\n  log_level: warn\n`),
      "sigil.yaml",
    ) as Record<string, { log_level?: string }>;
    assert.equal(warn[role]?.log_level, "warn", role);
    assert.throws(
      () =>
        parseConfig(
          yaml.replace(`${role}:\n`, `${role}:\n  log_level: verbose\n`),
          "sigil.yaml",
        ),
      (err: Error) => {
        assert.match(err.message, new RegExp(`${role}\\.log_level`));
        return true;
      },
      role,
    );
  }
});
