// Numerically stable softmax in place over n f32.
export function softmax_f32(x: usize, n: i32): void {
  if (n <= 0) return;
  let max = load<f32>(x);
  for (let i = 1; i < n; i++) {
    const v = load<f32>(x + (<usize>i << 2));
    if (v > max) max = v;
  }
  let sum: f32 = 0;
  for (let i = 0; i < n; i++) {
    const p = x + (<usize>i << 2);
    const e = Mathf.exp(load<f32>(p) - max);
    store<f32>(p, e);
    sum += e;
  }
  const inv = <f32>1.0 / sum;
  for (let i = 0; i < n; i++) {
    const p = x + (<usize>i << 2);
    store<f32>(p, load<f32>(p) * inv);
  }
}
