import { DynactError } from "../../engine/errors";

/** A checkpoint or tokenizer file that cannot be read as what it claims to be. Names the file and the field. */
export class FormatError extends DynactError {
  constructor(
    readonly file: string,
    readonly field: string,
    detail: string,
  ) {
    super(`${file}: ${field}: ${detail}`);
  }
}
