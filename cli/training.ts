// dynact relufy and dynact train: one fine-tuning loop (models/train/), with relufy first swapping the MLP
// activation for ReLU (and with --stage2 adding ReLU after the attention and MLP norms).
import { DynactError } from "../engine/errors";
import { readTextTokens } from "../eval/text";
import type { LlamaConfig } from "../models/config";
import { loadTokenizer, openCheckpoint } from "../models/load";
import { buildTrainModel } from "../models/train/build";
import { EVAL_TOKENS, MAX_SEED, MAX_STEPS, splitFingerprint, splitText, withSynthetic } from "../models/train/data";
import { exportModel, formatOf, type ExportFormat } from "../models/train/export";
import { readTrainCheckpoint, restoreTrainer, writeTrainCheckpoint, type TrainCheckpoint } from "../models/train/train-checkpoint";
import { generateStories } from "../models/train/synthetic";
import { ADDED_OPTION_DEFAULTS, Trainer, type EvalResult, type TrainOptions } from "../models/train/trainer";
import { tensorSource } from "../models/weights";
import { isNonNegInt, isPosInt, number, options, outputFile, parse, requireString, valueOptions } from "./args";
import { progressLine } from "./gate-options";
import { logLine } from "./log";
import { UsageError } from "./usage-error";
import { brief, FormatError } from "../models/formats/format-error";

/** Most teacher-generated tokens --synthetic accepts. */
const MAX_SYNTHETIC = 100_000_000;

// Each training option's flag and the check on its value.
const RULES = {
  steps: ["steps", (n) => isPosInt(n) && n <= MAX_STEPS, `a positive integer up to ${MAX_STEPS}`],
  lr: ["lr", (n) => n > 0, "a number > 0"],
  warmup: ["warmup", isNonNegInt, "a non-negative integer"],
  batch: ["batch", isPosInt, "a positive integer"],
  seq: ["seq", (n) => isPosInt(n) && n >= 2, "an integer >= 2"],
  l1: ["l1", (n) => n >= 0, "a number >= 0"],
  l1Warmup: ["l1-warmup", isNonNegInt, "a non-negative integer"],
  sparsity: ["sparsity", (n) => n >= 0 && n < 1, "a fraction in [0, 1)"],
  seed: ["seed", (n) => isNonNegInt(n) && n <= MAX_SEED, `an integer from 0 to ${MAX_SEED}`],
  evalEvery: ["eval-every", isPosInt, "a positive integer"],
  heldout: ["heldout", isPosInt, "a positive integer"],
  weightDecay: ["weight-decay", (n) => n >= 0, "a number >= 0"],
  gradClip: ["grad-clip", (n) => n > 0, "a number > 0"],
  distill: ["distill", (n) => n >= 0 && n <= 1, "a number in [0, 1]"],
  distillTemp: ["distill-temp", (n) => n > 0 && n <= 100, "a number in (0, 100]"],
  synthetic: ["synthetic", (n) => isNonNegInt(n) && n <= MAX_SYNTHETIC, `an integer from 0 to ${MAX_SYNTHETIC}`],
} as const satisfies Record<keyof TrainOptions, readonly [flag: string, check: (n: number) => boolean, what: string]>;

// No --threads: training runs on one thread.
export const TRAIN_OPTIONS = {
  ...options("model", "json", "help", "tokenizer", "data", "output"),
  ...valueOptions("format", "checkpoint", "resume"),
  // The numeric options: RULES' flags.
  ...valueOptions(...Object.values(RULES).map(([flag]) => flag)),
};

