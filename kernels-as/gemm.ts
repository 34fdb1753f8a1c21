// Dense f32 matrix-matrix product for a batch of tokens: out[t, r] = W[r,:] · X[t,:] for rows [rowStart, rowEnd)
// and tokens [0, tokens). W is row-major [d, n], X [tokens, n], out [tokens, outStride] (outStride >= rowEnd).
// Same row-range contract as matvec_f32, so the worker pool splits it by rows.
//
// Every output is reduced in the GEMV's order (simd.dot / matvec.dot4): accumulator a collects the first four
// products of each 8-value step and then the 4-value step, b the last four of each 8-value step, then hsum(a + b)
// and the scalar tail. So an output is the GEMV of its token bit for bit, and a batched forward pass gives the
// token-by-token logits exactly. Blocking within that order: four rows of W (12 KiB at n = 768) are loaded once
// from memory and reused from L1 by every token, two tokens at a time, and since a and b are independent sums the
// a's of the 4 x 2 block are run in one pass over k and the b's in a second: 8 accumulators per pass, in registers
// (x64 V8 has 16 vector registers; 4 x 2 with a and b together needs 16 accumulators and spills). Per 4-value
// product that is 0.75 loads against the GEMV's 1.25. Measured on the dev machine (64 tokens, one thread, GFLOP/s
// of CPU time, noisy): 768x768 ~25 vs ~19 for dot4 per token over the same L1 block and ~11 for 64 GEMVs;
// 768x2048 ~24 vs ~17. A third token per pass (4 x 3) was no faster.
import { dot, hsum } from "./simd";
import { dot4 } from "./matvec";
import { matvecHalf } from "./matvec_half";
import { matvecQuant } from "./matvec_quant";

export function gemm_f32(out: usize, w: usize, x: usize, n: i32, rowStart: i32, rowEnd: i32, tokens: i32, outStride: i32): void {
  const rowBytes = <usize>n << 2;
  const outBytes = <usize>outStride << 2;
  let r = rowStart;
  for (; r + 4 <= rowEnd; r += 4) {
    const w0 = w + <usize>r * rowBytes;
    const o = out + (<usize>r << 2);
    let t = 0;
    for (; t + 2 <= tokens; t += 2) {
      const x0 = x + <usize>t * rowBytes;
      block4x2(o + <usize>t * outBytes, outBytes, w0, rowBytes, x0, x0 + rowBytes, n);
    }
    if (t < tokens) dot4(o + <usize>t * outBytes, 4, w0, w0 + rowBytes, w0 + 2 * rowBytes, w0 + 3 * rowBytes, x + <usize>t * rowBytes, n);
  }
  for (; r < rowEnd; r++) {
    const wr = w + <usize>r * rowBytes;
    const o = out + (<usize>r << 2);
    for (let t = 0; t < tokens; t++) store<f32>(o + <usize>t * outBytes, dot(wr, x + <usize>t * rowBytes, n));
  }
}

