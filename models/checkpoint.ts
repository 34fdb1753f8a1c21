// What a format reader produces before anything is loaded: the config and where each weight lives in the file.
// Nothing here holds weight data, so a model's memory can be sized (and refused) before a byte is read.
import { tensorBytes, type DType } from "../engine/dtype";
import type { LlamaConfig } from "./config";

export interface TensorEntry {
  /** Canonical (GGUF-style) name: token_embd, output_norm, output, blk.N.attn_q, … */
  name: string;
  dtype: DType;
  /** Row-major shape, outermost first: a Linear is [out, in]. */
  shape: number[];
  /** Byte offset of the data in the file. */
  fileOffset: number;
  /** The file holding the data, when not the checkpoint's path (safetensors: a shard in the model folder). */
  file?: string;
  /**
   * Rows are stored in Hugging Face's half-split RoPE order for this many heads; reading the tensor puts them
   * back in adjacent pairs (models/formats/hf-permute.ts).
   */
  permute?: { heads: number };
}

export interface Checkpoint {
  path: string;
  format: "llama2c" | "gguf" | "safetensors";
  config: LlamaConfig;
  /** Canonical name → entry. `output` is absent when the classifier is tied to the embedding. */
  tensors: Map<string, TensorEntry>;
}

export const LAYER_TENSORS = [
  "attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down",
] as const;

export function entryBytes(e: TensorEntry): number {
  return tensorBytes(e.dtype, e.shape);
}

/**
 * Canonical names of every tensor of a model of this config, lazily: a reader checking a header stops at the first
 * one missing, so a header's bogus layer count costs nothing (a list of 9 × 2^24 names would exhaust the heap).
 */
export function* canonicalNames(c: LlamaConfig): Generator<string> {
  yield* ["token_embd", "output_norm", "output"];
  for (let l = 0; l < c.nLayers; l++) for (const k of LAYER_TENSORS) yield `blk.${l}.${k}`;
}

/** The canonical shape ([out, in] for linears) of the tensor of this name, or undefined if the model has none. */
export function canonicalShape(c: LlamaConfig, name: string): number[] | undefined {
  switch (name) {
    case "token_embd": case "output": return [c.vocabSize, c.dim];
    case "output_norm": return [c.dim];
  }
  const m = /^blk\.(0|[1-9][0-9]*)\.([a-z_]+)$/.exec(name);
  if (!m || Number(m[1]) >= c.nLayers) return undefined;
  const kv = (c.dim / c.nHeads) * c.nKvHeads;
  switch (m[2] as (typeof LAYER_TENSORS)[number]) {
    case "attn_norm": case "ffn_norm": return [c.dim];
    case "attn_q": case "attn_output": return [c.dim, c.dim];
    case "attn_k": case "attn_v": return [kv, c.dim];
    case "ffn_gate": case "ffn_up": return [c.hiddenDim, c.dim];
    case "ffn_down": return [c.dim, c.hiddenDim];
    default: return undefined;
  }
}

/** Canonical shapes of every tensor of a model of this config, for writers (readers use canonicalShape). */
export function canonicalShapes(c: LlamaConfig): Map<string, number[]> {
  return new Map([...canonicalNames(c)].map((name) => [name, canonicalShape(c, name)!]));
}
