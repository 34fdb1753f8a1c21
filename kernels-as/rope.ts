// Rotary position embedding on adjacent pairs (llama2.c / GGUF layout), in place, for nHeads heads of headSize.
// cos/sin hold headSize/2 values for this position (precomputed by the engine, so theta and
// rope scaling stay outside the kernel).
export function rope_f32(x: usize, nHeads: i32, headSize: i32, cos: usize, sin: usize): void {
  const half = headSize >> 1;
  for (let h = 0; h < nHeads; h++) {
    const base = x + (<usize>(h * headSize) << 2);
    for (let j = 0; j < half; j++) {
      const p = base + (<usize>j << 3);
      const c = load<f32>(cos + (<usize>j << 2));
      const s = load<f32>(sin + (<usize>j << 2));
      const v0 = load<f32>(p);
      const v1 = load<f32>(p, 4);
      store<f32>(p, v0 * c - v1 * s);
      store<f32>(p, v0 * s + v1 * c, 4);
    }
  }
}
