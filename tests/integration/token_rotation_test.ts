/**
 * The cell-token rotation procedure of deploy/README.md ("Rotating a cell
 * token"), run against a live rotator: mint the next token, move it over the
 * old file, and the rotator signs with it from its next request on, without
 * a restart; its expiry gauge and warning follow the new token.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { mintToken } from "../../lib/ca/mod.ts";
import { RotatorSection } from "../../lib/config/mod.ts";
import { createLogger } from "../../lib/observe/mod.ts";
import { startRotator } from "../../lib/rotator/mod.ts";
import {
  cellGrant,
  oneInstanceRotator,
  startTestCa,
  writeToken,
} from "./_ca.ts";

Deno.test("a cell token replaced on disk is used by the running rotator at once (no restart)", async () => {
  const dir = await Deno.makeTempDir();
  const caLines: Array<Record<string, unknown>> = [];
  const { store, ca, bundle } = await startTestCa(dir, {
    sink: (l) => caLines.push(JSON.parse(l)),
  });
  const grant = (subject: string) => cellGrant(subject, ["127.0.0.0/8"]);
  const tokenFile = join(dir, "cell-7.jwt");
  // The old token: 1 h left, inside the 7 d warning window.
  await writeToken(
    tokenFile,
    await mintToken(store, grant("cell-7"), { ttlMs: 3600_000 }),
  );
  const lines: Array<Record<string, unknown>> = [];
  const rotator = await startRotator(
    RotatorSection.parse(
      oneInstanceRotator(ca, { bundle, tokenFile, dir }),
    ),
    {
      logger: createLogger("rotator", {
        sink: (l) => lines.push(JSON.parse(l)),
      }),
    },
  );
  const tokenGauge = async () => {
    const res = await fetch(
      `http://127.0.0.1:${rotator.metricsAddress!.port}/metrics`,
    );
    const m = /^sigil_rotator_token_not_after_timestamp_seconds (\d+)$/m.exec(
      await res.text(),
    );
    return Number(m?.[1]);
  };
  try {
    await rotator.ready();
    const callers = () =>
      caLines.filter((l) => l.event === "cert-issued").map((l) => l.caller);
    assert.deepEqual(callers(), ["cell-7"]);
    assert.ok(
      lines.some((l) =>
        l.event === "credential-expiring" && l.credential === "cell-token"
      ),
    );
    const oldExp = await tokenGauge();

    // The procedure: mint the next token, write it beside the old one with
    // mode 0600, rename it over the old file (atomic: no torn read).
    const next = await mintToken(store, grant("cell-7-next"), {
      ttlMs: 720 * 3600_000,
    });
    const tmp = `${tokenFile}.new`;
    await Deno.writeTextFile(tmp, next + "\n", { mode: 0o600 });
    await Deno.rename(tmp, tokenFile);

    assert.deepEqual(await rotator.renewAll(), []);
    assert.deepEqual(callers(), ["cell-7", "cell-7-next"]);
    const newExp = await tokenGauge();
    assert.ok(
      Math.abs(newExp - (Math.floor(Date.now() / 1000) + 720 * 3600)) <= 5 &&
        newExp > oldExp,
      `gauge follows the new token (${oldExp} -> ${newExp})`,
    );
    assert.equal(
      lines.filter((l) => l.event === "rotator-started").length,
      1,
      "the same rotator, not restarted",
    );
  } finally {
    await rotator.close();
    await ca.close();
    await Deno.remove(dir, { recursive: true });
  }
});
