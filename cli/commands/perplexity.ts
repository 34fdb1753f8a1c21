import { ActivationZeros } from "../../eval/act-stats";
import { perplexity } from "../../eval/perplexity";
import { readTextTokens } from "../../eval/text";
import { loadModel, openCheckpoint, runContextLength } from "../../models/load";
import { ctxOption, isPosInt, number, parse, requireString, TEXT_OPTIONS, threadsOption, THREADS_HELP } from "../args";
import { applyGate, ffnStatLines, GATE_HELP, headStatLines, GATE_OPTIONS, layoutFor, parseGateOptions, progressLine } from "../gate-options";
import { logLine } from "../log";
import { UsageError } from "../usage-error";

export const help = `dynact perplexity -m MODEL [-t TOKENIZER] -d TEXT [--ctx N] [--max-tokens N] [gate options] [--json]

Perplexity of a text file. The text is encoded without BOS and the first --max-tokens ids are kept, then split into
consecutive windows of ctx-1 tokens; each window runs from a fresh KV cache as [BOS, t0 … t_{n-2}] and every text
token is scored. Prints mean NLL (nats), perplexity and per-layer MLP statistics.

  -d, --data FILE         text file
      --ctx N             positions per window including BOS (default: the model's context); the KV cache is sized to it
      --max-tokens N      score only the first N tokens (default: all)
      --prompt-tokens N   for griffin/tda gates: the first N positions of each window are its prompt (at most ctx-2)
      --act-stats         also print the fraction of exact zeros of act(W_gate x) per layer (JSON: act_zero_fraction)
${GATE_HELP}
      --json              {"mean_nll","perplexity","tokens","windows":[…],"ffn":{…}}
${THREADS_HELP}`;

export async function run(argv: string[]): Promise<void> {
  const { values: v } = parse(argv, {
    ...TEXT_OPTIONS,
    "prompt-tokens": { type: "string" },
    "act-stats": { type: "boolean", default: false },
    ...GATE_OPTIONS,
  });
  if (v.help) return void console.log(help);
  const file = requireString(v.model, "-m/--model");
  const data = requireString(v.data, "-d/--data");
  const maxTokens = number(v["max-tokens"], "--max-tokens", Infinity, isPosInt, "a positive integer");
  const promptLength = number(v["prompt-tokens"], "--prompt-tokens", 0, isPosInt, "a positive integer");
  const gates = parseGateOptions(v);
  // Only a gate that chooses its neurons from a prompt treats the first positions differently.
  if (v["prompt-tokens"] !== undefined && gates.spec.kind !== "griffin" && gates.spec.kind !== "tda") {
    throw new UsageError(`--prompt-tokens applies to griffin/tda gates; with --ffn-gate ${gates.spec.kind} it would change nothing`);
  }
  // Windows of --ctx positions start with BOS: ctx 1 would score no token.
  const ctx = ctxOption(v.ctx, 2);
  const threads = threadsOption(v.threads); // usage errors before a file is opened
  const log = (line: string) => logLine(line);
  const ckpt = openCheckpoint(file);
  const windowSize = runContextLength(ckpt.config, ctx);
  // A window runs [BOS, t0 … t_{n-2}]: a prompt of all its ctx - 1 positions leaves none to gate, and the result
  // would be the dense perplexity under the gate's name.
  if (promptLength > windowSize - 2) {
    throw new UsageError(`--prompt-tokens ${promptLength} leaves no position after the prompt in windows of ${windowSize} (at most ${windowSize - 2})`);
  }
  // The KV cache only needs the window (--ctx also lets a model that does not fit at full context load).
  const loaded = loadModel(ckpt, {
    tokenizer: v.tokenizer, activation: gates.activation, contextLength: ctx, ...layoutFor(gates), threads,
  });
  const ids = readTextTokens(data, loaded.tokenizer, maxTokens);
  applyGate(loaded, gates, log);
  const zeros = v["act-stats"] ? new ActivationZeros(loaded.model.config.nLayers) : undefined;
  if (zeros) loaded.model.traceFfn(zeros.tracer);
  const progress = progressLine(log);
  const t0 = performance.now();
  const r = perplexity(loaded.model, ids, { ctx, promptLength, onProgress: (d, t) => progress("scoring", d, t) });
  const seconds = (performance.now() - t0) / 1000;
  const ffn = loaded.model.ffnStats.summary();
  if (v.json) {
    console.log(JSON.stringify({ ...r, tokens_per_second: r.tokens / seconds, ffn_gate: v["ffn-gate"] ?? "dense", ffn_mode: gates.mode, ffn,
      head_gate: gates.headGate, kv_policy: gates.kvPolicy, attention: loaded.model.attentionStats,
      ...(zeros ? { act_zero_fraction: zeros.fractions() } : {}) }));
    return;
  }
  console.log(`perplexity ${r.perplexity.toFixed(4)}  mean NLL ${r.mean_nll.toFixed(6)} nats  over ${r.tokens} tokens (${r.windows.length} windows)`);
  for (const line of ffnStatLines(ffn)) console.log(line);
  if (zeros) console.log(`act(W_gate x) exact zeros per layer: ${zeros.fractions().map((z) => `${(100 * z).toFixed(1)}%`).join(" ")}`);
  if (gates.headGate !== "dense") for (const line of headStatLines(loaded.model.attentionStats)) console.log(line);
  log(`${(r.tokens / seconds).toFixed(1)} tokens/s scored`);
}
