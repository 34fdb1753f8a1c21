// RMSNorm: out = w ⊙ x / sqrt(mean(x²) + eps). out may alias x.
import { hsum } from "./simd";

export function rmsnorm_f32(out: usize, x: usize, w: usize, n: i32, eps: f32): void {
  let acc = f32x4.splat(0);
  const n4 = n & ~3;
  let k = 0;
  for (; k < n4; k += 4) {
    const v = v128.load(x + (<usize>k << 2));
    acc = f32x4.add(acc, f32x4.mul(v, v));
  }
  let ss = hsum(acc);
  for (; k < n; k++) {
    const v = load<f32>(x + (<usize>k << 2));
    ss += v * v;
  }
  const scale = <f32>1.0 / Mathf.sqrt(ss / <f32>n + eps);
  const sv = f32x4.splat(scale);
  k = 0;
  for (; k < n4; k += 4) {
    const off = <usize>k << 2;
    v128.store(out + off, f32x4.mul(v128.load(w + off), f32x4.mul(sv, v128.load(x + off))));
  }
  for (; k < n; k++) {
    const off = <usize>k << 2;
    store<f32>(out + off, load<f32>(w + off) * (scale * load<f32>(x + off)));
  }
}
