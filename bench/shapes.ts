// Model shapes the benchmarks run at (llama2.c's TinyStories family and a 1B-class shape).
import type { LlamaConfig } from "../models/config";

export interface BenchShape {
  name: string;
  config: LlamaConfig;
}

const base = { vocabSize: 32000, seqLen: 256, ropeTheta: 10000, normEps: 1e-5, activation: "silu" as const };

export const SHAPES: BenchShape[] = [
  { name: "stories15M", config: { ...base, dim: 288, hiddenDim: 768, nLayers: 6, nHeads: 6, nKvHeads: 6 } },
  { name: "stories42M", config: { ...base, dim: 512, hiddenDim: 1376, nLayers: 8, nHeads: 8, nKvHeads: 8 } },
  { name: "stories110M", config: { ...base, dim: 768, hiddenDim: 2048, nLayers: 12, nHeads: 12, nKvHeads: 12 } },
];

/**
 * A 1B-class shape (TinyLlama-1.1B's: GQA with 4 KV heads), by name only: its f32 weights (4.4 GB) exceed wasm32's
 * 4 GiB, so it runs quantized (`--shapes 1B --dtypes q8_0,q4_0`).
 */
export const ONE_B: BenchShape = {
  name: "1B", config: { ...base, dim: 2048, hiddenDim: 5632, nLayers: 22, nHeads: 32, nKvHeads: 4 },
};

export function shapeByName(name: string): BenchShape {
  const s = [...SHAPES, ONE_B].find((x) => x.name === name);
  if (!s) throw new Error(`unknown shape ${name} (known: ${[...SHAPES, ONE_B].map((x) => x.name).join(", ")})`);
  return s;
}
