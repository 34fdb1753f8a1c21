// The shape of a LLaMA model, whatever file it came from.
import { brief, FormatError } from "./formats/format-error";

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
  validateRopeScaling(c, file);
}

/** The llama3 parameters' names, in order (readers map `ropeScaling.NAME` to their own keys for the messages). */
export const LLAMA3_PARAMETERS = ["factor", "lowFreqFactor", "highFreqFactor", "originalContext"] as const;

// The one check of RoPE scaling, whichever file it came from (config.json, GGUF keys or rope_freqs, a training
// checkpoint) or a caller built: its fields are named ropeScaling.NAME for withFileKeys.
function validateRopeScaling(c: LlamaConfig, file: string): void {
  const s = c.ropeScaling;
  if (s === undefined) return;
  if (s.type === "llama3") {
    for (const k of LLAMA3_PARAMETERS) {
      const v = s[k];
      if (typeof v !== "number" || !(v > 0) || !Number.isFinite(v)) throw new FormatError(file, `ropeScaling.${k}`, `${brief(v)} is not a positive number`);
    }
    // Equal factors divide by zero at the band's edge; swapped ones make no blend band.
    if (!(s.highFreqFactor > s.lowFreqFactor)) {
      throw new FormatError(file, "ropeScaling.highFreqFactor", `${s.highFreqFactor} must exceed the low frequency factor ${s.lowFreqFactor}`);
    }
  } else if (s.type === "divisors") {
    const half = headSize(c) / 2;
    if (s.divisors.length !== half) throw new FormatError(file, "ropeScaling.divisors", `${s.divisors.length} divisors for a head of ${half} frequencies`);
    const bad = s.divisors.findIndex((f) => !(f > 0 && Number.isFinite(f)));
    if (bad >= 0) throw new FormatError(file, "ropeScaling.divisors", `divisor ${bad} is ${s.divisors[bad]}; divisors must be finite and positive`);
  } else {
    throw new FormatError(file, "ropeScaling", `${brief(s)} is neither llama3 parameters nor frequency divisors`);
  }
}

/** Parameter count (weights only). */
export function parameterCount(c: LlamaConfig, tiedOutput: boolean): number {
  const kv = kvDim(c);
  const perLayer = 2 * c.dim + 2 * c.dim * c.dim + 2 * kv * c.dim + 3 * c.dim * c.hiddenDim;
  return c.vocabSize * c.dim * (tiedOutput ? 1 : 2) + c.nLayers * perLayer + c.dim;
}
