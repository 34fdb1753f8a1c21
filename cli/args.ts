// Argument parsing on Node's util.parseArgs, with dynact's rules: unknown options and bad values are usage
// errors (exit 2), numbers are checked, and the commands share the model/tokenizer options.
import { accessSync, constants, existsSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import path from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { MAX_THREADS } from "../engine/engine";
import { DynactError } from "../engine/errors";
import { ACTIVATIONS, type ActivationName } from "../models/config";
import { UsageError } from "./usage-error";

export type Options = NonNullable<ParseArgsConfig["options"]>;

/** The options several commands take, each one's spec written here once; commands pick theirs with `options`. */
const SHARED_OPTIONS = {
  model: { type: "string", short: "m" },
  tokenizer: { type: "string", short: "t" },
  data: { type: "string", short: "d" },
  output: { type: "string", short: "o" },
  threads: { type: "string" },
  ctx: { type: "string" },
  "max-tokens": { type: "string" },
  act: { type: "string" },
  json: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const satisfies Options;

/** The named shared options (-m, -t, -d, -o, --threads, --ctx, --max-tokens, --act, --json, -h), as parse takes them. */
export function options<K extends keyof typeof SHARED_OPTIONS>(...names: K[]): Pick<typeof SHARED_OPTIONS, K> {
  return Object.fromEntries(names.map((n) => [n, SHARED_OPTIONS[n]])) as Pick<typeof SHARED_OPTIONS, K>;
}

/** Options that each take one value (--NAME VALUE), by name: a command's own. */
export function valueOptions<const N extends string>(...names: N[]): { [K in N]: { type: "string" } } {
  return Object.fromEntries(names.map((n) => [n, { type: "string" }])) as { [K in N]: { type: "string" } };
}

/** -m MODEL, --json and -h; the options of a command that reads a checkpoint without running it (inspect). */
export const CHECKPOINT_OPTIONS = options("model", "json", "help");

/** And -t TOKENIZER, --threads N: a command that runs the model. */
export const MODEL_OPTIONS = { ...CHECKPOINT_OPTIONS, ...options("tokenizer", "threads") };

export function parse<O extends Options>(argv: string[], options: O) {
  let parsed;
  try {
    parsed = parseArgs({ args: joinNegativeValues(argv, options), options, strict: true, allowPositionals: false });
  } catch (e) {
    // Some of Node's messages take several lines (an ambiguous value: did you forget it, how to write one that
    // starts with a dash); all of them, on one line.
    throw new UsageError((e as Error).message.split("\n").join(" "));
  }
  // An empty value ('-t ""', a shell variable that was not set) would read as the option not given and fall back
  // to its default (a tokenizer.bin beside the model, say) without a word; only a prompt may be empty.
  for (const [name, value] of Object.entries(parsed.values)) {
    const values = Array.isArray(value) ? value : [value];
    if (name !== "prompt" && values.some((x) => x === "")) throw new UsageError(`--${name} is given an empty value`);
  }
  return parsed;
}

// parseArgs takes a value that starts with a dash for an option ("-n -1": "argument is ambiguous"). No dynact option
// is a dash and a digit, so a negative number after an option that takes a value is that value (written as
// --name=-1 for parseArgs), and its check then says what the option accepts.
function joinNegativeValues(argv: string[], options: Options): string[] {
  const long = new Map<string, string>();
  for (const [name, o] of Object.entries(options)) {
    if (o.type !== "string") continue;
    long.set(`--${name}`, name);
    if (o.short) long.set(`-${o.short}`, name);
  }
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const name = long.get(argv[i]!);
    const next = argv[i + 1];
    if (argv[i] === "--") return [...out, ...argv.slice(i)];
    if (name !== undefined && next !== undefined && /^-\.?\d/.test(next)) out.push(`--${name}=${argv[++i]}`);
    else out.push(argv[i]!);
  }
  return out;
}

export function requireString(v: string | undefined, flag: string): string {
  if (v === undefined || v === "") throw new UsageError(`${flag} is required`);
  return v;
}

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

export function number(v: string | undefined, flag: string, fallback: number, check: (n: number) => boolean, what: string): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  // Decimal only: Number() also reads '0x10' as 16 and '0b11' as 3, which nobody means as a count or a fraction.
  if (!DECIMAL.test(v) || !Number.isFinite(n) || !check(n)) throw new UsageError(`${flag} must be ${what}, got '${v}'`);
  return n;
}

