import { formatBytes } from "../../engine/engine";
import { quantReport } from "../../eval/quant-report";
import { readTextTokens } from "../../eval/text";
import type { GgufDType } from "../../models/formats/gguf";
import { loadTokenizer, openCheckpoint, runContextLength } from "../../models/load";
import { ctxOption, isPosInt, number, outputDir, parse, requireString, TEXT_OPTIONS, threadsOption, THREADS_HELP } from "../args";
import { progressLine } from "../gate-options";
import { logLine } from "../log";
import { UsageError } from "../usage-error";

export const help = `dynact quant-report -m MODEL [-t TOKENIZER] -d TEXT [--max-tokens N] [--ctx N] [--dtypes LIST] [--keep DIR] [--json]

What quantization costs this model: it is converted to each dtype as \`dynact convert --to gguf --dtype\` writes it
(norms stay f32; matrices whose rows are not a multiple of 32 values stay f16, and are listed), and each
conversion is scored against the model as stored (the reference: f32 for a llama2.c file) on the same text and
windows as \`dynact perplexity\` (text encoded without BOS, first --max-tokens ids, windows of ctx-1 tokens each
run as [BOS, t0 … t_{n-2}]). For each dtype: perplexity and its change, top-1 agreement (how often the argmax
next-token prediction equals the reference's), mean and max KL(p_ref ‖ p_quant) in nats, and top-1 accuracy
against the text. Dense model, no gates.

  -d, --data FILE         text file
      --max-tokens N      score only the first N tokens (default: all)
      --ctx N             positions per window including BOS (default: the model's context)
      --dtypes LIST       comma-separated, from f16, bf16, q8_0, q4_0 (default f16,q8_0,q4_0)
      --keep DIR          write the converted GGUF files (MODEL-DTYPE.gguf) into DIR, created if needed, and keep
                          them (default: a temporary folder, removed)
      --json              {"model","reference_dtypes","tokens","ctx","reference":{…},"rows":[{"dtype","perplexity",
                          "delta_perplexity","delta_perplexity_rel","top1_agreement","mean_kl","max_kl",…}]}
${THREADS_HELP}`;

const DTYPES: readonly GgufDType[] = ["f16", "bf16", "q8_0", "q4_0"];

export async function run(argv: string[]): Promise<void> {
  const { values: v } = parse(argv, {
    ...TEXT_OPTIONS,
    dtypes: { type: "string" },
    keep: { type: "string" },
  });
  if (v.help) return void console.log(help);
  const file = requireString(v.model, "-m/--model");
  const data = requireString(v.data, "-d/--data");
  const maxTokens = number(v["max-tokens"], "--max-tokens", Infinity, isPosInt, "a positive integer");
  const dtypes = (v.dtypes ?? "f16,q8_0,q4_0").split(",").map((d) => d.trim());
  const bad = dtypes.find((d) => !DTYPES.includes(d as GgufDType));
  if (bad !== undefined || dtypes.length === 0) throw new UsageError(`--dtypes takes a comma-separated list of ${DTYPES.join(", ")}; got '${v.dtypes}'`);
  const threads = threadsOption(v.threads);
  const ctxGiven = ctxOption(v.ctx, 2); // BOS and one scored token
  if (v.keep !== undefined) outputDir(v.keep, "--keep");
  const ckpt = openCheckpoint(file);
  const ctx = runContextLength(ckpt.config, ctxGiven); // before the text is read and the model converted
  const tokenizer = loadTokenizer(ckpt, v.tokenizer);
  const ids = readTextTokens(data, tokenizer, maxTokens);
  const log = (line: string) => logLine(line);
  const progress = progressLine(log);
  const r = quantReport(ckpt, ids, {
    dtypes: dtypes as GgufDType[], ctx, bosId: tokenizer.bosId, threads, dir: v.keep,
    onProgress: progress,
  });
  if (v.json) return void console.log(JSON.stringify(r));
  const pct = (x: number) => `${x >= 0 ? "+" : ""}${(100 * x).toFixed(2)}%`;
  const header = ["dtype", "weights", "perplexity", "Δ perplexity", "top-1 agreement", "mean KL (nats)", "max KL", "top-1 accuracy"];
  const rows = [
    [r.reference_dtypes.join("/"), formatBytes(r.reference.weight_bytes), r.reference.perplexity.toFixed(4), "(reference)", "", "", "",
      r.reference.top1_accuracy.toFixed(4)],
    ...r.rows.map((x) => [x.dtype, formatBytes(x.weight_bytes), x.perplexity.toFixed(4), `${x.delta_perplexity >= 0 ? "+" : ""}${x.delta_perplexity.toFixed(4)} (${pct(x.delta_perplexity_rel)})`,
      x.top1_agreement.toFixed(4), x.mean_kl.toExponential(2), x.max_kl.toExponential(2), x.top1_accuracy.toFixed(4)]),
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  console.log(`${r.model}: ${r.tokens} tokens of ${data}, windows of ${r.ctx - 1} tokens (context ${r.ctx})`);
  console.log(line(header));
  for (const row of rows) console.log(line(row));
  for (const x of r.rows) {
    if (x.fallbacks.length > 0) console.log(`${x.dtype}: ${x.fallbacks.map((f) => f.name).join(", ")} kept as ${x.fallbacks[0]!.dtype} (${x.fallbacks[0]!.reason})`);
  }
}
