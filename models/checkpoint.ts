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

/** Canonical shapes of every tensor of a model of this config ([out, in] for linears). */
export function canonicalShapes(c: LlamaConfig): Map<string, number[]> {
  const kv = (c.dim / c.nHeads) * c.nKvHeads;
  const m = new Map<string, number[]>([
    ["token_embd", [c.vocabSize, c.dim]],
    ["output_norm", [c.dim]],
    ["output", [c.vocabSize, c.dim]],
  ]);
  for (let l = 0; l < c.nLayers; l++) {
    const layer: Record<(typeof LAYER_TENSORS)[number], number[]> = {
      attn_norm: [c.dim], attn_q: [c.dim, c.dim], attn_k: [kv, c.dim], attn_v: [kv, c.dim],
      attn_output: [c.dim, c.dim], ffn_norm: [c.dim], ffn_gate: [c.hiddenDim, c.dim],
      ffn_up: [c.hiddenDim, c.dim], ffn_down: [c.dim, c.hiddenDim],
    };
    for (const [k, s] of Object.entries(layer)) m.set(`blk.${l}.${k}`, s);
  }
  return m;
}
