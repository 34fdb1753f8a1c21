// Sum of n f32: the read-bandwidth roofline of bench/kernels.ts (one add per loaded value, nothing else), not a
// numerically careful sum. Four vector accumulators so the add latency never limits the stream.
import { hsum } from "./simd";

export function sum_f32(x: usize, n: i32): f32 {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  const n16 = n & ~15;
  let k = 0;
  for (; k < n16; k += 16) {
    const p = x + (<usize>k << 2);
    a0 = f32x4.add(a0, v128.load(p));
    a1 = f32x4.add(a1, v128.load(p, 16));
    a2 = f32x4.add(a2, v128.load(p, 32));
    a3 = f32x4.add(a3, v128.load(p, 48));
  }
  let s = hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)));
  for (; k < n; k++) s += load<f32>(x + (<usize>k << 2));
  return s;
}
