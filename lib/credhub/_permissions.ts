/**
 * CredHub v2 permissions: entries {actor, path, operations}; a path ending in
 * `/*` covers every name below it; entries add up (CredHub
 * `DefaultPermissionCheckingService`).
 * @module
 */
import type { CredentialStore, Permission } from "./_store.ts";

/**
 * Whether a permission path covers a credential name (or another path).
 * Without case: names are case-insensitive (see CredentialStore), so a path
 * covers a name however either is spelled.
 */
export function pathCovers(path: string, name: string): boolean {
  path = path.toLowerCase();
  name = name.toLowerCase();
  if (path === name) return true;
  if (path === "/*") return true;
  return path.endsWith("/*") && name.startsWith(path.slice(0, -1));
}

/** Whether `actor` may do `operation` on `name`. */
export async function hasPermission(
  store: CredentialStore,
  actor: string,
  name: string,
  operation: string,
  extra: Permission[] = [],
): Promise<boolean> {
  for (const p of [...extra, ...await store.permissions()]) {
    if (
      p.actor === actor && pathCovers(p.path, name) &&
      p.operations.includes(operation)
    ) {
      return true;
    }
  }
  return false;
}
