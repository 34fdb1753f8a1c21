// Dense f32 matrix-vector product: out[r] = W[r,:] · x for rows [rowStart, rowEnd).
// W is row-major [d, n]. Four rows share each load of x; every row is reduced exactly as simd.dot does,
// so a row's value does not depend on which block (or thread) computed it.
import { dot, hsum } from "./simd";

// The four rows of a pass come from the four quarters of the range (r, r+q, r+2q, r+3q), so the weights are read as
// four long sequential streams. Four adjacent rows instead make four short streams that restart every 4 rows: with
// 768-column rows (3 KB) that ran at about half the read bandwidth (measured: 2048x768 7.0 vs 15.1 GB/s, 32000x768
// 9.2 vs 16.4; 2048-column rows are fast either way).
export function matvec_f32(out: usize, w: usize, x: usize, n: i32, rowStart: i32, rowEnd: i32): void {
  const rowBytes = <usize>n << 2;
  const q = (rowEnd - rowStart) >> 2;
  const quarterBytes = <usize>q * rowBytes;
  const quarterOut = <usize>q << 2;
  for (let r = rowStart; r < rowStart + q; r++) {
    const w0 = w + <usize>r * rowBytes;
    dot4(out + (<usize>r << 2), quarterOut, w0, w0 + quarterBytes, w0 + 2 * quarterBytes, w0 + 3 * quarterBytes, x, n);
  }
  for (let r = rowStart + 4 * q; r < rowEnd; r++) {
    store<f32>(out + (<usize>r << 2), dot(w + <usize>r * rowBytes, x, n));
  }
}

// Four dot products sharing each load of x, written to out + i·outStride. Each is reduced exactly as simd.dot reduces:
// two accumulators over 8-float steps, one 4-float step into the first, the fixed-order horizontal sum, a scalar tail.
@inline export function dot4(out: usize, outStride: usize, w0: usize, w1: usize, w2: usize, w3: usize, x: usize, n: i32): void {
  const n8 = n & ~7;
  let a0 = f32x4.splat(0), b0 = f32x4.splat(0);
  let a1 = f32x4.splat(0), b1 = f32x4.splat(0);
  let a2 = f32x4.splat(0), b2 = f32x4.splat(0);
  let a3 = f32x4.splat(0), b3 = f32x4.splat(0);
  for (let k = 0; k < n8; k += 8) {
    const off = <usize>k << 2;
    const x0 = v128.load(x + off);
    const x1 = v128.load(x + off, 16);
    a0 = f32x4.add(a0, f32x4.mul(v128.load(w0 + off), x0));
    b0 = f32x4.add(b0, f32x4.mul(v128.load(w0 + off, 16), x1));
    a1 = f32x4.add(a1, f32x4.mul(v128.load(w1 + off), x0));
    b1 = f32x4.add(b1, f32x4.mul(v128.load(w1 + off, 16), x1));
    a2 = f32x4.add(a2, f32x4.mul(v128.load(w2 + off), x0));
    b2 = f32x4.add(b2, f32x4.mul(v128.load(w2 + off, 16), x1));
    a3 = f32x4.add(a3, f32x4.mul(v128.load(w3 + off), x0));
    b3 = f32x4.add(b3, f32x4.mul(v128.load(w3 + off, 16), x1));
  }
  let k = n8;
  if (k + 4 <= n) {
    const off = <usize>k << 2;
    const x0 = v128.load(x + off);
    a0 = f32x4.add(a0, f32x4.mul(v128.load(w0 + off), x0));
    a1 = f32x4.add(a1, f32x4.mul(v128.load(w1 + off), x0));
    a2 = f32x4.add(a2, f32x4.mul(v128.load(w2 + off), x0));
    a3 = f32x4.add(a3, f32x4.mul(v128.load(w3 + off), x0));
    k += 4;
  }
  let s0 = hsum(f32x4.add(a0, b0));
  let s1 = hsum(f32x4.add(a1, b1));
  let s2 = hsum(f32x4.add(a2, b2));
  let s3 = hsum(f32x4.add(a3, b3));
  for (; k < n; k++) {
    const off = <usize>k << 2;
    const xk = load<f32>(x + off);
    s0 += load<f32>(w0 + off) * xk;
    s1 += load<f32>(w1 + off) * xk;
    s2 += load<f32>(w2 + off) * xk;
    s3 += load<f32>(w3 + off) * xk;
  }
  store<f32>(out, s0);
  store<f32>(out + outStride, s1);
  store<f32>(out + 2 * outStride, s2);
  store<f32>(out + 3 * outStride, s3);
}
