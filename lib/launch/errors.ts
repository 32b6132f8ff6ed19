/** Errors of `sigil launch`. @module */
import { ApplianceError } from "../common/errors.ts";

/**
 * The app's environment could not be prepared (`ERR_LAUNCH_INTERPOLATE`,
 * `ERR_LAUNCH_SETUP`, `ERR_LAUNCH_PLATFORM_OPTIONS`); `sigil launch` then
 * exits 4 without starting the app.
 */
export class LaunchError extends ApplianceError {}
