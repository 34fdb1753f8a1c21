// Argument parsing on Node's util.parseArgs, with dynact's rules: unknown options and bad values are usage
// errors (exit 2), numbers are checked, and every command shares the model/tokenizer options.
import { availableParallelism } from "node:os";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "./usage-error";

export type Options = NonNullable<ParseArgsConfig["options"]>;

export const MODEL_OPTIONS = {
  model: { type: "string", short: "m" },
  tokenizer: { type: "string", short: "t" },
  threads: { type: "string" },
  json: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const satisfies Options;

export function parse<O extends Options>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  } catch (e) {
    throw new UsageError((e as Error).message.split("\n")[0]);
  }
}

export function requireString(v: string | undefined, flag: string): string {
  if (v === undefined || v === "") throw new UsageError(`${flag} is required`);
  return v;
}

export function number(v: string | undefined, flag: string, fallback: number, check: (n: number) => boolean, what: string): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || !check(n)) throw new UsageError(`${flag} must be ${what}, got '${v}'`);
  return n;
}

export const isNonNegInt = (n: number) => Number.isInteger(n) && n >= 0;
export const isPosInt = (n: number) => Number.isInteger(n) && n > 0;

/** --threads N: threads for the matrix products; default: the machine's cores. */
export function threadsOption(v: string | undefined): number {
  return number(v, "--threads", availableParallelism(), (n) => isPosInt(n) && n <= 256, "a positive integer");
}