// Rows w0 + j·rowBytes (j < 4) times tokens x0, x1: row j of token i is stored at o + i·outBytes + 4j.
@inline function block4x2(o: usize, outBytes: usize, w0: usize, rowBytes: usize, x0: usize, x1: usize, n: i32): void {
  const w1 = w0 + rowBytes, w2 = w1 + rowBytes, w3 = w2 + rowBytes;
  const n8 = n & ~7;
  // Pass a: bytes 0-15 of each 32-byte step, then the 4-value step.
  let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a10 = f32x4.splat(0), a11 = f32x4.splat(0);
  let a20 = f32x4.splat(0), a21 = f32x4.splat(0), a30 = f32x4.splat(0), a31 = f32x4.splat(0);
  for (let k = 0; k <= n - 4; k += 8) {
    const off = <usize>k << 2;
    const u = v128.load(x0 + off), v = v128.load(x1 + off);
    let wv = v128.load(w0 + off);
    a00 = f32x4.add(a00, f32x4.mul(wv, u));
    a01 = f32x4.add(a01, f32x4.mul(wv, v));
    wv = v128.load(w1 + off);
    a10 = f32x4.add(a10, f32x4.mul(wv, u));
    a11 = f32x4.add(a11, f32x4.mul(wv, v));
    wv = v128.load(w2 + off);
    a20 = f32x4.add(a20, f32x4.mul(wv, u));
    a21 = f32x4.add(a21, f32x4.mul(wv, v));
    wv = v128.load(w3 + off);
    a30 = f32x4.add(a30, f32x4.mul(wv, u));
    a31 = f32x4.add(a31, f32x4.mul(wv, v));
  }
  // Pass b: bytes 16-31 of each 32-byte step.
  let b00 = f32x4.splat(0), b01 = f32x4.splat(0), b10 = f32x4.splat(0), b11 = f32x4.splat(0);
  let b20 = f32x4.splat(0), b21 = f32x4.splat(0), b30 = f32x4.splat(0), b31 = f32x4.splat(0);
  for (let k = 0; k < n8; k += 8) {
    const off = (<usize>k << 2) + 16;
    const u = v128.load(x0 + off), v = v128.load(x1 + off);
    let wv = v128.load(w0 + off);
    b00 = f32x4.add(b00, f32x4.mul(wv, u));
    b01 = f32x4.add(b01, f32x4.mul(wv, v));
    wv = v128.load(w1 + off);
    b10 = f32x4.add(b10, f32x4.mul(wv, u));
    b11 = f32x4.add(b11, f32x4.mul(wv, v));
    wv = v128.load(w2 + off);
    b20 = f32x4.add(b20, f32x4.mul(wv, u));
    b21 = f32x4.add(b21, f32x4.mul(wv, v));
    wv = v128.load(w3 + off);
    b30 = f32x4.add(b30, f32x4.mul(wv, u));
    b31 = f32x4.add(b31, f32x4.mul(wv, v));
  }
  const o1 = o + outBytes;
  store<f32>(o, finish(a00, b00, w0, x0, n));
  store<f32>(o1, finish(a01, b01, w0, x1, n));
  store<f32>(o, finish(a10, b10, w1, x0, n), 4);
  store<f32>(o1, finish(a11, b11, w1, x1, n), 4);
  store<f32>(o, finish(a20, b20, w2, x0, n), 8);
  store<f32>(o1, finish(a21, b21, w2, x1, n), 8);
  store<f32>(o, finish(a30, b30, w3, x0, n), 12);
  store<f32>(o1, finish(a31, b31, w3, x1, n), 12);
}

// hsum(a + b), then the scalar tail past the last 4-value step, as simd.dot ends.
@inline function finish(a: v128, b: v128, w: usize, x: usize, n: i32): f32 {
  let s = hsum(f32x4.add(a, b));
  for (let k = n & ~3; k < n; k++) {
    const off = <usize>k << 2;
    s += load<f32>(w + off) * load<f32>(x + off);
  }
  return s;
}

// 16-bit and quantized weights: the GEMV kernels' own loops with a token loop inside each block of four rows.
// x of the quantized ones is `tokens` activations quantized by quantize_act_q8_0 / _q4_0, one after another.
export function gemm_f16(out: usize, w: usize, x: usize, n: i32, rowStart: i32, rowEnd: i32, tokens: i32, outStride: i32): void {
  matvecHalf(out, w, x, n, rowStart, rowEnd, tokens, outStride, false);
}

export function gemm_bf16(out: usize, w: usize, x: usize, n: i32, rowStart: i32, rowEnd: i32, tokens: i32, outStride: i32): void {
  matvecHalf(out, w, x, n, rowStart, rowEnd, tokens, outStride, true);
}

export function gemm_q8_0(out: usize, w: usize, xa: usize, n: i32, rowStart: i32, rowEnd: i32, tokens: i32, outStride: i32): void {
  matvecQuant(out, w, xa, n, rowStart, rowEnd, tokens, outStride, false);
}

export function gemm_q4_0(out: usize, w: usize, xa: usize, n: i32, rowStart: i32, rowEnd: i32, tokens: i32, outStride: i32): void {
  matvecQuant(out, w, xa, n, rowStart, rowEnd, tokens, outStride, true);
}
