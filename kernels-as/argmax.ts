// Index of the largest of n f32; ties go to the lowest index (run.c's sample_argmax). NaN never wins.
export function argmax_f32(x: usize, n: i32): i32 {
  let best = 0;
  let max = load<f32>(x);
  for (let i = 1; i < n; i++) {
    const v = load<f32>(x + (<usize>i << 2));
    if (v > max || (max != max && v == v)) {
      max = v;
      best = i;
    }
  }
  return best;
}