export const isNonNegInt = (n: number) => Number.isInteger(n) && n >= 0;
export const isPosInt = (n: number) => Number.isInteger(n) && n > 0;

/**
 * An output file's path, checked before any work: its folder exists and it is not a folder itself. Commands write
 * their output last (after minutes of calibration, fitting or training), so a typo in -o must fail first.
 */
export function outputFile(file: string, flag: string): string {
  if (existsSync(file) && statSync(file).isDirectory()) throw new DynactError(`${flag} ${file}: is a directory, expected a file`);
  const dir = path.dirname(file);
  if (!existsSync(dir)) throw new DynactError(`${flag} ${file}: no such directory ${dir}`);
  if (!statSync(dir).isDirectory()) throw new DynactError(`${flag} ${file}: ${dir} is not a directory`);
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    throw new DynactError(`${flag} ${file}: the directory ${dir} is not writable`);
  }
  return file;
}

/** An output folder's path (created later, with its parents), checked before any work: not an existing file. */
export function outputDir(dir: string, flag: string): string {
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new DynactError(`${flag} ${dir}: is a file, expected a directory`);
  return dir;
}

// A thread count: from 1 to the engine's limit.
const isThreadCount = (n: number) => isPosInt(n) && n <= MAX_THREADS;

/** --threads N: threads for the matrix products; default: the machine's cores. */
export function threadsOption(v: string | undefined): number {
  return number(v, "--threads", availableParallelism(), isThreadCount, `an integer from 1 to ${MAX_THREADS}`);
}

/** --threads in a command's --help (as threadsOption reads it). */
export const THREADS_HELP = "      --threads N         threads for the matrix products (default: the number of cores)";

/** --threads T,U (bench): thread counts to run at, each as threadsOption takes it; default: the `fallback` list. */
export function threadListOption(v: string | undefined, fallback: string): number[] {
  return (v ?? fallback).split(",").map((t) => number(t, "--threads", 1, isThreadCount, `comma-separated integers from 1 to ${MAX_THREADS}`));
}

/** --act NAME: the activation to swap in for the checkpoint's; undefined keeps the checkpoint's. */
export function activationOption(v: string | undefined): ActivationName | undefined {
  if (v !== undefined && !ACTIVATIONS.includes(v as ActivationName)) {
    throw new UsageError(`--act must be one of ${ACTIVATIONS.join(", ")}, got '${v}'`);
  }
  return v as ActivationName | undefined;
}

/**
 * --ctx N: the context (KV cache positions; for windows over a text, positions per window including BOS), at least
 * `min`; undefined: the model's context. Whether the model has that many positions is checked where the model is
 * loaded (models/load.ts runContextLength), with the one message for every command.
 */
export function ctxOption(v: string | undefined, min = 1): number | undefined {
  return v === undefined ? undefined : number(v, "--ctx", 0, (n) => isPosInt(n) && n >= min, min === 1 ? "a positive integer" : `an integer >= ${min}`);
}

/** The options of commands that run a model over a text: -d FILE, --ctx N, --max-tokens N. */
export const TEXT_OPTIONS = { ...MODEL_OPTIONS, ...options("data", "max-tokens", "ctx") };

/** The options of commands that fit something on a text and write it to a file (calibrate, fit-predictors). */
export const TEXT_FIT_OPTIONS = { ...TEXT_OPTIONS, ...options("output", "act") };

export interface TextFitArgs {
  model: string;
  data: string;
  output: string;
  activation: ActivationName | undefined;
  /** Tokens of the text to use, from its start. */
  maxTokens: number;
  ctx: number | undefined;
  threads: number;
}

/** The TEXT_FIT_OPTIONS values, checked: -m, -d and -o are required; --max-tokens defaults to 4096. */
export function textFitArgs(v: {
  model?: string; data?: string; output?: string; act?: string; "max-tokens"?: string; ctx?: string; threads?: string;
}): TextFitArgs {
  return {
    model: requireString(v.model, "-m/--model"),
    data: requireString(v.data, "-d/--data"),
    output: requireString(v.output, "-o/--output"),
    activation: activationOption(v.act),
    maxTokens: number(v["max-tokens"], "--max-tokens", 4096, isPosInt, "a positive integer"),
    // Windows of --ctx positions start with BOS: ctx 1 would trace BOS alone, never a token of the text.
    ctx: ctxOption(v.ctx, 2),
    threads: threadsOption(v.threads),
  };
}


