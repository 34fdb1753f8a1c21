// End-to-end decode speed: tokens/s on deterministic random-weight models, f32, one thread, greedy from BOS.
// When LLAMA2C_RUN points to a built llama2.c `run`, the same checkpoint runs through it in the same session,
// interleaved round by round, and the ratio of medians is reported.
import { performance } from "node:perf_hooks";
import { argmax } from "../engine/ops/argmax";
import type { LlamaModel } from "../models/llama";
import { buildModel, openCheckpoint } from "../models/load";
import { llama2cTokensPerSecond, llamaCppTokensPerSecond, peerBinary } from "./peers";
import { randomGgufModel, randomLlama2cModel, syntheticLlama2cTokenizer } from "./random-model";
import { SHAPES, type BenchShape } from "./shapes";
import { summarize, type Summary } from "./stats";

export interface DecodeBenchOptions {
  shapes?: BenchShape[];
  /** Positions to run per measurement (from BOS), as llama2.c's -n. */
  steps?: number;
  rounds?: number;
  /** Thread counts to measure dynact at (default [1]); llama2.c runs single-threaded. */
  threads?: number[];
  /** Weight types (default ["f32"]); other than f32 the model is a GGUF. */
  dtypes?: ("f32" | "f16" | "q8_0" | "q4_0")[];
  /** llama.cpp `llama-bench` binary; default from LLAMA_BENCH. It runs the same GGUF, one thread. */
  llamaBench?: string;
  /** llama2.c `run` binary; default from LLAMA2C_RUN. */
  llama2cRun?: string;
  log?: (line: string) => void;
}

export interface DecodeResult {
  shape: string;
  dtype: string;
  threads: number;
  steps: number;
  tokens_per_second: Summary;
  llama2c_tokens_per_second?: Summary;
  /** median(dynact) / median(llama2.c) */
  ratio_vs_llama2c?: number;
  llamacpp_tokens_per_second?: Summary;
  ratio_vs_llamacpp?: number;
}

/** Tokens/s of greedy decoding from BOS, timed after the first token as run.c times itself. */
export function decodeTokensPerSecond(model: LlamaModel, steps: number): number {
  let token = 1;
  let start = 0;
  for (let pos = 0; pos < steps; pos++) {
    token = argmax(model.forward(token, pos));
    if (pos === 0) start = performance.now();
  }
  return (steps - 1) / ((performance.now() - start) / 1000);
}

export function runDecodeBench(opts: DecodeBenchOptions = {}): DecodeResult[] {
  const shapes = opts.shapes ?? SHAPES;
  const steps = opts.steps ?? 256;
  const rounds = opts.rounds ?? 5;
  const log = opts.log ?? (() => {});
  const run = peerBinary("LLAMA2C_RUN", opts.llama2cRun);
  const threads = opts.threads ?? [1];
  const llamaBench = peerBinary("LLAMA_BENCH", opts.llamaBench);
  const models = shapes.flatMap((s) => (opts.dtypes ?? ["f32"]).map((dtype) => {
    log(`preparing ${s.name} ${dtype} (random weights)…`);
    const config = { ...s.config, seqLen: Math.max(steps, s.config.seqLen) };
    // The llama2.c file only where it is run (f32): at the 1B shape it would be 4.4 GB of nothing.
    const bin = dtype === "f32" ? randomLlama2cModel(s.name, config) : null;
    const gguf = dtype !== "f32" || llamaBench ? randomGgufModel(s.name, config, dtype) : null;
    const tokenizer = syntheticLlama2cTokenizer(s.config.vocabSize);
    return { shape: s, dtype, bin, gguf, tokenizer, model: buildModel(openCheckpoint(bin ?? gguf!)) };
  }));
  const ours = models.map(() => threads.map(() => [] as number[]));
  const llama2c = models.map(() => [] as number[]);
  const llamacpp = models.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) {
    models.forEach((m, i) => {
      threads.forEach((t, j) => {
        m.model.engine.startThreads(t);
        ours[i][j].push(decodeTokensPerSecond(m.model, steps));
      });
      if (run && m.bin) llama2c[i].push(llama2cTokensPerSecond(run, m.bin, m.tokenizer, steps));
      if (llamaBench) llamacpp[i].push(llamaCppTokensPerSecond(llamaBench, m.gguf!, { generate: steps }));
      log(`round ${r + 1}/${rounds} ${m.shape.name} ${m.dtype}: dynact ${threads.map((t, j) => `${ours[i][j].at(-1)!.toFixed(1)} (${t}T)`).join(", ")} tok/s` +
        (llama2c[i].length ? `, llama2.c ${llama2c[i].at(-1)!.toFixed(1)}` : "") +
        (llamacpp[i].length ? `, llama.cpp ${llamacpp[i].at(-1)!.toFixed(1)}` : ""));
    });
  }
  models.forEach((m) => m.model.engine.startThreads(1));
  return models.flatMap((m, i) => threads.map((t, j) => {
    const res: DecodeResult = { shape: m.shape.name, dtype: m.dtype, threads: t, steps, tokens_per_second: summarize(ours[i][j]) };
    if (llama2c[i].length) {
      res.llama2c_tokens_per_second = summarize(llama2c[i]);
      res.ratio_vs_llama2c = res.tokens_per_second.median / res.llama2c_tokens_per_second.median;
    }
    if (llamacpp[i].length) {
      res.llamacpp_tokens_per_second = summarize(llamacpp[i]);
      res.ratio_vs_llamacpp = res.tokens_per_second.median / res.llamacpp_tokens_per_second.median;
    }
    return res;
  }));
}
