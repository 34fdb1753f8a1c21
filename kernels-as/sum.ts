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

// The arithmetic roofline of bench/kernels.ts: `iters` rounds of a = a·m + c on ten independent f32x4 chains
// (base SIMD has no fused multiply-add, so each is a mul and an add), 80 flops a round. Ten chains cover the
// mul + add latency, so the rate is bound by how many vector mul/add the core issues per cycle.
export function mul_add_f32(iters: i32, seed: f32): f32 {
  let a0 = f32x4.splat(seed), a1 = f32x4.splat(seed + 1), a2 = f32x4.splat(seed + 2), a3 = f32x4.splat(seed + 3);
  let a4 = f32x4.splat(seed + 4), a5 = f32x4.splat(seed + 5), a6 = f32x4.splat(seed + 6), a7 = f32x4.splat(seed + 7);
  let a8 = f32x4.splat(seed + 8), a9 = f32x4.splat(seed + 9);
  const m = f32x4.splat(0.999), c = f32x4.splat(0.001);
  for (let i = 0; i < iters; i++) {
    a0 = f32x4.add(f32x4.mul(a0, m), c);
    a1 = f32x4.add(f32x4.mul(a1, m), c);
    a2 = f32x4.add(f32x4.mul(a2, m), c);
    a3 = f32x4.add(f32x4.mul(a3, m), c);
    a4 = f32x4.add(f32x4.mul(a4, m), c);
    a5 = f32x4.add(f32x4.mul(a5, m), c);
    a6 = f32x4.add(f32x4.mul(a6, m), c);
    a7 = f32x4.add(f32x4.mul(a7, m), c);
    a8 = f32x4.add(f32x4.mul(a8, m), c);
    a9 = f32x4.add(f32x4.mul(a9, m), c);
  }
  const s = f32x4.add(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)), f32x4.add(f32x4.add(a4, a5), f32x4.add(a6, a7)));
  return hsum(f32x4.add(s, f32x4.add(a8, a9)));
}
