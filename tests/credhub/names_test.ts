/**
 * Credential names are matched without case, as CredHub matches them (its
 * `name_lowercase` column: CredentialRepository.kt `findOneByNameIgnoreCase`,
 * migration V60__add_lowercase_credential_name_column.sql): a new version
 * joins the credential under its first name; get, find by path, and delete
 * ignore case.
 * @module
 */
import assert from "node:assert/strict";
import { credhubCall, startTestCredhub } from "../_helpers/credhub.ts";

Deno.test("credhub: names are case-insensitive (set, get, versions, find by path, delete)", async () => {
  const t = await startTestCredhub();
  try {
    const token = await t.token("credhub.write credhub.read");
    const ca = t.pki.rootPem;
    const call = (method: string, path: string, body?: unknown) =>
      credhubCall(t.ch.url, method, path, { token, ca, body });
    const id = crypto.randomUUID();
    const first = `/c/Broker/${id}/Creds`;
    const set1 = await call("PUT", "/api/v1/data", {
      name: first,
      type: "value",
      value: "one",
    });
    assert.equal(set1.status, 200);
    const set2 = await call("PUT", "/api/v1/data", {
      name: first.toUpperCase(),
      type: "value",
      value: "two",
    });
    assert.equal(set2.status, 200);
    assert.equal(set2.body.name, first, "a new version keeps the first name");

    const got = await call("GET", `/api/v1/data?name=${first.toLowerCase()}`);
    assert.equal(got.status, 200);
    assert.equal(got.body.data.length, 2);
    assert.deepEqual(got.body.data.map((v: { value: string }) => v.value), [
      "two",
      "one",
    ]);
    assert.equal(got.body.data[0].name, first);

    const found = await call("GET", `/api/v1/data?path=/C/BROKER/${id}`);
    assert.equal(found.status, 200);
    assert.deepEqual(
      found.body.credentials.map((c: { name: string }) => c.name),
      [first],
    );

    const del = await call(
      "DELETE",
      `/api/v1/data?name=${first.toLowerCase()}`,
    );
    assert.equal(del.status, 204);
    const gone = await call("GET", `/api/v1/data?name=${first}`);
    assert.equal(gone.status, 404);
  } finally {
    await t.close();
  }
});
