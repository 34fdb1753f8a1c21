// The shape of a LLaMA model, whatever file it came from.
import { FormatError } from "./formats/format-error";

export type ActivationName = "silu" | "relu" | "relu2" | "gelu";
export const ACTIVATIONS: readonly ActivationName[] = ["silu", "relu", "relu2", "gelu"];

export interface LlamaConfig {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  /** Context length: positions the KV cache holds. */
  seqLen: number;
  ropeTheta: number;
  normEps: number;
  activation: ActivationName;
  /** ReLU on the outputs of the attention and MLP norms ("ReLU Strikes Back" stage 2); absent: none. */
  reluAfterNorm?: boolean;
  /**
   * Llama 3.1's RoPE frequency scaling, by its parameters (Hugging Face rope_scaling of type llama3) or as
   * llama.cpp stores it (a GGUF's rope_freqs divisors); absent: plain RoPE.
   */
  ropeScaling?: Llama3RopeScaling | RopeFreqDivisors;
}

/** llama.cpp's form of RoPE scaling: frequency j of a head is divided by divisors[j] (headSize/2 values). */
export interface RopeFreqDivisors {
  type: "divisors";
  divisors: Float32Array;
}

export interface Llama3RopeScaling {
  type: "llama3";
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  /** Context the model was pretrained with (original_max_position_embeddings). */
  originalContext: number;
}

export const headSize = (c: LlamaConfig): number => c.dim / c.nHeads;
export const kvDim = (c: LlamaConfig): number => (c.dim / c.nHeads) * c.nKvHeads;

// Larger than any LLaMA we can hold in wasm32; catches garbage headers before any allocation is sized from them.
const LIMIT = 1 << 24;

/** Throws FormatError (naming `file` and the field) unless the config describes a buildable model. */
export function validateConfig(c: LlamaConfig, file: string): void {
  const positive: (keyof LlamaConfig)[] = ["dim", "hiddenDim", "nLayers", "nHeads", "nKvHeads", "vocabSize", "seqLen"];
  for (const k of positive) {
    const v = c[k] as number;
    if (!Number.isInteger(v) || v <= 0 || v > LIMIT) throw new FormatError(file, k, `must be a positive integer, got ${v}`);
  }
  if (c.dim % c.nHeads !== 0) throw new FormatError(file, "nHeads", `dim ${c.dim} is not divisible by ${c.nHeads} heads`);
  if (headSize(c) % 2 !== 0) throw new FormatError(file, "nHeads", `head size ${headSize(c)} is odd (RoPE rotates pairs)`);
  if (c.nHeads % c.nKvHeads !== 0) {
    throw new FormatError(file, "nKvHeads", `${c.nKvHeads} KV heads do not divide ${c.nHeads} heads`);
  }
  if (!(c.ropeTheta > 0) || !Number.isFinite(c.ropeTheta)) throw new FormatError(file, "ropeTheta", `bad value ${c.ropeTheta}`);
  if (!(c.normEps > 0) || !(c.normEps < 1)) throw new FormatError(file, "normEps", `bad value ${c.normEps}`);
  if (!ACTIVATIONS.includes(c.activation)) throw new FormatError(file, "activation", `unknown ${String(c.activation)}`);
}

/** Parameter count (weights only). */
export function parameterCount(c: LlamaConfig, tiedOutput: boolean): number {
  const kv = kvDim(c);
  const perLayer = 2 * c.dim + 2 * c.dim * c.dim + 2 * kv * c.dim + 3 * c.dim * c.hiddenDim;
  return c.vocabSize * c.dim * (tiedOutput ? 1 : 2) + c.nLayers * perLayer + c.dim;
}
