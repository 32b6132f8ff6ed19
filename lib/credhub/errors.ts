/** Errors of the credhub role. @module */
import { ApplianceError } from "../common/errors.ts";

/** A CredHub API error: carries the HTTP status and CredHub's exact message. */
export class CredhubError extends ApplianceError {
  readonly status: number;
  /** The answer's body when it is not `{"error": message}` (OAuth2 errors). */
  readonly body?: Record<string, string>;
  constructor(
    code: string,
    status: number,
    message: string,
    options?: ErrorOptions & { body?: Record<string, string> },
  ) {
    super(code, message, options);
    this.status = status;
    this.body = options?.body;
  }
}

/** `sigil credhub` cannot bind `credhub.listen`. */
export class CredhubListenError extends ApplianceError {
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_CREDHUB_LISTEN", message, options);
  }
}
