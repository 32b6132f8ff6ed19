/**
 * JSON shapes of CredHub's views (`CredentialView` and subclasses,
 * `FindCredentialResults`, `PermissionsV2View`), field order included.
 * @module
 */
import type { CredentialVersion, Permission } from "./_store.ts";
import { certificateFacts } from "./_shapes.ts";

/** CredHub's timestamp: `yyyy-MM-dd'T'HH:mm:ss'Z'` (TimeModuleFactory.kt: no milliseconds). */
export function credhubTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(
    ".000Z",
    "Z",
  );
}

/** A `CredentialView`: type, version_created_at, id, name, metadata, value. */
export function credentialView(v: CredentialVersion): Record<string, unknown> {
  const view: Record<string, unknown> = {
    type: v.type,
    version_created_at: credhubTime(v.createdAt),
    id: v.id,
    name: v.name,
    metadata: v.metadata ?? null,
    value: v.value,
  };
  if (v.type === "certificate") {
    // CertificateView: set certificates are never `generated`, and Sigil has
    // no transitional versions.
    const facts = certificateFacts(v.value);
    view.expiry_date = facts.expiryDate
      ? credhubTime(facts.expiryDate.getTime())
      : null;
    view.certificate_authority = facts.certificateAuthority;
    view.self_signed = facts.selfSigned;
    view.generated = false;
    view.transitional = false;
  }
  return view;
}

/** A `PermissionsV2View`. */
export function permissionView(p: Permission): Record<string, unknown> {
  return {
    path: p.path,
    operations: p.operations,
    actor: p.actor,
    uuid: p.uuid,
  };
}
