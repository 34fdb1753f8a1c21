import { DynactError } from "../../engine/errors";

/** A Hub download that could not be done (bad spec, HTTP error, network failure, corrupt data). */
export class HubError extends DynactError {}

/**
 * A transfer that failed after receiving data (connection dropped, stalled, ended early): worth resuming from
 * the bytes already on disk.
 */
export class InterruptedError extends HubError {}
