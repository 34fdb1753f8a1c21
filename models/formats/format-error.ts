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

/** A name from a file (a key, a tensor name) as an error's field: printable and short whatever the file holds. */
export function fieldName(name: string, fallback: string): string {
  if (name === "") return fallback;
  const short = name.length > 100 ? `${name.slice(0, 100)}…` : name;
  return /[\u0000-\u001f\u007f-\u009f]/.test(short) ? JSON.stringify(short) : short;
}

/** A value from a file as error messages show it: JSON, cut short. */
export function brief(value: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(value) ?? String(value);
  } catch {
    s = String(value); // a BigInt or a cycle, from a caller's object rather than parsed JSON
  }
  return s.length > 60 ? `${s.slice(0, 60)}…` : s;
}

/**
 * Run `check` (e.g. validateConfig, which names LlamaConfig's fields) so that a FormatError it throws names the
 * file's own key instead: `rms_norm_eps` in a config.json, not `normEps`.
 */
export function withFileKeys<T>(file: string, keys: Readonly<Record<string, string>>, check: () => T): T {
  try {
    return check();
  } catch (e) {
    if (!(e instanceof FormatError) || e.file !== file || !Object.hasOwn(keys, e.field)) throw e;
    throw new FormatError(file, keys[e.field]!, e.message.slice(`${file}: ${e.field}: `.length));
  }
}

/** A JSON object (not an array, not null): what every reader of a JSON header or file checks first. */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
