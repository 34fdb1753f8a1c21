// Training throughput: tokens/s of full training steps (forward, backward, gradient norm, AdamW) on a
// random-weight model of the stories260K shape (the model dynact relufy is measured on), f32, one thread.
// The TS-only ops (f32 buffers outside wasm) are measured too, to show what the wasm kernels buy.
// Export for `dynact bench`: runTrainBench(opts) → TrainBenchResult[].
import { performance } from "node:perf_hooks";
import { randomTensor } from "./random-model";
import { summarize, type Summary } from "./stats";
import type { LlamaConfig } from "../models/config";
import { AdamW, gradNorm } from "../models/train/adamw";
import { buildTrainModel } from "../models/train/build";
import { TrainModel } from "../models/train/model";
import { tsOps } from "../models/train/ops";
import { Params } from "../models/train/params";

/** stories260K's shape (llama2.c's smallest TinyStories model). */
export const STORIES260K: LlamaConfig = { dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512,
  seqLen: 512, ropeTheta: 10000, normEps: 1e-5, activation: "relu" };

export interface TrainBenchOptions {
  config?: LlamaConfig;
  batch?: number;
  seq?: number;
  /** Timed steps per round (after one untimed warm-up step). */
  steps?: number;
  rounds?: number;
  /** Backends to measure (default both). */
  backends?: ("wasm" | "ts")[];
  log?: (line: string) => void;
}

export interface TrainBenchResult {
  backend: "wasm" | "ts";
  batch: number;
  seq: number;
  tokens_per_second: Summary;
}

function stepTokensPerSecond(model: TrainModel, opt: AdamW, tokens: Int32Array, targets: Int32Array, B: number, T: number, steps: number): number {
  const step = () => {
    model.forward(tokens, targets, B, T);
    model.params.grad.fill(0);
    model.backward(new Array<number>(model.config.nLayers).fill(0.01));
    opt.update(1e-4, Math.min(1, 1 / gradNorm(model.params)));
  };
  step();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) step();
  return (steps * B * T) / ((performance.now() - t0) / 1000);
}

export function runTrainBench(opts: TrainBenchOptions = {}): TrainBenchResult[] {
  const config = opts.config ?? STORIES260K;
  const B = opts.batch ?? 4, T = opts.seq ?? 256, steps = opts.steps ?? 3, rounds = opts.rounds ?? 3;
  const log = opts.log ?? (() => {});
  const weights = (name: string) => randomTensor(config, name, 1);
  const tokens = Int32Array.from({ length: B * T }, (_, i) => (i * 7919) % config.vocabSize);
  const targets = Int32Array.from({ length: B * T }, (_, i) => (i * 104729 + 1) % config.vocabSize);
  const models = {
    wasm: () => buildTrainModel(config, true, weights, B, T),
    ts: () => new TrainModel(Params.from(config, true, weights, tsOps(Float32Array)), B, T),
  };
  return (opts.backends ?? ["wasm", "ts"]).map((backend) => {
    const model = models[backend]();
    const opt = new AdamW(model.params);
    const runs = Array.from({ length: rounds }, () => stepTokensPerSecond(model, opt, tokens, targets, B, T, steps));
    const result = { backend, batch: B, seq: T, tokens_per_second: summarize(runs) };
    log(`train ${backend} ${B}×${T}: ${result.tokens_per_second.median.toFixed(0)} tokens/s (median of ${rounds})`);
    return result;
  });
}
