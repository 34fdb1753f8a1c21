// Prompt processing speed: tokens/s of running a prompt through the model in chunks (LlamaModel.prefill:
// forwardBatch, GEMMs, the last position's logits) against token by token (forward per position, as prompts ran
// before batching: logits at every position), on deterministic random-weight models at the stories shapes. Both
// run on the same model in the same round, interleaved, so machine noise hits them alike. With LLAMA_BENCH set,
// llama.cpp's llama-bench processes a prompt of the same length (its pp test) on a GGUF of the same weights at the
// same thread counts, in the same rounds, and the ratio of medians is reported. One shape is loaded at a time
// (the 110M model alone is 438 MB of f32).
import { performance } from "node:perf_hooks";
import type { GgufDType } from "../models/formats/gguf";
import type { LlamaModel } from "../models/llama";
import { buildModel, openCheckpoint } from "../models/load";
import { llamaCppTokensPerSecond, peerBinary } from "./peers";
import { randomGgufModel, randomLlama2cModel } from "./random-model";
import { SHAPES, type BenchShape } from "./shapes";
import { summarize, type Summary } from "./stats";

export interface PrefillBenchOptions {
  shapes?: BenchShape[];
  /** Prompt length (default 64, llama-bench's pp64 of the issue). */
  tokens?: number;
  rounds?: number;
  /** Thread counts (default [1, 2]). */
  threads?: number[];
  /** Weight types (default ["f32"]); other than f32 the model is a GGUF. */
  dtypes?: GgufDType[];
  /** llama.cpp `llama-bench` binary; default from LLAMA_BENCH. */
  llamaBench?: string;
  log?: (line: string) => void;
}

export interface PrefillResult {
  shape: string;
  dtype: string;
  threads: number;
  tokens: number;
  prefill_tokens_per_second: Summary;
  token_by_token_tokens_per_second: Summary;
  llamacpp_prefill_tokens_per_second?: Summary;
  /** median(dynact batched) / median(llama.cpp) */
  ratio_vs_llamacpp?: number;
}

/** BOS then ids spread over the vocabulary past the special tokens. */
function promptIds(tokens: number, vocabSize: number): number[] {
  return Array.from({ length: tokens }, (_, i) => (i === 0 ? 1 : 3 + ((i * 7919) % (vocabSize - 3))));
}

function tokensPerSecond(ids: readonly number[], run: () => void): number {
  const start = performance.now();
  run();
  return ids.length / ((performance.now() - start) / 1000);
}

function measure(model: LlamaModel, ids: readonly number[]): { batched: number; tokenByToken: number } {
  return {
    batched: tokensPerSecond(ids, () => model.prefill(ids)),
    tokenByToken: tokensPerSecond(ids, () => ids.forEach((id, pos) => model.forward(id, pos))),
  };
}

export function runPrefillBench(opts: PrefillBenchOptions = {}): PrefillResult[] {
  const shapes = opts.shapes ?? SHAPES;
  const tokens = opts.tokens ?? 64;
  const rounds = opts.rounds ?? 5;
  const threads = opts.threads ?? [1, 2];
  const log = opts.log ?? (() => {});
  const llamaBench = peerBinary("LLAMA_BENCH", opts.llamaBench);
  const results: PrefillResult[] = [];
  for (const s of shapes) {
    for (const dtype of opts.dtypes ?? ["f32"]) {
      log(`preparing ${s.name} ${dtype} (random weights)…`);
      const config = { ...s.config, seqLen: Math.max(tokens, s.config.seqLen) };
      const file = dtype === "f32" ? randomLlama2cModel(s.name, config) : randomGgufModel(s.name, config, dtype);
      const model = buildModel(openCheckpoint(file));
      const gguf = llamaBench ? randomGgufModel(s.name, config, dtype) : null;
      const ids = promptIds(tokens, config.vocabSize);
      measure(model, ids); // warm-up: first touches of weights and scratch
      const batched = threads.map(() => [] as number[]);
      const single = threads.map(() => [] as number[]);
      const peer = threads.map(() => [] as number[]);
      for (let r = 0; r < rounds; r++) {
        threads.forEach((t, j) => {
          model.engine.startThreads(t);
          const m = measure(model, ids);
          batched[j].push(m.batched);
          single[j].push(m.tokenByToken);
          if (llamaBench) peer[j].push(llamaCppTokensPerSecond(llamaBench, gguf!, { prompt: tokens }, t));
        });
        log(`round ${r + 1}/${rounds} ${s.name} ${dtype}: ` + threads.map((t, j) =>
          `${t}T batched ${batched[j].at(-1)!.toFixed(1)}, token by token ${single[j].at(-1)!.toFixed(1)}` +
          (llamaBench ? `, llama.cpp ${peer[j].at(-1)!.toFixed(1)}` : "") + " tok/s").join("; "));
      }
      model.engine.startThreads(1);
      threads.forEach((t, j) => {
        const res: PrefillResult = {
          shape: s.name, dtype, threads: t, tokens,
          prefill_tokens_per_second: summarize(batched[j]),
          token_by_token_tokens_per_second: summarize(single[j]),
        };
        if (llamaBench) {
          res.llamacpp_prefill_tokens_per_second = summarize(peer[j]);
          res.ratio_vs_llamacpp = res.prefill_tokens_per_second.median / res.llamacpp_prefill_tokens_per_second.median;
        }
        results.push(res);
      });
    }
  }
  return results;
}
