// A model's weights as tensors in engine memory, read from a checkpoint without an intermediate JS copy.
import { closeSync, openSync, readSync } from "node:fs";
import type { Engine } from "../engine/engine";
import { ALIGN } from "../engine/arena";
import { tensorBytes, type DType } from "../engine/dtype";
import { dequantize, quantize } from "../engine/quant";
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
  /**
   * W_q, W_k, W_v, W_gate, W_up stored transposed ([in, out]: each input's column contiguous), for TEAL's
   * column-gather products (then W_o and W_down are transposed too). Replaces the row-major layout: no extra memory.
   */
  inputsTransposed?: boolean;
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
const engineBytes = (e: TensorEntry, layout: DownLayout = {}): number =>
  (layout.transposeDown && isDown(e) ? tensorBytes(transposedDownDType(e, layout.downDType), [e.shape[1], e.shape[0]])
    : tensorBytes(loadDType(e), e.shape)) + ALIGN;

const isDown = (e: TensorEntry): boolean => e.name.endsWith(".ffn_down");

/** How W_down is laid out in memory (LoadWeightsOptions' part that changes its size). */
export interface DownLayout {
  transposeDown?: boolean;
  /** The dtype of a transposed quantized W_down (default q8_0); see transposedDownDType. */
  downDType?: "q8_0" | "f16";
}

/**
 * The dtype W_downᵀ is stored in. Q8_0/Q4_0 blocks run along the input dimension (hidden), so the transposed rows
 * (length dim) must be re-blocked: by default a quantized W_down is requantized to Q8_0 along them — the same
 * 8.5 bits per weight as a Q8_0 model's dense W_down, so the column scatter reads no more bytes than the dense
 * product (the down product is memory-bound), at the cost of a second rounding (its effect on perplexity is in the
 * README) — or, asked for, kept as F16 (f16 holds the dequantized d·q to 11 bits: next to no second rounding, but
 * 16 bits per weight). f32 and f16 files keep their dtype (an exact transpose), bf16 widens to f32 (exact). An
 * explicit `requested` applies to any file (to measure a Q8_0 W_downᵀ on an f32/f16 model); F16 wherever dim is
 * not a multiple of 32.
 */
export function transposedDownDType(e: TensorEntry, requested?: "q8_0" | "f16"): DType {
  const blockable = e.shape[0] % 32 === 0;
  if (requested === "q8_0") return blockable ? "q8_0" : "f16";
  if (requested === "f16") return "f16";
  if (e.dtype === "q8_0" || e.dtype === "q4_0") return blockable ? "q8_0" : "f16";
  return e.dtype === "bf16" ? "f32" : e.dtype;
}

/** Engine bytes the checkpoint's tensors take, alignment included (with W_down laid out as `layout` says). */
export function weightBytes(ckpt: Checkpoint, layout: DownLayout = {}): number {
  let total = 0;
  for (const e of ckpt.tensors.values()) total += engineBytes(e, layout);
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

/**
 * A checkpoint's tensors for the format writers: every canonical tensor's values as f32 (readTensorData), the
 * classifier read from token_embd when the checkpoint ties them, and whether it does.
 */
export function tensorSource(ckpt: Checkpoint): { tied: boolean; tensor: (name: string) => Float32Array } {
  const tied = !ckpt.tensors.has("output");
  return { tied, tensor: (name) => readTensorData(ckpt, name === "output" && tied ? "token_embd" : name) };
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

export interface LoadWeightsOptions extends DownLayout {
  /** Store W_down transposed ([hidden, dim]) for the sparse FFN's column scatter. */
  transposeDown?: boolean;
  /** Store W_o transposed ([dim_in, dim_out]) for head-sparse attention. */
  transposeWo?: boolean;
  /** Store every linear but the classifier transposed (f32 only): TEAL run as column-gather products. */
  transposeInputs?: boolean;
  onProgress?: (done: number, total: number) => void;
}

// One layer's matrix at a time goes through a JS buffer to be transposed: bounded extra memory. Another dtype
// than f32 is decoded, transposed and re-encoded along the new rows as `dtype` (transposedDownDType).
function readTransposed(fd: number, ckpt: Checkpoint, e: TensorEntry, engine: Engine, dtype: DType = "f32"): Tensor {
  const [rows, cols] = e.shape;
  if (!isDown(e) && e.dtype !== "f32") throw new FormatError(ckpt.path, e.name, `a transposed ${e.dtype} matrix is not supported yet (f32 only)`);
  let src: Float32Array;
  if (e.dtype === "f32") {
    src = new Float32Array(rows * cols);
    readEntry(fd, ckpt, e, new Uint8Array(src.buffer));
  } else {
    const bytes = new Uint8Array(entryBytes(e));
    readEntry(fd, ckpt, e, bytes);
    src = dequantize(e.dtype, bytes, rows * cols);
  }
  const tr = dtype === "f32" ? null : new Float32Array(rows * cols);
  const t = engine.tensor([cols, rows], dtype);
  const dst = tr ?? t.f32();
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) dst[c * rows + r] = src[r * cols + c];
  if (tr) t.bytesView().set(quantize(dtype, tr));
  return t;
}

const INPUT_LINEARS = [".attn_q", ".attn_k", ".attn_v", ".ffn_gate", ".ffn_up"];

export function loadWeights(engine: Engine, ckpt: Checkpoint, opts: LoadWeightsOptions = {}): LlamaWeights {
  const transposeInputs = opts.transposeInputs ?? false;
  const transposeDown = (opts.transposeDown ?? false) || transposeInputs;
  const transposeWo = (opts.transposeWo ?? false) || transposeInputs;
  const total = weightBytes(ckpt, opts);
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
      if ((transposeDown && e.name.endsWith(".ffn_down")) || (transposeWo && e.name.endsWith(".attn_output")) ||
        (transposeInputs && INPUT_LINEARS.some((s) => e.name.endsWith(s)))) {
        tensors.set(e.name, readTransposed(fd, ckpt, e, engine, isDown(e) ? transposedDownDType(e, opts.downDType) : "f32"));
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
      done += engineBytes(e, opts);
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
      inputsTransposed: transposeInputs,
    })),
    finalNorm: get("output_norm"),
    output: tensors.get("output") ?? tokenEmbedding,
  };
}
