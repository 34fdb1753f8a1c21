import { study } from "../../eval/study/study";
import { PLOTS, writeReport } from "../../eval/study/report";
import { CHECKPOINT_OPTIONS, ctxOption, isPosInt, number, options, outputDir, parse, requireString } from "../args";
import { logLine, progressText } from "../log";
import { UsageError } from "../usage-error";

export const help = `dynact study -m MODEL [-m MODEL2 …] [-t TOKENIZER] -d TEXT [--task FILE.jsonl …] -o DIR [options]

Run the dynamic-activation study: for each model, MLP strategies (dense; cett at 0.05/0.1/0.2/0.3; cett-global 0.2;
tda 0.2; cats, topk, griffin and teal at 30/50/70/90% sparsity; a trained neuron predictor) and head gates (norm,
topk and a trained head predictor keeping 75/50% of heads) with the keep and skip KV policies. Each cell measures
perplexity on the first --max-tokens tokens of TEXT (cats/cett/teal thresholds are calibrated and the predictors
fitted on the tokens after them), task accuracy, per-layer sparsity and CETT, predictor recall/precision, head
activity and KV holes, FLOP fraction and decode speed on the sparse kernels. Cells are cached in DIR/cells: an interrupted study
resumes. Writes DIR/report.md, DIR/report.json and the plots ${Object.values(PLOTS).join(", ")}.
Give a SiLU model and its ReLU counterpart as two -m to compare them side by side.

  -m, --model FILE     model (repeatable)
  -t, --tokenizer FILE tokenizer for every model (default: each model's own, as in dynact generate)
  -d, --data FILE      evaluation and calibration text
      --task FILE      multiple-choice task file (repeatable)
  -o, --output DIR     report folder
      --quick          a small matrix (50/90% sparsity, CETT 0.2, heads at 50%), 1024 tokens, 20 task items
      --max-tokens N   evaluation tokens (default 4096; quick 1024)
      --limit N        task items per task (default 200; quick 20)
      --ctx N          positions per window, from 3; a model with a shorter context uses its own (default: each
                       model's context)
      --speed-steps N  decode positions per speed measurement (default 64; quick 32)`;

export async function run(argv: string[]): Promise<void> {
  const { values: v } = parse(argv, {
    ...options("tokenizer", "data", "output", "max-tokens", "ctx", "help"),
    model: { ...CHECKPOINT_OPTIONS.model, multiple: true },
    task: { type: "string", multiple: true },
    quick: { type: "boolean", default: false },
    limit: { type: "string" },
    "speed-steps": { type: "string" },
  });
  if (v.help) return void console.log(help);
  const models = v.model ?? [];
  if (models.length === 0) throw new UsageError("-m/--model is required");
  const text = requireString(v.data, "-d/--data");
  const out = requireString(v.output, "-o/--output");
  const opt = (name: "max-tokens" | "limit" | "speed-steps") =>
    v[name] === undefined ? undefined : number(v[name], `--${name}`, 0, isPosInt, "a positive integer");
  const [maxTokens, limit, speedSteps] = (["max-tokens", "limit", "speed-steps"] as const).map(opt);
  // The griffin and tda cells take the first half of each window after BOS as their prompt: at least one
  // position, and one scored after it.
  const ctx = ctxOption(v.ctx, 3);
  outputDir(out, "-o"); // study() makes it once the inputs are known good
  const tty = process.stderr.isTTY === true;
  const result = await study({
    models, tokenizer: v.tokenizer, text, tasks: v.task ?? [], outDir: out, quick: v.quick ?? false,
    maxTokens, limit, ctx, speedSteps,
    log: (line) => logLine(line, true), // in place of the cell line
    onProgress: (done, total, eta, label) => {
      const line = `cell ${done}/${total} (${label}), ETA ${Math.round(eta)} s`;
      if (tty) progressText(line, done === total);
      else logLine(line);
    },
  });
  writeReport(result, out);
  process.stderr.write(`wrote ${out}/report.md, report.json and ${Object.keys(PLOTS).length} plots (${result.cells.length} cells)\n`);
}
