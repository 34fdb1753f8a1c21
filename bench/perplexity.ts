// Perplexity throughput: tokens scored per second on a random-weight model, with batched prompt processing (the
// default path) and token by token (forced by configuring a gate that keeps every neuron, which disables batching
// without changing a result).
import { performance } from "node:perf_hooks";
import { perplexity } from "../eval/perplexity";
import { FixedGate } from "../models/gates/fixed-gate";
import { buildModel, openCheckpoint } from "../models/load";
import { randomLlama2cModel } from "./random-model";
import type { BenchShape } from "./shapes";
import { summarize, type Summary } from "./stats";

export interface PerplexityBenchRow {
  shape: string;
  tokens: number;
  batched_tokens_per_second: Summary;
  token_by_token_tokens_per_second: Summary;
}

export function runPerplexityBench(opts: { shapes: BenchShape[]; tokens?: number; rounds?: number; log?: (l: string) => void }): PerplexityBenchRow[] {
  const tokens = opts.tokens ?? 512;
  return opts.shapes.map((shape) => {
    // A llama2.c model: BOS 1, as its tokenizer.bin has it.
    const model = buildModel(openCheckpoint(randomLlama2cModel(shape.name, shape.config)), { bosId: 1 });
    const ids = Array.from({ length: tokens }, (_, i) => 3 + ((i * 7919) % (shape.config.vocabSize - 3)));
    const all = Array.from({ length: shape.config.hiddenDim }, (_, i) => i);
    const batched: number[] = [];
    const single: number[] = [];
    for (let r = 0; r < (opts.rounds ?? 3); r++) {
      for (const [runs, gate] of [[batched, null], [single, new FixedGate("gate", all)]] as const) {
        model.configureFfn({ gate, mode: "mask" });
        const t0 = performance.now();
        perplexity(model, ids, { ctx: shape.config.seqLen });
        runs.push(tokens / ((performance.now() - t0) / 1000));
      }
      opts.log?.(`round ${r + 1} ${shape.name}: batched ${batched.at(-1)!.toFixed(1)}, token by token ${single.at(-1)!.toFixed(1)} tokens/s`);
    }
    return { shape: shape.name, tokens, batched_tokens_per_second: summarize(batched), token_by_token_tokens_per_second: summarize(single) };
  });
}
