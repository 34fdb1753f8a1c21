// Sum of n f32: the read-bandwidth roofline of bench/kernels.ts (one add per loaded value, nothing else), not a
// numerically careful sum. The range is read as four streams side by side, one per quarter, as the matvec
// kernels read four rows: the hardware prefetches per stream, and on the dev machine one stream reads ~10 GB/s
// from DRAM, two ~14, four ~18.
import { hsum } from "./simd";

export function sum_f32(x: usize, n: i32): f32 {
  const quarter = <usize>(n >> 2) & ~7;
  const qb = quarter << 2;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
  for (let p = x; p < x + qb; p += 32) {
    a0 = f32x4.add(a0, v128.load(p));
    b0 = f32x4.add(b0, v128.load(p, 16));
    a1 = f32x4.add(a1, v128.load(p + qb));
    b1 = f32x4.add(b1, v128.load(p + qb, 16));
    a2 = f32x4.add(a2, v128.load(p + 2 * qb));
    b2 = f32x4.add(b2, v128.load(p + 2 * qb, 16));
    a3 = f32x4.add(a3, v128.load(p + 3 * qb));
    b3 = f32x4.add(b3, v128.load(p + 3 * qb, 16));
  }
  let s = hsum(f32x4.add(f32x4.add(f32x4.add(a0, b0), f32x4.add(a1, b1)), f32x4.add(f32x4.add(a2, b2), f32x4.add(a3, b3))));
  for (let k = <i32>quarter << 2; k < n; k++) s += load<f32>(x + (<usize>k << 2));
  return s;
}
