// A model's weights as tensors in engine memory, read from a checkpoint without an intermediate JS copy.
import { closeSync, openSync, readSync } from "node:fs";
import type { Engine } from "../engine/engine";
import { ALIGN } from "../engine/arena";
import { tensorBytes, type DType } from "../engine/dtype";
import { dequantize } from "../engine/quant";
import type { Tensor } from "../engine/tensor";
import { entryBytes, type Checkpoint, type TensorEntry } from "./checkpoint";
import { FormatError } from "./formats/format-error";
import { halfSplitToInterleaved } from "./formats/hf-permute";

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
  /** W_o as [dim_out, dim_in], or [dim_in, dim_out] when woTransposed (for head-sparse attention). */
  woTransposed: boolean;
}

export interface LlamaWeights {
  tokenEmbedding: Tensor;
  layers: LayerWeights[];
  finalNorm: Tensor;
  /** The classifier; the same tensor as tokenEmbedding when tied. */
  output: Tensor;
}

// Norm vectors load as f32 whatever the file holds (HF f16/bf16 folders store them in 16 bits): the norm
// kernels take f32 weights, and the vectors are tiny.
const loadDType = (e: TensorEntry): DType => (e.shape.length === 1 ? "f32" : e.dtype);
const engineBytes = (e: TensorEntry): number => tensorBytes(loadDType(e), e.shape) + ALIGN;

/** Engine bytes the checkpoint's tensors take, alignment included. */
export function weightBytes(ckpt: Checkpoint): number {
  let total = 0;
  for (const e of ckpt.tensors.values()) total += engineBytes(e);
  return total;
}

const CHUNK = 1 << 26; // readSync takes at most 2 GiB at once; 64 MiB keeps each call short

function readEntry(fd: number, ckpt: Checkpoint, e: TensorEntry, dest: Uint8Array): void {
  for (let at = 0; at < dest.length; ) {
    const n = readSync(fd, dest, at, Math.min(CHUNK, dest.length - at), e.fileOffset + at);
    if (n <= 0) throw new FormatError(e.file ?? ckpt.path, e.name, `file ends inside the tensor (offset ${e.fileOffset + at})`);
    at += n;
  }
  // HF W_q/W_k rows back to adjacent RoPE pairs: every path from a file to memory passes here.
  if (e.permute) halfSplitToInterleaved(dest, e.shape[0], e.permute.heads);
}

/** One tensor's values as f32, dequantized if stored otherwise (for conversion and tests; models load with loadWeights). */
export function readTensorData(ckpt: Checkpoint, name: string): Float32Array {
  const e = ckpt.tensors.get(name);
  if (!e) throw new FormatError(ckpt.path, name, "tensor missing");
  const bytes = new Uint8Array(entryBytes(e));
  const fd = openSync(e.file ?? ckpt.path, "r");
  try {
    readEntry(fd, ckpt, e, bytes);
  } finally {
    closeSync(fd);
  }
  return e.dtype === "f32" ? new Float32Array(bytes.buffer) : dequantize(e.dtype, bytes, e.shape.reduce((a, b) => a * b, 1));
}

export interface LoadWeightsOptions {
  /** Store W_down transposed ([hidden, dim]) for the sparse FFN's column scatter. */
  transposeDown?: boolean;
  /** Store W_o transposed ([dim_in, dim_out]) for head-sparse attention. */
  transposeWo?: boolean;
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
  const transposeWo = opts.transposeWo ?? false;
  const total = weightBytes(ckpt);
  let done = 0;
  const fds = new Map<string, number>(); // one per file: sharded safetensors spread tensors over several
  const fdOf = (e: TensorEntry): number => {
    const file = e.file ?? ckpt.path;
    if (!fds.has(file)) fds.set(file, openSync(file, "r"));
    return fds.get(file)!;
  };
  const tensors = new Map<string, Tensor>();
  try {
    for (const e of ckpt.tensors.values()) {
      const fd = fdOf(e);
      if ((transposeDown && e.name.endsWith(".ffn_down")) || (transposeWo && e.name.endsWith(".attn_output"))) {
        tensors.set(e.name, readTransposed(fd, ckpt, e, engine));
      } else if (loadDType(e) !== e.dtype) {
        const bytes = new Uint8Array(entryBytes(e));
        readEntry(fd, ckpt, e, bytes);
        const t = engine.tensor(e.shape, loadDType(e));
        t.write(dequantize(e.dtype, bytes, t.size));
        tensors.set(e.name, t);
      } else {
        const t = engine.tensor(e.shape, e.dtype);
        readEntry(fd, ckpt, e, t.bytesView());
        tensors.set(e.name, t);
      }
      done += engineBytes(e);
      opts.onProgress?.(done, total);
    }
  } finally {
    for (const fd of fds.values()) closeSync(fd);
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
      woTransposed: transposeWo,
    })),
    finalNorm: get("output_norm"),
    output: tensors.get("output") ?? tokenEmbedding,
  };
}
