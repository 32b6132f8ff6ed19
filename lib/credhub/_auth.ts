/**
 * Who is calling: an instance certificate presented in the TLS handshake
 * (chain to the trusted CAs, validity, EKU clientAuth, not on the deny list,
 * OU `app:<v4 uuid>` → `mtls-app:<app-guid>`; CredHub
 * `X509AuthenticationProvider.kt`, `MtlsX509PrincipalExtractor.java`), or a
 * bearer JWT from the CA's token key → `uaa-client:<client_id or sub>`.
 * @module
 */
import * as x509 from "@peculiar/x509";
import { verifyChain } from "../pki/mod.ts";
import { createTokenVerifier, TokenError } from "../token/mod.ts";
import { CredhubError } from "./errors.ts";
import { MSG } from "./_messages.ts";
import type { Principal } from "./_api.ts";

const APP_OU =
  /^app:([0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})$/;
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
const DENY_LIST_REFRESH_MS = 5_000;

const unauthorized = (m: string) =>
  new CredhubError("ERR_CREDHUB_UNAUTHENTICATED", 401, m);
/**
 * A refused bearer token answers in OAuth2's shape, as CredHub's
 * `OAuth2AuthenticationExceptionHandler.kt` does; `access_token_expired` is
 * what the credhub CLI (`credhub/auth/oauth.go` tokenExpired) refreshes on.
 */
const badToken = (error: string, description: string) =>
  new CredhubError("ERR_CREDHUB_UNAUTHENTICATED", 401, description, {
    body: { error, error_description: description },
  });

/** Options of {@linkcode createAuthenticator}. */
export interface AuthOptions {
  trustedCasPem: string;
  /** Path of a deny list (serials, hex, one a line), re-read when it changes. */
  revokedSerialsFile?: string;
  jwksUrl?: string;
  /** PEM bundle trusted when fetching `jwksUrl`. */
  jwksCaPem?: string;
  publicKeyText?: string;
  issuer: string;
  audience: string;
  now?: () => number;
}

/** Turns a peer chain (DER, leaf first) or an Authorization header into a principal. */
export interface Authenticator {
  authenticate(
    chainDer: Uint8Array[],
    authorization?: string,
  ): Promise<Principal>;
}

/** Creates the authenticator. */
export async function createAuthenticator(
  o: AuthOptions,
): Promise<Authenticator> {
  const now = o.now ?? Date.now;
  const tokens = o.jwksUrl || o.publicKeyText
    ? await createTokenVerifier({
      issuer: o.issuer,
      audience: o.audience,
      jwksUrl: o.jwksUrl,
      caBundle: o.jwksCaPem,
      publicKey: o.jwksUrl ? undefined : o.publicKeyText?.trim(),
      requiredClaims: ["exp", "sub"],
    })
    : undefined;
  // The deny list is re-read at most every few seconds, not on every request.
  let denied: { at: number; serials: Set<string> } | undefined;
  const norm = (s: string) =>
    s.trim().toLowerCase().replace(/:/g, "").replace(/^0+/, "");
  const deniedSerials = (): Set<string> => {
    if (denied && now() - denied.at < DENY_LIST_REFRESH_MS) {
      return denied.serials;
    }
    let text = "";
    try {
      text = Deno.readTextFileSync(o.revokedSerialsFile!);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    const serials = new Set(
      text.split("\n").filter((l) => l.trim() !== "").map(norm),
    );
    denied = { at: now(), serials };
    return serials;
  };
  const revoked = (serial: string): boolean =>
    o.revokedSerialsFile !== undefined && deniedSerials().has(norm(serial));
  return {
    async authenticate(chainDer, authorization) {
      const token = authorization?.match(/^bearer\s+(\S+)\s*$/i)?.[1];
      if (token) {
        if (!tokens) {
          throw badToken("invalid_token", MSG.INVALID_TOKEN_SIGNATURE);
        }
        try {
          const claims = await tokens.verify(token);
          return {
            actor: `uaa-client:${claims.subject}`,
            scopes: claims.scopes,
          };
        } catch (err) {
          if (!(err instanceof TokenError)) throw err;
          throw err.reason === "expired"
            ? badToken("access_token_expired", "Access token expired")
            : badToken("invalid_token", MSG.INVALID_TOKEN_SIGNATURE);
        }
      }
      const leafDer = chainDer[0];
      if (!leafDer) {
        // Spring Security's answer when neither a token nor a certificate came.
        throw badToken(
          "unauthorized",
          "Full authentication is required to access this resource",
        );
      }
      const certs = chainDer.map((d) =>
        new x509.X509Certificate(new Uint8Array(d))
      );
      const pem = certs.map((c) => c.toString("pem")).join("\n");
      try {
        await verifyChain(pem, o.trustedCasPem, now());
      } catch (err) {
        void err;
        throw unauthorized(MSG.INVALID_MTLS_IDENTITY);
      }
      const leaf = certs[0]!;
      const eku = leaf.getExtension(x509.ExtendedKeyUsageExtension);
      if (!eku || !eku.usages.map(String).includes(CLIENT_AUTH)) {
        throw unauthorized(MSG.MTLS_NOT_CLIENT_AUTH);
      }
      if (revoked(leaf.serialNumber)) {
        throw unauthorized(MSG.INVALID_MTLS_IDENTITY);
      }
      const app = leaf.subjectName.getField("OU").map((ou) =>
        APP_OU.exec(ou)?.[1]
      ).find(Boolean);
      if (!app) throw unauthorized(MSG.INVALID_MTLS_IDENTITY);
      return { actor: `mtls-app:${app}` };
    },
  };
}
