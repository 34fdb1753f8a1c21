// Dense f32 matrix-vector product: out[r] = W[r,:] · x for rows [rowStart, rowEnd).
// W is row-major [d, n]. Four rows share each load of x; every row is reduced exactly as simd.dot does,
// so a row's value does not depend on which block (or thread) computed it.
import { dot, hsum } from "./simd";

export function matvec_f32(out: usize, w: usize, x: usize, n: i32, rowStart: i32, rowEnd: i32): void {
  const rowBytes = <usize>n << 2;
  const n8 = n & ~7;
  const has4 = (n & 7) >= 4;
  const n4 = n & ~3;
  let r = rowStart;
  for (; r + 4 <= rowEnd; r += 4) {
    const w0 = w + <usize>r * rowBytes;
    const w1 = w0 + rowBytes;
    const w2 = w1 + rowBytes;
    const w3 = w2 + rowBytes;
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
    if (has4) {
      const off = <usize>n8 << 2;
      const x0 = v128.load(x + off);
      a0 = f32x4.add(a0, f32x4.mul(v128.load(w0 + off), x0));
      a1 = f32x4.add(a1, f32x4.mul(v128.load(w1 + off), x0));
      a2 = f32x4.add(a2, f32x4.mul(v128.load(w2 + off), x0));
      a3 = f32x4.add(a3, f32x4.mul(v128.load(w3 + off), x0));
    }
    let s0 = hsum(f32x4.add(a0, b0));
    let s1 = hsum(f32x4.add(a1, b1));
    let s2 = hsum(f32x4.add(a2, b2));
    let s3 = hsum(f32x4.add(a3, b3));
    for (let k = n4; k < n; k++) {
      const off = <usize>k << 2;
      const xk = load<f32>(x + off);
      s0 += load<f32>(w0 + off) * xk;
      s1 += load<f32>(w1 + off) * xk;
      s2 += load<f32>(w2 + off) * xk;
      s3 += load<f32>(w3 + off) * xk;
    }
    const o = out + (<usize>r << 2);
    store<f32>(o, s0);
    store<f32>(o, s1, 4);
    store<f32>(o, s2, 8);
    store<f32>(o, s3, 12);
  }
  for (; r < rowEnd; r++) {
    store<f32>(out + (<usize>r << 2), dot(w + <usize>r * rowBytes, x, n));
  }
}
