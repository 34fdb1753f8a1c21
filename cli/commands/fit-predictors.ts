import { fitPredictors } from "../../eval/predictor/fit";
import { fitHeadPredictors } from "../../eval/predictor/fit-heads";
import { TRAIN_DEFAULTS } from "../../eval/predictor/train";
import { readTextTokens } from "../../eval/text";
import { parseLabelRule, type LabelRule } from "../../models/gates/label-rule";
import { writePredictor } from "../../models/gates/predictor-file";
import { loadModel } from "../../models/load";
import { isPosInt, number, outputFile, parse, TEXT_FIT_OPTIONS, textFitArgs, THREADS_HELP } from "../args";
import { progressLine } from "../gate-options";
import { logLine } from "../log";
import { UsageError } from "../usage-error";

const T = TRAIN_DEFAULTS;

export const help = `dynact fit-predictors -m MODEL [-t TOKENIZER] -d TEXT -o FILE [options]

Train a low-rank activation predictor per layer (DejaVu / PowerInfer style): logits = W2·σ(W1·x + b1) + b2 on the
MLP's normalised input x, fitted by AdamW on the weighted binary cross-entropy against oracle labels traced from
dense passes over the text (the last ${100 * T.heldOut}% of the tokens held out for early stopping and the report).
Use the file with --ffn-gate predictor:FILE (logit > 0) or predictor:FILE:topk:F.
With --heads, one predictor per layer learns the attention heads instead: from the attention block's normalised
input, the top --keep fraction of heads by their contribution ‖W_o,h · o_h‖ (the norm oracle's choice); use it with
--head-gate predictor:FILE.

  -d, --data FILE         training text
  -o, --output FILE       predictor file to write
      --rank R            predictor rank (default 32)
      --label RULE        oracle labels: cett:T (the cett:T gate's set, calibrated on the same text), topk:F (top
                          fraction F by |act(g)|) or relu (nonzero activations; ReLU models) (default cett:0.2)
      --sigma NAME        relu or identity: the predictor's hidden nonlinearity (default relu)
      --act NAME          activation of the model to fit for (default: the model's)
      --lookahead         layer l's predictor reads layer l-1's input: the set is chosen one layer ahead
      --heads             fit head predictors (labels: top --keep fraction of heads by contribution norm)
      --keep F            with --heads: the kept fraction of heads (default 0.5)
      --max-tokens N      trace the first N tokens of the text (default 4096), every one a sample (--heads: at
                          most 2048, spread over them)
      --ctx N             positions per window including BOS, from 2 (default: the model's context)
      --epochs N          at most N epochs (default ${T.epochs}); early stopping after ${T.patience} without progress
      --batch N           minibatch rows (default ${T.batch})
      --lr X              AdamW learning rate (default ${T.lr})
      --seed S            seed of the initialisation and shuffling, a positive integer (default ${T.seed})
      --json              print the header of the written file (with per-layer metrics) as JSON
${THREADS_HELP}`;

export async function run(argv: string[]): Promise<void> {
  const { values: v } = parse(argv, {
    ...TEXT_FIT_OPTIONS,
    rank: { type: "string" },
    label: { type: "string" },
    sigma: { type: "string" },
    lookahead: { type: "boolean", default: false },
    heads: { type: "boolean", default: false },
    keep: { type: "string" },
    epochs: { type: "string" },
    batch: { type: "string" },
    lr: { type: "string" },
    seed: { type: "string" },
  });
  if (v.help) return void console.log(help);
  const a = textFitArgs(v);
  const out = a.output;
  const rank = number(v.rank, "--rank", 32, isPosInt, "a positive integer");
  let label: LabelRule;
  try {
    label = parseLabelRule(v.label ?? "cett:0.2");
  } catch (e) {
    throw new UsageError(`--label: ${(e as Error).message}`);
  }
  const sigma = v.sigma ?? "relu";
  if (sigma !== "relu" && sigma !== "identity") throw new UsageError(`--sigma must be relu or identity, got '${sigma}'`);
  const ctx = a.ctx;
  const train = {
    epochs: number(v.epochs, "--epochs", T.epochs, isPosInt, "a positive integer"),
    batch: number(v.batch, "--batch", T.batch, isPosInt, "a positive integer"),
    lr: number(v.lr, "--lr", T.lr, (n) => n > 0, "a positive number"),
    seed: number(v.seed, "--seed", T.seed, (n) => isPosInt(n) && n <= Number.MAX_SAFE_INTEGER, "a positive integer"),
  };
  const log = (line: string) => logLine(line);
  const keep = number(v.keep, "--keep", 0.5, (n) => n > 0 && n <= 1, "a fraction in (0, 1]");
  // Neuron and head predictors take different options: one given to the other kind would be silently ignored.
  if (v.heads && (v.label !== undefined || v.lookahead)) throw new UsageError(`--${v.label !== undefined ? "label" : "lookahead"} is for neuron predictors: --heads labels the top --keep fraction of heads`);
  if (!v.heads && v.keep !== undefined) throw new UsageError("--keep is for head predictors (--heads); neuron labels come from --label");
  outputFile(out, "-o");
  const loaded = loadModel(a.model, {
    tokenizer: v.tokenizer, activation: a.activation, contextLength: ctx, threads: a.threads, transposeWo: v.heads,
  });
  const ids = readTextTokens(a.data, loaded.tokenizer, a.maxTokens);
  const p = v.heads
    ? fitHeadPredictors(loaded.model, ids, { keep, rank, sigma, ctx, train, onProgress: progressLine(log) })
    : fitPredictors(loaded.model, ids, {
      label, rank, sigma, lookahead: v.lookahead!, ctx, train, onProgress: progressLine(log),
    });
  writePredictor(out, p);
  if (v.json) return void console.log(JSON.stringify(p.header));
  const h = p.header;
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`.padStart(7);
  console.log(`wrote ${out}: ${h.units === "heads" ? "heads, " : ""}${h.label} labels, rank ${h.rank}, sigma ${h.sigma}${h.lookahead ? ", lookahead" : ""}, ` +
    `${h.training.samples} samples (held-out metrics, logit > 0)`);
  console.log("layer  recall  precis      F1  sparsity  oracle sparsity  epochs");
  h.metrics.forEach((m, l) => console.log(
    `${String(l).padStart(5)} ${pct(m.recall)} ${pct(m.precision)} ${pct(m.f1)}   ${pct(m.predicted_sparsity)}          ${pct(m.oracle_sparsity)}  ${String(m.epochs).padStart(6)}`,
  ));
}
