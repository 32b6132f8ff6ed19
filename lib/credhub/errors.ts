/** Errors of the credhub role. @module */
import { ApplianceError } from "../common/errors.ts";

/** A CredHub API error: carries the HTTP status and CredHub's exact message. */
export class CredhubError extends ApplianceError {
  readonly status: number;
  constructor(
    code: string,
    status: number,
    message: string,
    options?: ErrorOptions,
  ) {
    super(code, message, options);
    this.status = status;
  }
}
