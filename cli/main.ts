// The dynact command: dispatch to a subcommand; map errors to exit codes (2 usage, 1 failure) with one line on
// stderr — never a stack trace unless DYNACT_DEBUG is set.
import { DynactError } from "../engine/errors";
import { ContextLengthError } from "../models/load";
import * as bench from "./commands/bench";
import * as calibrate from "./commands/calibrate";
import * as convert from "./commands/convert";
import * as evalCommand from "./commands/eval"; // `eval` cannot name a binding in a module
import * as fitPredictors from "./commands/fit-predictors";
import * as generate from "./commands/generate";
import * as inspect from "./commands/inspect";
import * as logits from "./commands/logits";
import * as perplexity from "./commands/perplexity";
import * as quantReport from "./commands/quant-report";
import * as relufy from "./commands/relufy";
import * as studyCommand from "./commands/study";
import * as train from "./commands/train";
import { resolveHubArgs } from "./hub-args";
import { logLine } from "./log";
import { UsageError } from "./usage-error";

interface Command {
  help: string;
  run(argv: string[]): Promise<void>;
}

const COMMANDS: Record<string, Command> = { generate, inspect, logits, perplexity, eval: evalCommand, calibrate,
  "fit-predictors": fitPredictors, convert, "quant-report": quantReport, bench, study: studyCommand, relufy, train };

const HELP = `dynact — LLaMA inference in WebAssembly, built to measure dynamic activation

usage: dynact <command> [options]      (dynact <command> --help for its options)

commands:
  generate   generate text from a prompt
  inspect    print a checkpoint's configuration and tensors
  logits     print the logits at the last position of a prompt
  perplexity perplexity of a text, with per-layer MLP sparsity statistics
  eval       zero-shot multiple-choice accuracy (HellaSwag, OpenBookQA, generic JSONL)
  calibrate  fit per-layer thresholds for cats/cett neuron gates
  fit-predictors  train low-rank activation predictors (--ffn-gate predictor:FILE)
  convert    convert a checkpoint to gguf, safetensors or llama2c (f32, f16, bf16, q8_0, q4_0)
  quant-report  what f16/q8_0/q4_0 cost: perplexity change, top-1 agreement and KL against the model as stored
  study      the dynamic-activation study: a matrix of gates, a report with plots
  relufy     fine-tune a SiLU model into its ReLU counterpart (optional L1 sparsity penalty, distillation)
  train      continue training a checkpoint on a text
  bench      benchmarks: decode (vs llama2.c, llama.cpp), kernels, ffn, gated, attention, prefill (vs llama.cpp),
             load, perplexity, train

Exit status: 0 success, 1 failure, 2 bad usage.`;

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    console.log(HELP);
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  try {
    if (!command) throw new UsageError(`unknown command '${name}' (commands: ${Object.keys(COMMANDS).join(", ")})`);
    await command.run(await resolveHubArgs(rest));
    return 0;
  } catch (e) {
    if (process.env.DYNACT_DEBUG) console.error(e);
    // The model's context is known once its header is read (by the loader, which makes the check): a --ctx beyond
    // it is bad usage all the same.
    if (e instanceof UsageError || e instanceof ContextLengthError) {
      logLine(`dynact: ${e.message}\n${command ? `see 'dynact ${name} --help'` : "see 'dynact --help'"}`);
      return 2;
    }
    const message = e instanceof DynactError ? e.message : systemError(e) ?? `internal error: ${(e as Error)?.message ?? String(e)}`;
    logLine(`dynact: ${message.split("\n")[0]}`);
    return 1;
  }
}

// What Node's system errors (a file that cannot be written: ENOENT, EISDIR, EACCES, ENOSPC, …) mean, as
// "PATH: what" — they are the user's files and disk, not dynact's internals.
const SYSTEM_ERRORS: Readonly<Record<string, string>> = {
  ENOENT: "no such file or directory", EISDIR: "is a directory", ENOTDIR: "a component of the path is not a directory",
  EACCES: "permission denied", EPERM: "operation not permitted", ENOSPC: "no space left on device", EROFS: "read-only file system",
  EEXIST: "already exists", EMFILE: "too many open files",
};

function systemError(e: unknown): string | undefined {
  const err = e as NodeJS.ErrnoException;
  if (!(e instanceof Error) || typeof err.code !== "string" || typeof err.syscall !== "string") return undefined;
  const what = SYSTEM_ERRORS[err.code] ?? err.message;
  return err.path === undefined ? what : `${err.path}: ${what}`;
}

// A reader that stops early (dynact generate | head) closes the pipe: stop quietly, as command-line tools do,
// instead of Node's unhandled 'error' event and its stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(process.exitCode ?? 0);
    if (stream !== process.stderr) process.stderr.write(`dynact: stdout: ${e.message}\n`);
    process.exit(1);
  });
}

process.exitCode = await main(process.argv.slice(2));