export const TRAIN_HELP = `  -m, --model PATH        the checkpoint to start from (and whose tokenizer to use)
  -t, --tokenizer FILE    tokenizer.bin, .gguf, tokenizer.json or a folder with one (default: the one the model
                          loads with)
  -d, --data FILE         training text; its first ${EVAL_TOKENS} tokens (the evaluation tokens of dynact perplexity
                          --max-tokens ${EVAL_TOKENS}) are never trained on, the next --heldout tokens give the
                          held-out loss, training windows come from the rest
  -o, --output PATH       the model to write: llama2.c (.bin, activation in a PATH.json sidecar) or .gguf
      --format F          llama2c or gguf (default: from the extension of PATH)
      --steps N           optimizer steps (default 1000)
      --lr LR             peak learning rate (default 2e-3); linear warm-up, cosine decay to LR/10
      --warmup N          warm-up steps (default: steps/10, at most 100)
      --batch B           sequences per step (default 8)
      --seq T             positions per sequence, BOS first, at most the model's context (default 128, or the
                          context if shorter)
      --l1 λ              L1 penalty λ·mean|act(W_gate x)| on the MLP activations (default 0)
      --l1-warmup N       steps over which λ ramps up linearly from 0 (default 0: full λ from the start)
      --sparsity F        lower λ for layers past a fraction F of exact zeros of act(W_gate x): a layer at zero
                          fraction z in the batch gets λ·clamp(1 + (F − z)/0.02, 0, 1): λ up to F, none two
                          points past it (default 0: λ for every layer)
      --seed S            batch sampling seed, 0 to 2^32-1 (default 1): same seed, same weights bit for bit
      --eval-every K      held-out loss (and a checkpoint) every K steps (default 100)
      --heldout N         held-out tokens (default 4096)
      --weight-decay W    AdamW weight decay on the matrices (default 0)
      --grad-clip C       clip the gradient to global norm C (default 1)
      --distill α         knowledge distillation from the input model (-m, frozen, run on every batch): the loss
                          per position is (1 − α)·CE + α·τ²·KL(teacher_τ ‖ student_τ), α in [0, 1] (default 0:
                          cross-entropy alone, no teacher). A resumed run takes its teacher from -m again
      --distill-temp τ    the distillation temperature τ (default 1)
      --synthetic N       add N tokens of text written by the input model (-m) to the training tokens: stories
                          sampled at temperature 1 from BOS (seeded by --seed), each ending at BOS or EOS, the model's
                          context or 2048 tokens, whichever comes first, joined and encoded as a text file's
                          stories are; training windows are drawn from real and synthetic tokens alike (default 0)
      --checkpoint FILE   training checkpoint written at every evaluation (default PATH.ckpt)
      --resume FILE       continue the run saved in FILE (weights, optimizer state, step); its options are
                          used, and an option given with a different value is an error
      --json              print a JSON summary on stdout`;

/** The training options given on the command line. */
function givenOptions(v: Record<string, unknown>): Partial<TrainOptions> {
  const given: Partial<TrainOptions> = {};
  for (const [key, [flag, check, what]] of Object.entries(RULES) as [keyof TrainOptions, (typeof RULES)[keyof TrainOptions]][]) {
    const raw = v[flag] as string | undefined;
    if (raw !== undefined) given[key] = number(raw, `--${flag}`, 0, check, what);
  }
  return given;
}

function withDefaults(g: Partial<TrainOptions>, seqLen: number): TrainOptions {
  const steps = g.steps ?? 1000;
  return {
    steps, lr: g.lr ?? 2e-3, warmup: g.warmup ?? Math.min(100, Math.floor(steps / 10)), batch: g.batch ?? 8,
    seq: g.seq ?? Math.min(128, seqLen), l1: g.l1 ?? 0, l1Warmup: g.l1Warmup ?? 0, sparsity: g.sparsity ?? 0, seed: g.seed ?? 1,
    evalEvery: g.evalEvery ?? 100, heldout: g.heldout ?? 4096, weightDecay: g.weightDecay ?? 0, gradClip: g.gradClip ?? 1,
    distill: g.distill ?? 0, distillTemp: g.distillTemp ?? 1, synthetic: g.synthetic ?? 0,
  };
}

