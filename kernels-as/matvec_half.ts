// Matrix-vector products with 16-bit float weights: out[r] = W[r,:] · x for rows [rowStart, rowEnd), W row-major
// [d, n] of f16 or bf16, x and out f32. Half the bytes of f32 per weight; each 16-byte load of eight weights is
// widened in registers (bf16: an interleave with zeros; f16: that plus integer bit manipulation, see blocks.ts)
// and multiplied in f32, in the order of matvec_f32: two accumulators over 8-value steps, one 4-value step, a
// scalar tail. Four rows share each load of x. A last block of fewer than four rows repeats the last row in
// the missing slots and stores only the real ones, so every row is computed by the same code in the same
// order whatever range or group it falls in (thread determinism) without a second, single-row copy of the loop.
//
// f16: the exact conversion costs about fifteen vector operations per four values, the one for normal values
// three, so each 8-value step of the four rows takes the short one unless one of its 32 halves is zero,
// subnormal, inf or NaN (both give the same bits for normal values, so results do not depend on the path).
// Measured on 256x768 in cache: 0.06 ms against 0.11 ms exact-only (bf16: 0.02 ms); 768x768 from DRAM
// 0.28 against 0.36 ms. Multiplying the shifted bits by 2^112 (about eight operations with sign and inf/NaN)
// would be exact too, but a subnormal f16 makes it an f32 subnormal multiplication, which x86 runs ~25x slower
// (microcode assist): measured 2.4 ms against 0.09 ms on all-subnormal weights.
import { bf16_to_f32, f16_to_f32, f16x4_normal_to_f32x4, f16x4_to_f32x4, widen_hi, widen_lo } from "./blocks";
import { hsum, listed } from "./simd";

export function matvec_f16(out: usize, w: usize, x: usize, n: i32, rowStart: i32, rowEnd: i32): void {
  matvecHalf(out, w, x, n, rowStart, rowEnd, 1, 0, false);
}

export function matvec_bf16(out: usize, w: usize, x: usize, n: i32, rowStart: i32, rowEnd: i32): void {
  matvecHalf(out, w, x, n, rowStart, rowEnd, 1, 0, true);
}

@inline function exact(v: v128, bf16: bool): v128 {
  return bf16 ? v : f16x4_to_f32x4(v);
}

@inline function scalar(p: usize, bf16: bool): f32 {
  const h = <u32>load<u16>(p);
  return bf16 ? bf16_to_f32(h) : f16_to_f32(h);
}

// (h + 0x400) & 0x7800 is zero exactly when the exponent field of h is 0 or 31.
@inline function exponentKey(v: v128): v128 {
  return v128.and(i16x8.add(v, i16x8.splat(0x0400)), i16x8.splat(0x7800));
}

// Also the batched product (gemm.ts): `tokens` rows of x one after another, outputs `outStride` floats apart. Each
// block of four rows is run for every token while it is in L1, by the same code as one product (widening again
// per token: a converted copy would need a scratch per thread).
// The four rows of a pass come from the four quarters of the range (r, r+q, r+2q, r+3q): four long sequential
// streams of weights, as in matvec_f32; then the rows left over, in groups of four.
@inline export function matvecHalf(
  out: usize, w: usize, xs: usize, n: i32, rowStart: i32, rowEnd: i32, tokens: i32, outStride: i32, bf16: bool,
): void {
  const q = (rowEnd - rowStart) >> 2;
  for (let r = rowStart; r < rowStart + q; r++) {
    halfRows(out, w, xs, n, r, r + q, r + 2 * q, r + 3 * q, r, r + q, r + 2 * q, r + 3 * q, 4, tokens, outStride, bf16);
  }
  const last = rowEnd - 1;
  for (let r = rowStart + 4 * q; r < rowEnd; r += 4) {
    const r1 = min(r + 1, last), r2 = min(r + 2, last), r3 = min(r + 3, last);
    halfRows(out, w, xs, n, r, r1, r2, r3, r, r1, r2, r3, rowEnd - r, tokens, outStride, bf16);
  }
}

// Row gather over f16 / bf16 weights: out[k] = W[S[k], :] · x for k < count (idx: i32 S, ascending), each row
// computed by the dense kernel's code (same bits as in the full product). Four rows per pass, taken from the
// index list as simd.listed describes.
export function matvec_rows_f16(out: usize, w: usize, x: usize, n: i32, idx: usize, count: i32): void {
  rowsHalf(out, w, x, n, idx, count, false);
}

export function matvec_rows_bf16(out: usize, w: usize, x: usize, n: i32, idx: usize, count: i32): void {
  rowsHalf(out, w, x, n, idx, count, true);
}

@inline function rowsHalf(out: usize, w: usize, x: usize, n: i32, idx: usize, count: i32, bf16: bool): void {
  const q = count >> 2;
  for (let k = 0; k < q; k++) {
    const k1 = k + q, k2 = k + 2 * q, k3 = k + 3 * q;
    halfRows(out, w, x, n, listed(idx, k), listed(idx, k1), listed(idx, k2), listed(idx, k3), k, k1, k2, k3, 4, 1, 0, bf16);
  }
  const last = count - 1;
  for (let k = 4 * q; k < count; k += 4) {
    const k1 = min(k + 1, last), k2 = min(k + 2, last), k3 = min(k + 3, last);
    halfRows(out, w, x, n, listed(idx, k), listed(idx, k1), listed(idx, k2), listed(idx, k3), k, k1, k2, k3, count - k, 1, 0, bf16);
  }
}

