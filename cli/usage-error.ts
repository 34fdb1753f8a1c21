import { DynactError } from "../engine/errors";

/** Bad command-line usage: exit code 2. */
export class UsageError extends DynactError {}