export async function runTraining(argv: string[], relufy: boolean, help: string): Promise<void> {
  const { values: v } = parse(argv, { ...TRAIN_OPTIONS, stage2: { type: "boolean", default: false } });
  if (v.help) return void console.log(help);
  if (v.stage2 && !relufy) throw new UsageError("--stage2 is an option of dynact relufy"); // as an unknown option: first
  const file = requireString(v.model, "-m/--model");
  const data = requireString(v.data, "-d/--data");
  const out = requireString(v.output, "-o/--output");
  const format = (v.format ?? formatOf(out)) as ExportFormat;
  if (format !== "llama2c" && format !== "gguf") throw new UsageError(`--format must be llama2c or gguf, got '${v.format}'`);
  const given = givenOptions(v);
  outputFile(out, "-o");
  const checkpointFile = outputFile(v.checkpoint ?? `${out}.ckpt`, v.checkpoint === undefined ? "training checkpoint" : "--checkpoint");
  const log = (line: string) => logLine(line);
  const started = performance.now();

  const ckpt = openCheckpoint(file);
  const tokenizer = loadTokenizer(ckpt, v.tokenizer);
  // The input model's tensors, decoded one at a time for whoever needs them at setup (the teacher's text, the
  // teacher, the student): each copies them into its own memory, so no decoded copy of the model is kept here.
  const source = tensorSource(ckpt);
  const tensor = source.tensor;
  const resumed: TrainCheckpoint | undefined = v.resume === undefined ? undefined : readTrainCheckpoint(v.resume);
  let config: LlamaConfig;
  let opts: TrainOptions;
  let tied: boolean;
  if (resumed) {
    const m = resumed.meta;
    opts = { ...ADDED_OPTION_DEFAULTS, ...m.options };
    // The checkpoint's options size the batches and count the steps: each obeys its flag's rule, as if given. Its
    // config is the student's: the model it was relufied from is -m's, so the sizes are -m's.
    const where = v.resume!;
    for (const [k, [flag, check, what]] of Object.entries(RULES) as [keyof TrainOptions, (typeof RULES)[keyof TrainOptions]][]) {
      const x = opts[k] as unknown;
      if (typeof x !== "number" || !check(x)) throw new FormatError(where, `options.${k}`, `${brief(x)} is not ${what} (as --${flag} takes)`);
    }
    if (m.step > opts.steps) throw new FormatError(where, "step", `${m.step} is past the run's ${opts.steps} steps`);
    if (opts.seq > m.config.seqLen) throw new FormatError(where, "options.seq", `${opts.seq} is longer than the model's context of ${m.config.seqLen}`);
    for (const k of ["dim", "hiddenDim", "nLayers", "nHeads", "nKvHeads", "vocabSize", "seqLen"] as const) {
      if (m.config[k] !== ckpt.config[k]) {
        throw new FormatError(where, `config.${k}`, `${m.config[k]}, but ${file} has ${ckpt.config[k]}: resume with the -m the run started from`);
      }
    }
    for (const [k, x] of Object.entries(given) as [keyof TrainOptions, number][]) {
      if (opts[k] !== x) throw new UsageError(`--${RULES[k][0]} ${x} differs from the checkpoint's ${opts[k]} (resume continues its run)`);
    }
    if (v.stage2 && !m.config.reluAfterNorm) throw new UsageError("--stage2 differs from the checkpoint's run");
    ({ config, tied } = m);
  } else {
    tied = source.tied;
    config = relufy ? { ...ckpt.config, activation: "relu", ...(v.stage2 ? { reluAfterNorm: true } : {}) } : ckpt.config;
    opts = withDefaults(given, config.seqLen);
  }
  if (opts.seq > config.seqLen) throw new UsageError(`--seq ${opts.seq} is longer than the model's context of ${config.seqLen}`);
  const progress = progressLine(log);
  let split = splitText(readTextTokens(data, tokenizer), opts.heldout, opts.seq);
  if (opts.synthetic > 0) {
    // Teacher stories as text (joined as the stories of a text file are), encoded as the text was.
    const t0 = performance.now();
    const stories = generateStories(ckpt.config, source.tied, tensor, {
      tokens: opts.synthetic, seed: opts.seed, bos: tokenizer.bosId, eos: tokenizer.eosId,
      onProgress: (n) => progress("synthetic text", Math.min(n, opts.synthetic), opts.synthetic),
    });
    const ids = tokenizer.encode(stories.map((ids) => tokenizer.decode(ids, tokenizer.bosId).trim()).join("\n\n"), { bos: false });
    const seconds = (performance.now() - t0) / 1000;
    log(`synthetic text: ${stories.length} stories from ${file} (temperature 1, seed ${opts.seed}), ${ids.length} tokens ` +
      `in ${seconds.toFixed(1)} s (${(ids.length / seconds).toFixed(0)} tokens/s)`);
    split = withSynthetic(split, ids);
  }
  const fingerprint = splitFingerprint(split);
  if (resumed && resumed.meta.data !== fingerprint) throw new DynactError(`${v.resume} was trained on other text than ${data}`);

  // A resumed run's weights come from its checkpoint (restoreTrainer), not from the model file.
  const model = buildTrainModel(config, tied, resumed ? undefined : tensor, opts.batch, opts.seq);
  // The teacher: the input model as it is on disk, frozen, in its own memory (forward passes only).
  const teacher = opts.distill > 0
    ? buildTrainModel(ckpt.config, source.tied, tensor, opts.batch, opts.seq)
    : undefined;
  if (teacher && teacher.config.vocabSize !== config.vocabSize) throw new DynactError("the teacher's vocabulary differs from the student's");
  const trainer = new Trainer(model, split, opts, tokenizer.bosId, teacher);
  if (resumed) restoreTrainer(trainer, resumed);
  log(`${relufy ? "relufy" : "train"}: ${config.activation} MLP${config.reluAfterNorm ? ", ReLU after the norms" : ""}; ` +
    `${split.train.length} training tokens, ${split.heldout.length} held-out; ${opts.steps} steps of ${opts.batch}×${opts.seq}` +
    (resumed ? `; resuming at step ${trainer.step}` : ""));

  const evalLine = (e: EvalResult) => `held-out loss ${e.loss.toFixed(4)} (perplexity ${e.perplexity.toFixed(4)}), ` +
    `zeros per layer ${e.zeroFraction.map((z) => `${(100 * z).toFixed(1)}%`).join(" ")}`;
  if (!resumed) log(`step 0: ${evalLine(trainer.evaluate())}`);
  let trainSeconds = 0, trainTokens = 0, lossSum = 0, lossSteps = 0;
  let last: EvalResult | undefined;
  while (!trainer.done) {
    const t0 = performance.now();
    const r = trainer.runStep();
    trainSeconds += (performance.now() - t0) / 1000;
    trainTokens += opts.batch * opts.seq;
    lossSum += r.loss;
    lossSteps++;
    const zeros = r.zeroFraction.reduce((a, b) => a + b, 0) / r.zeroFraction.length;
    progress("training", trainer.step, opts.steps, `loss ${r.loss.toFixed(4)}${opts.distill > 0 ? ` kl ${r.kl.toFixed(4)}` : ""} l1 ${r.l1Penalty.toFixed(4)} ` +
      `zeros ${(100 * zeros).toFixed(1)}% lr ${r.lr.toExponential(2)} ${(trainTokens / trainSeconds).toFixed(0)} tok/s`);
    if (trainer.step % opts.evalEvery === 0 || trainer.done) {
      last = trainer.evaluate();
      log(`step ${trainer.step}: train loss ${(lossSum / lossSteps).toFixed(4)}, ${evalLine(last)}` +
        (opts.l1 > 0 ? `, λ per layer ${r.l1.map((x) => x.toPrecision(3)).join(" ")}` : ""));
      lossSum = lossSteps = 0;
      writeTrainCheckpoint(checkpointFile, trainer, fingerprint);
    }
  }
  exportModel(out, format, model.params, tokenizer);
  const tokensPerSecond = trainTokens / Math.max(trainSeconds, 1e-9);
  log(`wrote ${out} (${format}, activation ${config.activation}${config.reluAfterNorm ? ", ReLU after the norms" : ""}); ` +
    `${tokensPerSecond.toFixed(0)} training tokens/s, ${((performance.now() - started) / 1000).toFixed(0)} s in all`);
  if (v.json) {
    console.log(JSON.stringify({
      output: out, format, activation: config.activation, relu_after_norm: config.reluAfterNorm ?? false, options: opts,
      heldout_loss: last?.loss ?? null, heldout_perplexity: last?.perplexity ?? null, zero_fraction: last?.zeroFraction ?? null,
      train_seconds: trainSeconds, tokens_per_second: tokensPerSecond, total_seconds: (performance.now() - started) / 1000,
    }));
  }
}