// Weight rows r0..r3 for every token, their outputs at o0..o3; lanes [0, real) are stored.
@inline function halfRows(
  out: usize, w: usize, xs: usize, n: i32, r0: i32, r1: i32, r2: i32, r3: i32, o0: i32, o1: i32, o2: i32, o3: i32,
  real: i32, tokens: i32, outStride: i32, bf16: bool,
): void {
  const rowBytes = <usize>n << 1;
  const n8 = n & ~7;
  const has4 = (n & 7) >= 4;
  const n4 = n & ~3;
  const w0 = w + <usize>r0 * rowBytes;
  const w1 = w + <usize>r1 * rowBytes;
  const w2 = w + <usize>r2 * rowBytes;
  const w3 = w + <usize>r3 * rowBytes;
  for (let t = 0; t < tokens; t++) {
    const x = xs + (<usize>t * <usize>n << 2);
    let a0 = f32x4.splat(0), b0 = f32x4.splat(0);
    let a1 = f32x4.splat(0), b1 = f32x4.splat(0);
    let a2 = f32x4.splat(0), b2 = f32x4.splat(0);
    let a3 = f32x4.splat(0), b3 = f32x4.splat(0);
    for (let k = 0; k < n8; k += 8) {
      const xo = x + (<usize>k << 2);
      const wo = <usize>k << 1;
      const x0 = v128.load(xo);
      const x1 = v128.load(xo, 16);
      const v0 = v128.load(w0 + wo), v1 = v128.load(w1 + wo), v2 = v128.load(w2 + wo), v3 = v128.load(w3 + wo);
      let l0 = widen_lo(v0), h0 = widen_hi(v0), l1 = widen_lo(v1), h1 = widen_hi(v1);
      let l2 = widen_lo(v2), h2 = widen_hi(v2), l3 = widen_lo(v3), h3 = widen_hi(v3);
      // `bf16` is a constant at both call sites: inlining folds this away for bf16, whose widened bits are the f32.
      if (!bf16) {
        const key = i16x8.min_u(
          i16x8.min_u(exponentKey(v0), exponentKey(v1)), i16x8.min_u(exponentKey(v2), exponentKey(v3)));
        if (v128.any_true(i16x8.eq(key, i16x8.splat(0)))) {
          l0 = f16x4_to_f32x4(l0); h0 = f16x4_to_f32x4(h0); l1 = f16x4_to_f32x4(l1); h1 = f16x4_to_f32x4(h1);
          l2 = f16x4_to_f32x4(l2); h2 = f16x4_to_f32x4(h2); l3 = f16x4_to_f32x4(l3); h3 = f16x4_to_f32x4(h3);
        } else {
          l0 = f16x4_normal_to_f32x4(l0); h0 = f16x4_normal_to_f32x4(h0);
          l1 = f16x4_normal_to_f32x4(l1); h1 = f16x4_normal_to_f32x4(h1);
          l2 = f16x4_normal_to_f32x4(l2); h2 = f16x4_normal_to_f32x4(h2);
          l3 = f16x4_normal_to_f32x4(l3); h3 = f16x4_normal_to_f32x4(h3);
        }
      }
      a0 = f32x4.add(a0, f32x4.mul(l0, x0));
      b0 = f32x4.add(b0, f32x4.mul(h0, x1));
      a1 = f32x4.add(a1, f32x4.mul(l1, x0));
      b1 = f32x4.add(b1, f32x4.mul(h1, x1));
      a2 = f32x4.add(a2, f32x4.mul(l2, x0));
      b2 = f32x4.add(b2, f32x4.mul(h2, x1));
      a3 = f32x4.add(a3, f32x4.mul(l3, x0));
      b3 = f32x4.add(b3, f32x4.mul(h3, x1));
    }
    if (has4) {
      const x0 = v128.load(x + (<usize>n8 << 2));
      const wo = <usize>n8 << 1;
      a0 = f32x4.add(a0, f32x4.mul(exact(widen_lo(v128.load64_zero(w0 + wo)), bf16), x0));
      a1 = f32x4.add(a1, f32x4.mul(exact(widen_lo(v128.load64_zero(w1 + wo)), bf16), x0));
      a2 = f32x4.add(a2, f32x4.mul(exact(widen_lo(v128.load64_zero(w2 + wo)), bf16), x0));
      a3 = f32x4.add(a3, f32x4.mul(exact(widen_lo(v128.load64_zero(w3 + wo)), bf16), x0));
    }
    let s0 = hsum(f32x4.add(a0, b0));
    let s1 = hsum(f32x4.add(a1, b1));
    let s2 = hsum(f32x4.add(a2, b2));
    let s3 = hsum(f32x4.add(a3, b3));
    for (let k = n4; k < n; k++) {
      const xk = load<f32>(x + (<usize>k << 2));
      const wo = <usize>k << 1;
      s0 += scalar(w0 + wo, bf16) * xk;
      s1 += scalar(w1 + wo, bf16) * xk;
      s2 += scalar(w2 + wo, bf16) * xk;
      s3 += scalar(w3 + wo, bf16) * xk;
    }
    const o = out + <usize>t * (<usize>outStride << 2);
    store<f32>(o + (<usize>o0 << 2), s0);
    if (real > 1) store<f32>(o + (<usize>o1 << 2), s1);
    if (real > 2) store<f32>(o + (<usize>o2 << 2), s2);
    if (real > 3) store<f32>(o + (<usize>o3 << 2), s3);
  }
}
