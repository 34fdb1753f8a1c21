// A model's weights as tensors in engine memory, read from a checkpoint without an intermediate JS copy.
import { closeSync, openSync, readSync } from "node:fs";
import type { Engine } from "../engine/engine";
import { ALIGN } from "../engine/arena";
import type { Tensor } from "../engine/tensor";
import { entryBytes, type Checkpoint, type TensorEntry } from "./checkpoint";
import { FormatError } from "./formats/format-error";

export interface LayerWeights {
  attnNorm: Tensor;
  wq: Tensor;
  wk: Tensor;
  wv: Tensor;
  wo: Tensor;
  ffnNorm: Tensor;
  wGate: Tensor;
  wUp: Tensor;
  /** [dim, hidden], or [hidden, dim] when downTransposed (each neuron's column contiguous, for sparse FFNs). */
  wDown: Tensor;
  downTransposed: boolean;
}

export interface LlamaWeights {
  tokenEmbedding: Tensor;
  layers: LayerWeights[];
  finalNorm: Tensor;
  /** The classifier; the same tensor as tokenEmbedding when tied. */
  output: Tensor;
}

/** Engine bytes the checkpoint's tensors take, alignment included. */
export function weightBytes(ckpt: Checkpoint): number {
  let total = 0;
  for (const e of ckpt.tensors.values()) total += entryBytes(e) + ALIGN;
  return total;
}

const CHUNK = 1 << 26; // readSync takes at most 2 GiB at once; 64 MiB keeps each call short

function readEntry(fd: number, ckpt: Checkpoint, e: TensorEntry, dest: Uint8Array): void {
  for (let at = 0; at < dest.length; ) {
    const n = readSync(fd, dest, at, Math.min(CHUNK, dest.length - at), e.fileOffset + at);
    if (n <= 0) throw new FormatError(ckpt.path, e.name, `file ends inside the tensor (offset ${e.fileOffset + at})`);
    at += n;
  }
}

/** One f32 tensor's values as a JS array (for conversion and tests; models load with loadWeights). */
export function readTensorData(ckpt: Checkpoint, name: string): Float32Array {
  const e = ckpt.tensors.get(name);
  if (!e) throw new FormatError(ckpt.path, name, "tensor missing");
  if (e.dtype !== "f32") throw new FormatError(ckpt.path, name, `is ${e.dtype}, expected f32`);
  const out = new Float32Array(entryBytes(e) / 4);
  const fd = openSync(ckpt.path, "r");
  try {
    readEntry(fd, ckpt, e, new Uint8Array(out.buffer));
  } finally {
    closeSync(fd);
  }
  return out;
}

export interface LoadWeightsOptions {
  /** Store W_down transposed ([hidden, dim]) for the sparse FFN's column scatter. */
  transposeDown?: boolean;
  onProgress?: (done: number, total: number) => void;
}

// One layer's matrix at a time goes through a JS buffer to be transposed: bounded extra memory.
function readTransposed(fd: number, ckpt: Checkpoint, e: TensorEntry, engine: Engine): Tensor {
  if (e.dtype !== "f32") throw new FormatError(ckpt.path, e.name, `a transposed ${e.dtype} W_down is not supported yet`);
  const [rows, cols] = e.shape;
  const src = new Float32Array(rows * cols);
  readEntry(fd, ckpt, e, new Uint8Array(src.buffer));
  const t = engine.tensor([cols, rows]);
  const dst = t.f32();
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) dst[c * rows + r] = src[r * cols + c];
  return t;
}

export function loadWeights(engine: Engine, ckpt: Checkpoint, opts: LoadWeightsOptions = {}): LlamaWeights {
  const transposeDown = opts.transposeDown ?? false;
  const total = weightBytes(ckpt);
  let done = 0;
  const fd = openSync(ckpt.path, "r");
  const tensors = new Map<string, Tensor>();
  try {
    for (const e of ckpt.tensors.values()) {
      if (transposeDown && e.name.endsWith(".ffn_down")) {
        tensors.set(e.name, readTransposed(fd, ckpt, e, engine));
      } else {
        const t = engine.tensor(e.shape, e.dtype);
        readEntry(fd, ckpt, e, t.bytesView());
        tensors.set(e.name, t);
      }
      done += entryBytes(e) + ALIGN;
      opts.onProgress?.(done, total);
    }
  } finally {
    closeSync(fd);
  }
  const get = (name: string): Tensor => {
    const t = tensors.get(name);
    if (!t) throw new FormatError(ckpt.path, name, "tensor missing");
    return t;
  };
  const tokenEmbedding = get("token_embd");
  return {
    tokenEmbedding,
    layers: Array.from({ length: ckpt.config.nLayers }, (_, l) => ({
      attnNorm: get(`blk.${l}.attn_norm`),
      wq: get(`blk.${l}.attn_q`),
      wk: get(`blk.${l}.attn_k`),
      wv: get(`blk.${l}.attn_v`),
      wo: get(`blk.${l}.attn_output`),
      ffnNorm: get(`blk.${l}.ffn_norm`),
      wGate: get(`blk.${l}.ffn_gate`),
      wUp: get(`blk.${l}.ffn_up`),
      wDown: get(`blk.${l}.ffn_down`),
      downTransposed: transposeDown,
    })),
    finalNorm: get("output_norm"),
    output: tensors.get("output") ?? tokenEmbedding,
  };
}
