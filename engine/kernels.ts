// The wasm kernel module: its typed exports and how to instantiate it. A typed wrapper over
// WebAssembly.instantiate rather than @assemblyscript/loader (deprecated since AS 0.20): the kernels take and
// return numbers only, so no marshalling is needed.
import { readFileSync } from "node:fs";

/** Exports of kernels-as/index.ts. Pointers are byte offsets into the engine's memory. */
export interface Kernels {
  heap_base(): number;
  matvec_f32(out: number, w: number, x: number, n: number, rowStart: number, rowEnd: number): void;
  matvec_f16(out: number, w: number, x: number, n: number, rowStart: number, rowEnd: number): void;
  matvec_bf16(out: number, w: number, x: number, n: number, rowStart: number, rowEnd: number): void;
  /** x: n f32 (n a multiple of 32) -> n/32 Q8_0 blocks at dst. */
  quantize_q8_0(dst: number, x: number, n: number): void;
  /** x: n f32 (n a multiple of 32) -> the activation of the quantized products (ACT_BLOCK_BYTES per 32) at dst. */
  quantize_act_q8_0(dst: number, x: number, n: number): void;
  /** The same for the Q4_0 products (their own layout of the same quantized values). */
  quantize_act_q4_0(dst: number, x: number, n: number): void;
  /** xa: x quantized by quantize_act_q8_0 (quantize_act_q4_0 for matvec_q4_0). */
  matvec_q8_0(out: number, w: number, xa: number, n: number, rowStart: number, rowEnd: number): void;
  matvec_q4_0(out: number, w: number, xa: number, n: number, rowStart: number, rowEnd: number): void;
  /** out[t, r] = w[r,:] · x[t,:] for t < tokens, rows [rowStart, rowEnd); out rows outStride floats apart. */
  gemm_f32(out: number, w: number, x: number, n: number, rowStart: number, rowEnd: number, tokens: number, outStride: number): void;
  gemm_f16(out: number, w: number, x: number, n: number, rowStart: number, rowEnd: number, tokens: number, outStride: number): void;
  gemm_bf16(out: number, w: number, x: number, n: number, rowStart: number, rowEnd: number, tokens: number, outStride: number): void;
  /** xa: `tokens` rows quantized by quantize_act_q8_0 (_q4_0 for Q4_0 weights), one after another. */
  gemm_q8_0(out: number, w: number, xa: number, n: number, rowStart: number, rowEnd: number, tokens: number, outStride: number): void;
  gemm_q4_0(out: number, w: number, xa: number, n: number, rowStart: number, rowEnd: number, tokens: number, outStride: number): void;
  sum_f32(x: number, n: number): number;
  /** iters rounds of mul + add on ten f32x4 chains (80 flops a round): the arithmetic roofline. */
  mul_add_f32(iters: number, seed: number): number;
  rmsnorm_f32(out: number, x: number, w: number, n: number, eps: number): void;
  rope_f32(x: number, nHeads: number, headSize: number, cos: number, sin: number): void;
  softmax_f32(x: number, n: number): void;
  silu_f32(out: number, x: number, n: number): void;
  relu_f32(out: number, x: number, n: number): void;
  relu2_f32(out: number, x: number, n: number): void;
  gelu_f32(out: number, x: number, n: number): void;
  abs_mul_f32(out: number, x: number, c: number, n: number): void;
  sparsify_f32(x: number, n: number, t: number): void;
  mul_f32(out: number, a: number, b: number, n: number): void;
  add_f32(out: number, a: number, b: number, n: number): void;
  argmax_f32(x: number, n: number): number;
  matvec_rows_f32(out: number, w: number, x: number, n: number, idx: number, count: number): void;
  matvec_rows_f16(out: number, w: number, x: number, n: number, idx: number, count: number): void;
  matvec_rows_bf16(out: number, w: number, x: number, n: number, idx: number, count: number): void;
  scatter_axpy_f32(out: number, wt: number, a: number, idx: number, count: number, dim: number): void;
  /** xa: x quantized by quantize_act_q8_0 / _q4_0 (as the weights); rows S[k] of a Q8_0 / Q4_0 matrix. */
  matvec_rows_q8_0(out: number, w: number, xa: number, n: number, idx: number, count: number): void;
  matvec_rows_q4_0(out: number, w: number, xa: number, n: number, idx: number, count: number): void;
  /** wt: Q8_0 [hidden, dim] (dim a multiple of 32). */
  scatter_axpy_q8_0(out: number, wt: number, a: number, idx: number, count: number, dim: number): void;
  /** wt: F16 [hidden, dim]. */
  scatter_axpy_f16(out: number, wt: number, a: number, idx: number, count: number, dim: number): void;
  /** idx/vals[0..count) = the nonzero entries of x (ascending); returns count. */
  compact_nonzero_f32(idx: number, vals: number, x: number, n: number): number;
  gather_f32(out: number, src: number, idx: number, count: number): void;
  scatter_f32(out: number, src: number, idx: number, count: number): void;
  scatter_heads_f32(out: number, wt: number, o: number, heads: number, count: number, headSize: number, dim: number): void;
  select_threshold_f32(idx: number, scores: number, n: number, eps: number): number;
  kth_largest_f32(scores: number, n: number, k: number, scratch: number): number;
  select_topk_f32(idx: number, scores: number, n: number, k: number, scratch: number): number;
  attention_f32(
    out: number, q: number, kCache: number, vCache: number, att: number,
    nHeads: number, nKvHeads: number, headSize: number, kvStride: number, nPos: number, attStride: number,
    heads: number, headCount: number, valid: number, validStride: number,
  ): void;
  /** Training: causal attention of one (sequence, head) over T rows; keeps each row's log-sum-exp. */
  attention_train_fwd_f32(
    out: number, lse: number, q: number, k: number, v: number, scratch: number, T: number, hs: number, qStride: number, kvStride: number,
  ): void;
  /** Training: its backward pass, accumulating into dq, dk, dv. */
  attention_train_bwd_f32(
    dq: number, dk: number, dv: number, dout: number, out: number, lse: number, q: number, k: number, v: number, scratch: number,
    T: number, hs: number, qStride: number, kvStride: number,
  ): void;
}

// The wasm sits next to the bundle (dist/cli.js, dist/index.js) or, when running from source, in dist/.
const candidates = [new URL("./kernels.wasm", import.meta.url), new URL("../dist/kernels.wasm", import.meta.url)];

let compiled: WebAssembly.Module | undefined;

/** The compiled kernel module, compiled once per process (workers receive it by message). */
export function kernelModule(): WebAssembly.Module {
  if (compiled) return compiled;
  for (const url of candidates) {
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = new Uint8Array(readFileSync(url));
    } catch {
      continue;
    }
    compiled = new WebAssembly.Module(bytes);
    return compiled;
  }
  throw new Error("dist/kernels.wasm not found: run `npm run build:wasm` first");
}

export function instantiateKernels(memory: WebAssembly.Memory, module = kernelModule()): Kernels {
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  return instance.exports as unknown as Kernels;
}
