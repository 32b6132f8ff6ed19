/** CredHub's error messages, as its `ErrorMessages.kt` renders them. @module */
export const MSG = {
  INVALID_ACCESS:
    "The request could not be completed because the credential does not exist or you do not have sufficient authorization.",
  PERMISSION_INVALID_ACCESS:
    "The request could not be completed because the permission does not exist or you do not have sufficient authorization.",
  PERMISSION_DOES_NOT_EXIST:
    "The request includes a permission that does not exist.",
  PERMISSION_ALREADY_EXISTS:
    "A permission entry for this actor and path already exists. Please use PUT to update the permission entry.",
  INVALID_OPERATION:
    "The provided operation is not supported. Valid values include read, write, delete, read_acl, and write_acl.",
  INVALID_UPDATE_OPERATION:
    "Modification of access control for the authenticated user is not allowed. Please contact an administrator.",
  MISSING_ACTOR:
    "You must specify an actor. Please validate your input and retry your request.",
  MISSING_PATH:
    "You must specify a path. Please validate your input and retry your request.",
  MISSING_OPERATIONS:
    "At least one operation must be provided. Please validate your input and retry your request.",
  MISSING_NAME:
    "A credential name must be provided. Please validate your input and retry your request.",
  MISSING_VALUE:
    "A non-empty value must be specified for the credential. Please validate and retry your request.",
  MISSING_PASSWORD:
    "A password value must be specified for the credential. Please validate and retry your request.",
  MISSING_CERTIFICATE_CREDENTIALS:
    "At least one certificate attribute must be set. Please validate your input and retry your request.",
  MISSING_CERTIFICATE: "You must provide a certificate.",
  INVALID_CERTIFICATE_VALUE:
    "The provided certificate value is not a valid X509 certificate.",
  INVALID_CA_VALUE:
    "The provided CA value is not a valid X509 certificate authority.",
  CERTIFICATE_WAS_NOT_SIGNED_BY_CA:
    "The provided certificate was not signed by the CA specified in the 'ca' property.",
  MISMATCHED_CERTIFICATE_AND_PRIVATE_KEY:
    "The provided certificate does not match the private key.",
  MALFORMED_PRIVATE_KEY: "Private key is malformed.",
  INVALID_TYPE_WITH_SET_PROMPT:
    "The request does not include a valid type. Valid values include 'value', 'json', 'password', 'user', 'certificate', 'ssh' and 'rsa'.",
  TYPE_MISMATCH:
    "The credential type cannot be modified. Please delete the credential if you wish to create it with a different type.",
  CANT_USE_VERSIONS_AND_CURRENT:
    "The query parameters current and versions cannot be provided in the same request.",
  BAD_REQUEST:
    "The request could not be fulfilled because the request path or body did not meet expectation. Please check the documentation for required formatting and retry your request.",
  INVALID_MTLS_IDENTITY:
    "The provided authentication mechanism does not provide a valid identity. Please contact your system administrator.",
  MTLS_NOT_CLIENT_AUTH:
    "The provided certificate is not authorized to be used for client authentication.",
  INVALID_TOKEN_SIGNATURE:
    "The request token signature could not be verified. Please validate that your request token was issued by the UAA server authorized by CredHub.",
  INTERNAL:
    "An application error occurred. Please contact your CredHub administrator.",
  missingQuery: (p: string) =>
    `The query parameter ${p} is required for this request.`,
  invalidJsonKey: (k: string) =>
    `The request includes an unrecognized parameter '${k}'. Please update or remove this parameter and retry your request.`,
  interpolationType: (n: string) =>
    `The credential '${n}' is not the expected type. A credhub-ref credential must be of type 'JSON'.`,
} as const;

/** The five permission operations. */
export const OPERATIONS = [
  "read",
  "write",
  "delete",
  "read_acl",
  "write_acl",
] as const;
